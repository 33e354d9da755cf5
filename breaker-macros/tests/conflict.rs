//! Declarations that cannot make a breaker fail alone, where they are used:
//! two attributes naming one breaker with different values for a setting,
//! settings the builder refuses, a `storage` function that panics, two
//! functions sharing a default name.
//! Every other breaker of the process keeps working. (A test binary of its
//! own: its declarations are this process's registry.)

use std::panic::catch_unwind;
use std::sync::{Mutex, MutexGuard};

use breaker::registry::{self, RegistryError};
use breaker::{circuit_breaker, CircuitBreaker, CircuitBreakerError, MemoryStorage, State};

#[derive(Debug, PartialEq)]
struct Failed;

impl From<CircuitBreakerError> for Failed {
    fn from(_: CircuitBreakerError) -> Self {
        Failed
    }
}

#[circuit_breaker(name = "conflicted", fail_max = 3)]
fn first() -> Result<(), Failed> {
    Ok(())
}

#[circuit_breaker(name = "conflicted", fail_max = 4)]
fn second() -> Result<(), Failed> {
    Ok(())
}

#[circuit_breaker(name = "unrelated", fail_max = 1)]
fn unrelated(fail: bool) -> Result<(), Failed> {
    match fail {
        true => Err(Failed),
        false => Ok(()),
    }
}

fn no_storage() -> MemoryStorage {
    panic!("storage unreachable")
}

#[circuit_breaker(name = "broken-storage", storage = no_storage)]
fn stored() -> Result<(), Failed> {
    Ok(())
}

/// Settings the builder refuses. The attribute rejects `fail_max = 0` at
/// compile time, so this declaration is written as generated code would be.
static INVALID: breaker::__private::Declaration = breaker::__private::Declaration {
    name: "invalid",
    default_name: false,
    function: "conflict::invalid",
    fail_max: Some(0),
    reset_timeout: None,
    success_threshold: None,
    throw_new_error_on_trip: None,
    storage: None,
    listeners: None,
    clock: None,
    keyed: false,
    max_keys: None,
    idle_timeout: None,
    half_open_calls: None,
    backoff: None,
    failure_rate: None,
    window: None,
    min_calls: None,
    slow_call_duration: None,
    slow_call_rate: None,
};
breaker::__private::inventory::submit! {
    breaker::__private::Registration(&INVALID)
}
static INVALID_SITE: breaker::__private::Site = breaker::__private::Site::new(&INVALID);

/// Two types in one module with an associated function `fetch` and no
/// `name`: the default name, `conflict::fetch`, would join them.
struct Payments;
struct Inventory;

impl Payments {
    #[circuit_breaker(fail_max = 1)]
    fn fetch(fail: bool) -> Result<u32, Failed> {
        if fail {
            return Err(Failed);
        }
        Ok(1)
    }
}

impl Inventory {
    #[circuit_breaker(fail_max = 1)]
    fn fetch(fail: bool) -> Result<u32, Failed> {
        if fail {
            return Err(Failed);
        }
        Ok(2)
    }
}

/// `reset_all` resets `unrelated`: the tests that use it take turns.
static UNRELATED: Mutex<()> = Mutex::new(());

fn unrelated_alone() -> MutexGuard<'static, ()> {
    UNRELATED.lock().unwrap_or_else(|e| e.into_inner())
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

const CONFLICT: &str = "conflicting settings for circuit breaker 'conflicted': \
                        fail_max = 3 on conflict::first but fail_max = 4 on conflict::second";

#[test]
fn conflicting_settings_panic_at_use_naming_both_functions() {
    let message = panic_text(&*catch_unwind(first).unwrap_err());
    assert_eq!(message, CONFLICT);
    // Every later use reports the same, rather than running unguarded.
    let message = panic_text(&*catch_unwind(second).unwrap_err());
    assert_eq!(message, CONFLICT);
    let message = panic_text(&*catch_unwind(first).unwrap_err());
    assert_eq!(message, CONFLICT);
    let message = panic_text(&*catch_unwind(|| registry::get("conflicted")).unwrap_err());
    assert_eq!(message, CONFLICT);
}

