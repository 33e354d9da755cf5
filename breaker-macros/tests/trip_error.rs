//! The call whose failure opens the circuit: by default it returns the
//! breaker's error (`E::from(CircuitBreakerError)`, as pybreaker raises
//! `CircuitBreakerError`); with `throw_new_error_on_trip = false` it returns
//! its own error, so the cause of the trip (the 500, the timeout) is not
//! lost.

use breaker::{circuit_breaker, registry, CircuitBreakerError, Reason, State};

#[derive(Debug, PartialEq, thiserror::Error)]
enum ApiError {
    #[error("upstream answered {0}")]
    Status(u16),
    #[error(transparent)]
    Breaker(#[from] CircuitBreakerError),
}

#[circuit_breaker(name = "trip-error.default", fail_max = 1, reset_timeout = "60s")]
fn default_form(status: u16) -> Result<(), ApiError> {
    Err(ApiError::Status(status))
}

#[circuit_breaker(
    name = "trip-error.own",
    fail_max = 1,
    reset_timeout = "60s",
    throw_new_error_on_trip = false
)]
fn own_error(status: u16) -> Result<(), ApiError> {
    Err(ApiError::Status(status))
}

#[test]
fn the_tripping_call_returns_the_breakers_error_by_default() {
    registry::get("trip-error.default").reset();
    let Err(ApiError::Breaker(e)) = default_form(500) else {
        panic!("expected the breaker's error");
    };
    assert_eq!(e.reason(), Reason::FailureThreshold);
    assert_eq!(
        registry::get("trip-error.default").current_state(),
        State::Open
    );
}

#[test]
fn with_throw_new_error_on_trip_false_it_returns_its_own_error() {
    let cb = registry::get("trip-error.own");
    cb.reset();
    assert_eq!(own_error(500), Err(ApiError::Status(500)));
    assert_eq!(cb.current_state(), State::Open);
    // Later calls are rejected with the breaker's error, as always.
    assert!(matches!(own_error(500), Err(ApiError::Breaker(_))));
}
