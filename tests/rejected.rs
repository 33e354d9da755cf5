//! The `rejected` hook: every way a call can be rejected tells it, once,
//! with the error the caller gets; nothing else does. And the closure forms
//! of one-event listeners.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::{circuit_breaker, listener, CircuitBreaker, CircuitBreakerError, Reason, State};

mod common;
use common::{Backend, BACKENDS};

type Seen = Arc<Mutex<Vec<(State, Reason, Option<Duration>)>>>;

/// A breaker (fail_max 1, 10 s) whose rejections are written to the list.
fn watched(name: &'static str, backend: Backend) -> (CircuitBreaker, ManualClock, Seen) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let clock = ManualClock::new();
    let builder = CircuitBreaker::builder(name)
        .fail_max(1)
        .reset_timeout(Duration::from_secs(10))
        .clock(clock.clone())
        .listener(listener::on_rejected(move |cb, e| {
            assert_eq!(cb.name(), e.name());
            log.lock()
                .unwrap()
                .push((e.state(), e.reason(), e.retry_after()));
        }));
    (backend.storage(builder).build(), clock, seen)
}

fn take(seen: &Seen) -> Vec<(State, Reason, Option<Duration>)> {
    std::mem::take(&mut *seen.lock().unwrap())
}

fn open_rejection(retry: u64) -> (State, Reason, Option<Duration>) {
    (
        State::Open,
        Reason::TimeoutNotElapsed,
        Some(Duration::from_secs(retry)),
    )
}

#[test]
fn a_rejected_call_is_heard_once_with_the_error_returned() {
    for backend in BACKENDS {
        let (cb, clock, seen) = watched("rejected-sync", backend);
        let _ = cb.call(|| Err::<(), _>("down"));
        assert!(take(&seen).is_empty(), "a failure is not a rejection");
        clock.advance(Duration::from_secs(4));
        let error = cb.call(|| Ok::<_, ()>(())).unwrap_err();
        let Some(e) = error.breaker_error() else {
            panic!("expected a rejection, got {error:?}")
        };
        assert_eq!(take(&seen), [(e.state(), e.reason(), e.retry_after())]);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(6)), "{backend:?}");
    }
}

#[test]
fn a_fallback_call_tells_the_rejection_before_its_fallback_runs() {
    let (cb, _clock, seen) = watched("rejected-fallback", Backend::Memory);
    cb.open();
    let heard_first = cb.call_or_else(|| Ok::<_, ()>(false), |_| seen.lock().unwrap().len() == 1);
    assert!(heard_first.unwrap());
    assert_eq!(take(&seen), [open_rejection(10)]);
}

#[test]
fn half_open_with_the_trial_place_taken_is_a_rejection() {
    for backend in BACKENDS {
        let (cb, clock, seen) = watched("rejected-trial", backend);
        cb.open();
        clock.advance(Duration::from_secs(10));
        let inner = cb.call(|| {
            // The trial runs; a call made meanwhile is rejected.
            Ok::<_, ()>(cb.call(|| Ok::<_, ()>(())).unwrap_err().is_open())
        });
        assert!(inner.unwrap());
        assert_eq!(
            take(&seen),
            [(State::HalfOpen, Reason::TrialInProgress, None)],
            "{backend:?}"
        );
        assert_eq!(cb.current_state(), State::Closed);
        cb.call(|| Ok::<_, ()>(())).unwrap();
        assert!(take(&seen).is_empty(), "an admitted call is no rejection");
    }
}

#[tokio::test]
async fn async_calls_and_their_fallbacks_tell_rejections() {
    let (cb, _clock, seen) = watched("rejected-async", Backend::Locked);
    cb.open();
    assert!(cb
        .call_async(async { Ok::<_, ()>(()) })
        .await
        .unwrap_err()
        .is_open());
    let value = cb
        .call_async_or_else(async { Ok::<_, ()>(1) }, |_| async { 0 })
        .await;
    assert_eq!(value.unwrap(), 0);
    assert_eq!(take(&seen), [open_rejection(10), open_rejection(10)]);
}

#[derive(Debug)]
struct Rejected(CircuitBreakerError);

impl From<CircuitBreakerError> for Rejected {
    fn from(e: CircuitBreakerError) -> Self {
        Rejected(e)
    }
}

fn rejections_of(name: &str) -> Seen {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    breaker::registry::get(name).add_listener(Arc::new(listener::on_rejected(move |_, e| {
        log.lock()
            .unwrap()
            .push((e.state(), e.reason(), e.retry_after()));
    })));
    seen
}

#[circuit_breaker(name = "rejected-attribute", fail_max = 1, reset_timeout = "60s")]
fn guarded() -> Result<(), Rejected> {
    Ok(())
}

#[circuit_breaker(name = "rejected-attribute")]
async fn guarded_async() -> Result<(), Rejected> {
    Ok(())
}

#[circuit_breaker(name = "rejected-attribute")]
fn guarded_iter() -> impl Iterator<Item = Result<u32, Rejected>> {
    [Ok(1)].into_iter()
}

#[tokio::test]
async fn the_attribute_tells_rejections_of_every_form() {
    let seen = rejections_of("rejected-attribute");
    breaker::registry::get("rejected-attribute").open();
    assert!(guarded().is_err());
    assert!(guarded_async().await.is_err());
    let items: Vec<_> = guarded_iter().collect();
    assert!(matches!(&items[..], [Err(Rejected(e))] if e.state() == State::Open));
    let heard = take(&seen);
    assert_eq!(heard.len(), 3, "{heard:?}");
    assert!(heard.iter().all(|&(state, ..)| state == State::Open));
}

#[test]
fn a_panicking_rejected_listener_still_lets_the_others_hear_it() {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let cb = CircuitBreaker::builder("rejected-panics")
        .listener(listener::on_rejected(|_, _| panic!("listener bug")))
        .listener(listener::on_rejected(move |_, e| {
            log.lock().unwrap().push((e.state(), e.reason(), None));
        }))
        .build();
    cb.open();
    let caught = catch_unwind(AssertUnwindSafe(|| cb.call(|| Ok::<_, ()>(()))));
    assert!(caught.is_err(), "the listener's panic continues");
    assert_eq!(take(&seen).len(), 1);
    cb.close();
    assert_eq!(cb.call(|| Ok::<_, ()>(5)).unwrap(), 5);
}

#[test]
fn closure_listeners_hear_their_one_event() {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (a, b, c, d) = (
        Arc::clone(&log),
        Arc::clone(&log),
        Arc::clone(&log),
        Arc::clone(&log),
    );
    let cb = CircuitBreaker::builder("closures")
        .fail_max(1)
        .listener(listener::on_before_call(move |_| {
            a.lock().unwrap().push("before".into())
        }))
        .listener(listener::on_success(move |_| {
            b.lock().unwrap().push("success".into())
        }))
        .listener(listener::on_failure(move |_, f| {
            c.lock().unwrap().push(format!("failure {f:?}"))
        }))
        .listener(listener::on_state_change(move |cb, from, to| {
            d.lock()
                .unwrap()
                .push(format!("{}: {from} -> {to}", cb.name()))
        }))
        .build();
    let _ = cb.call(|| Ok::<_, &str>(()));
    let _ = cb.call(|| Err::<(), _>("down"));
    assert_eq!(
        *log.lock().unwrap(),
        [
            "before",
            "success",
            "before",
            "failure \"down\"",
            "closures: closed -> open"
        ]
    );
}
