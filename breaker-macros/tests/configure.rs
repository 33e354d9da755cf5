//! `storage = path` and `listeners = [paths]`: functions that build them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use breaker::storage::{step, Applied, Limits, Op, Snapshot, Storage};
use breaker::{circuit_breaker, registry, CircuitBreaker, CircuitBreakerError, Listener, State};

#[derive(Debug)]
struct Failed(#[allow(dead_code)] Option<CircuitBreakerError>);

impl From<CircuitBreakerError> for Failed {
    fn from(e: CircuitBreakerError) -> Self {
        Failed(Some(e))
    }
}

/// A storage that counts the operations applied to it.
#[derive(Default)]
struct Counting {
    state: parking_lot::Mutex<Snapshot>,
    applied: AtomicUsize,
}

static APPLIED: AtomicUsize = AtomicUsize::new(0);

impl Storage for Counting {
    fn load(&self) -> Snapshot {
        *self.state.lock()
    }
    fn apply(&self, op: Op, limits: &Limits) -> Applied {
        self.applied.fetch_add(1, Ordering::SeqCst);
        APPLIED.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state.lock();
        let before = *state;
        let (after, outcome) = step(&before, op, limits);
        *state = after;
        Applied {
            before,
            after,
            outcome,
        }
    }
}

fn counting_storage() -> Counting {
    Counting::default()
}

static CHANGES: AtomicUsize = AtomicUsize::new(0);
static FAILURES: AtomicUsize = AtomicUsize::new(0);

struct CountChanges;
impl Listener for CountChanges {
    fn state_change(&self, _: &CircuitBreaker, _: State, _: State) {
        CHANGES.fetch_add(1, Ordering::SeqCst);
    }
}

struct CountFailures;
impl Listener for CountFailures {
    fn failure(&self, _: &CircuitBreaker, _: &breaker::Failure<'_>) {
        FAILURES.fetch_add(1, Ordering::SeqCst);
    }
}

fn count_changes() -> CountChanges {
    CountChanges
}

fn count_failures() -> Arc<dyn Listener> {
    Arc::new(CountFailures)
}

#[circuit_breaker(name = "configured", fail_max = 1, storage = counting_storage, listeners = [count_changes, count_failures])]
fn flaky(fail: bool) -> Result<(), Failed> {
    if fail {
        return Err(Failed(None));
    }
    Ok(())
}

#[test]
fn storage_and_listeners_come_from_the_named_functions() {
    let cb = registry::get("configured");
    assert_eq!(cb.listeners().len(), 2);
    assert!(flaky(false).is_ok());
    assert_eq!(
        APPLIED.load(Ordering::SeqCst),
        0,
        "a quiet success writes nothing"
    );
    assert!(flaky(true).is_err());
    assert_eq!(
        APPLIED.load(Ordering::SeqCst),
        1,
        "the failure went to the custom storage"
    );
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(FAILURES.load(Ordering::SeqCst), 1);
    assert_eq!(CHANGES.load(Ordering::SeqCst), 1);
}
