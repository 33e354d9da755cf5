//! `clock = path`: a declared breaker on a clock of the test's choosing.

use std::sync::OnceLock;
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::{circuit_breaker, registry, CircuitBreakerError, State};

#[derive(Debug, PartialEq)]
enum DbError {
    Down,
    Rejected,
}

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError::Rejected
    }
}

fn test_clock() -> ManualClock {
    static CLOCK: OnceLock<ManualClock> = OnceLock::new();
    CLOCK.get_or_init(ManualClock::new).clone()
}

#[circuit_breaker(name = "clocked", fail_max = 1, reset_timeout = "30s", clock = test_clock)]
fn query(ok: bool) -> Result<(), DbError> {
    match ok {
        true => Ok(()),
        false => Err(DbError::Down),
    }
}

#[test]
fn a_declared_breaker_runs_on_its_clock() {
    assert_eq!(query(false), Err(DbError::Rejected)); // opens it
    assert_eq!(query(true), Err(DbError::Rejected));
    test_clock().advance(Duration::from_secs(29));
    assert_eq!(query(true), Err(DbError::Rejected));
    test_clock().advance(Duration::from_secs(1));
    assert_eq!(query(true), Ok(())); // the trial, after 30 s on the clock
    assert_eq!(registry::get("clocked").current_state(), State::Closed);
}