#[test]
fn an_unrelated_guarded_function_keeps_working_beside_a_conflict() {
    let _alone = unrelated_alone();
    registry::get("unrelated").reset();
    assert_eq!(unrelated(false), Ok(()));
    assert_eq!(unrelated(true), Err(Failed), "fail_max = 1: this one trips");
    assert_eq!(registry::get("unrelated").current_state(), State::Open);
    assert_eq!(unrelated(false), Err(Failed), "rejected");
    registry::get("unrelated").reset();
    assert_eq!(unrelated(false), Ok(()));
}

#[test]
fn the_registry_keeps_working_beside_a_conflict() {
    let _alone = unrelated_alone();
    assert!(registry::try_get("unrelated").is_some());
    assert!(registry::try_get("conflicted").is_none());
    let names = registry::names();
    assert!(names.iter().any(|n| n == "unrelated"), "{names:?}");
    assert!(!names.iter().any(|n| n == "conflicted"), "{names:?}");

    let fresh = registry::register(CircuitBreaker::new("conflict-fresh")).unwrap();
    fresh.open();
    registry::get("unrelated").open();
    registry::reset_all();
    assert_eq!(fresh.current_state(), State::Closed);
    assert_eq!(registry::get("unrelated").current_state(), State::Closed);

    // The declared name stays the declarations', and keeps failing.
    assert!(registry::register(CircuitBreaker::new("conflicted")).is_err());
    assert!(catch_unwind(first).is_err());
}

#[test]
fn registering_a_conflicted_name_is_refused_with_the_reason() {
    let err = registry::register(CircuitBreaker::new("conflicted")).unwrap_err();
    assert_eq!(
        err,
        RegistryError::Declaration {
            name: "conflicted".into(),
            message: CONFLICT.into()
        }
    );
    assert_eq!(err.to_string(), CONFLICT);
}

#[test]
fn declaration_errors_lists_every_failed_name_and_only_those() {
    let errors = registry::declaration_errors();
    let names: Vec<&str> = errors
        .iter()
        .map(|e| match e {
            RegistryError::Declaration { name, .. } => name.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        ["broken-storage", "conflict::fetch", "conflicted", "invalid"]
    );
    assert_eq!(errors[2].to_string(), CONFLICT);
}

#[test]
fn a_storage_function_that_panics_fails_only_its_breaker() {
    let message = panic_text(&*catch_unwind(stored).unwrap_err());
    assert_eq!(
        message,
        "circuit breaker 'broken-storage' declared on conflict::stored: \
         building it panicked: storage unreachable"
    );
    assert!(catch_unwind(stored).is_err(), "and at every use");
    assert!(registry::try_get("broken-storage").is_none());
    assert!(registry::try_get("unrelated").is_some());
}

#[test]
fn invalid_settings_fail_only_their_breaker() {
    let message = panic_text(&*catch_unwind(|| INVALID_SITE.get()).unwrap_err());
    assert_eq!(
        message,
        "circuit breaker 'invalid' declared on conflict::invalid: \
         fail_max must be between 1 and 65535, got 0"
    );
    assert!(
        catch_unwind(|| INVALID_SITE.get()).is_err(),
        "and at every use"
    );
    assert!(registry::try_get("invalid").is_none());
    assert!(registry::try_get("unrelated").is_some());
}

#[test]
fn default_named_functions_of_two_types_in_one_module_do_not_share_a_breaker() {
    let payments = panic_text(&*catch_unwind(|| Payments::fetch(true)).unwrap_err());
    let inventory = panic_text(&*catch_unwind(|| Inventory::fetch(false)).unwrap_err());
    let expected = "circuit breaker 'conflict::fetch' is the default name of 2 functions \
                    `conflict::fetch` (associated functions of different types in one module): \
                    give each its own `name`, as in `#[circuit_breaker(name = \"..\")]`";
    assert_eq!(payments, expected);
    assert_eq!(inventory, expected);
}
