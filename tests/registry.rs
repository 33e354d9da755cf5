//! The process-wide registry. Tests run in parallel threads of one process
//! and share it: every test uses names of its own.

use std::panic::catch_unwind;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use breaker::registry::{self, RegistryError};
use breaker::{CircuitBreaker, State};

mod common;
use common::panics::panic_text;

/// `reset_all` resets the breakers of every test in this process: the test
/// of it runs alone, the tests that look at counters run beside each other.
static RESETS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    RESETS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    RESETS.write().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn register_then_get_and_try_get_return_the_same_breaker() {
    let _guard = shared();
    let registered = registry::register(CircuitBreaker::new("reg-same")).unwrap();
    assert_eq!(registered.name(), "reg-same");

    let got = registry::get("reg-same");
    assert!(Arc::ptr_eq(&registered, &got));
    let tried = registry::try_get("reg-same").unwrap();
    assert!(Arc::ptr_eq(&registered, &tried));

    // One breaker, not copies: state changed through one is seen by all.
    got.call(|| Err::<(), _>("boom")).unwrap_err();
    assert_eq!(registered.fail_counter(), 1);
    assert_eq!(registry::get("reg-same").fail_counter(), 1);
}

#[test]
fn register_keeps_the_breakers_settings() {
    let _guard = shared();
    let cb = CircuitBreaker::builder(format!("reg-settings-{}", 7))
        .fail_max(2)
        .build();
    registry::register(cb).unwrap();
    let got = registry::get("reg-settings-7");
    assert_eq!(got.fail_max(), 2);
    got.call(|| Err::<(), _>("boom")).unwrap_err();
    got.call(|| Err::<(), _>("boom")).unwrap_err();
    assert_eq!(registry::get("reg-settings-7").current_state(), State::Open);
}

#[test]
fn try_get_of_an_unknown_name_is_none() {
    assert!(registry::try_get("reg-never-registered").is_none());
    assert!(registry::try_get("").is_none());
}

#[test]
fn registering_a_taken_name_is_an_error_and_changes_nothing() {
    let first =
        registry::register(CircuitBreaker::builder("reg-taken").fail_max(3).build()).unwrap();
    let second = CircuitBreaker::builder("reg-taken").fail_max(9).build();
    let err = registry::register(second).unwrap_err();
    assert_eq!(err, RegistryError::NameTaken("reg-taken".into()));
    assert_eq!(
        err.to_string(),
        "a circuit breaker named 'reg-taken' is already registered"
    );
    // The first one is still the registered one.
    let got = registry::get("reg-taken");
    assert!(Arc::ptr_eq(&first, &got));
    assert_eq!(got.fail_max(), 3);
    assert_eq!(
        registry::names()
            .iter()
            .filter(|n| *n == "reg-taken")
            .count(),
        1
    );
}

#[test]
fn names_lists_registered_breakers_sorted() {
    for name in ["reg-names-c", "reg-names-a", "reg-names-b"] {
        registry::register(CircuitBreaker::new(name)).unwrap();
    }
    let names = registry::names();
    let ours: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("reg-names-"))
        .collect();
    assert_eq!(ours, ["reg-names-a", "reg-names-b", "reg-names-c"]);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn get_of_an_unknown_name_panics_listing_the_known_names() {
    registry::register(CircuitBreaker::new("reg-known-one")).unwrap();
    registry::register(CircuitBreaker::new("reg-known-two")).unwrap();
    let payload = catch_unwind(|| registry::get("reg-unknown")).unwrap_err();
    let message = panic_text(&*payload);
    assert!(
        message
            .starts_with("no circuit breaker named 'reg-unknown' is registered; known breakers: ["),
        "{message}"
    );
    assert!(message.ends_with(']'), "{message}");
    assert!(message.contains("reg-known-one"), "{message}");
    assert!(message.contains("reg-known-two"), "{message}");
}

#[test]
#[should_panic(expected = "no circuit breaker named 'reg-missing' is registered")]
fn get_of_an_unknown_name_panics() {
    let _ = registry::get("reg-missing");
}

#[test]
fn reset_all_closes_every_registered_breaker() {
    let _guard = exclusive();
    let tripped = registry::register(
        CircuitBreaker::builder("reg-reset-tripped")
            .fail_max(1)
            .build(),
    )
    .unwrap();
    let opened = registry::register(CircuitBreaker::new("reg-reset-opened")).unwrap();
    let half = registry::register(CircuitBreaker::new("reg-reset-half")).unwrap();
    let counting = registry::register(
        CircuitBreaker::builder("reg-reset-counting")
            .fail_max(5)
            .build(),
    )
    .unwrap();

    tripped.call(|| Err::<(), _>("boom")).unwrap_err();
    opened.open();
    half.call(|| Err::<(), _>("boom")).unwrap_err();
    half.half_open();
    counting.call(|| Err::<(), _>("boom")).unwrap_err();
    counting.call(|| Err::<(), _>("boom")).unwrap_err();
    assert_eq!(tripped.current_state(), State::Open);
    assert_eq!(counting.fail_counter(), 2);

    registry::reset_all();

    for cb in [&tripped, &opened, &half, &counting] {
        assert_eq!(cb.current_state(), State::Closed, "{}", cb.name());
        assert_eq!(cb.fail_counter(), 0, "{}", cb.name());
        assert_eq!(cb.success_counter(), 0, "{}", cb.name());
        assert_eq!(cb.opened_at(), None, "{}", cb.name());
    }
    // A breaker that is not registered is not touched.
    let unregistered = CircuitBreaker::new("reg-reset-unregistered");
    unregistered.open();
    registry::reset_all();
    assert_eq!(unregistered.current_state(), State::Open);
}

#[test]
fn registered_breakers_are_shared_across_threads() {
    let _guard = shared();
    let cb = registry::register(
        CircuitBreaker::builder("reg-threads")
            .fail_max(1_000)
            .build(),
    )
    .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..25 {
                    registry::get("reg-threads")
                        .call(|| Err::<(), _>("boom"))
                        .unwrap_err();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(cb.fail_counter(), 100);
}

#[derive(Debug)]
struct Rejected;

impl From<breaker::CircuitBreakerError> for Rejected {
    fn from(_: breaker::CircuitBreakerError) -> Self {
        Rejected
    }
}

#[breaker::circuit_breaker(name = "reg-declared", fail_max = 2)]
fn declared() -> Result<(), Rejected> {
    Ok(())
}

#[test]
fn a_declared_name_is_taken_and_healthy_declarations_report_no_errors() {
    assert!(declared().is_ok());
    let err = registry::register(CircuitBreaker::new("reg-declared")).unwrap_err();
    assert_eq!(err, RegistryError::NameTaken("reg-declared".into()));
    assert_eq!(registry::get("reg-declared").fail_max(), 2);
    assert_eq!(registry::declaration_errors(), []);
}
