//! The trip-policy keys of the attribute reach the breaker: several
//! half-open trials, an exponential backoff with jitter.

use std::time::Duration;

use breaker::{circuit_breaker, registry, Backoff, CircuitBreakerError, State};

#[derive(Debug)]
struct Down;

impl From<CircuitBreakerError> for Down {
    fn from(_: CircuitBreakerError) -> Self {
        Down
    }
}

#[circuit_breaker(
    name = "attribute-policies",
    fail_max = 1,
    reset_timeout = "10s",
    half_open_calls = 2,
    backoff = exponential(2.0, "10m"),
    jitter = 0.2
)]
fn fetch(fail: bool) -> Result<u32, Down> {
    if fail {
        Err(Down)
    } else {
        Ok(1)
    }
}

#[circuit_breaker(name = "attribute-jitter-only", jitter = 0.5)]
fn jittered() -> Result<u32, Down> {
    Ok(2)
}

#[test]
fn the_policy_keys_configure_the_declared_breaker() {
    let cb = registry::get("attribute-policies");
    assert_eq!(cb.half_open_calls(), 2);
    assert_eq!(
        cb.backoff(),
        Backoff::exponential(2.0, Duration::from_secs(600)).jitter(0.2)
    );
    // A jitter alone spreads the constant period.
    assert_eq!(
        registry::get("attribute-jitter-only").backoff(),
        Backoff::constant().jitter(0.5)
    );
    assert_eq!(jittered().unwrap(), 2);
    // Two trials run at once in half-open.
    registry::isolate(|| {
        let cb = registry::get("attribute-policies");
        assert!(fetch(true).is_err());
        cb.half_open();
        let inner = cb.call(|| Ok::<_, Down>(fetch(false)));
        assert!(matches!(inner, Ok(Ok(1))));
        assert_eq!(cb.current_state(), State::Closed);
    });
}
