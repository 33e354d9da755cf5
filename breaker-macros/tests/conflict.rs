//! Two attributes naming one breaker with different values for a setting:
//! the first use panics, naming both functions. (A test binary of its own:
//! the registry of this process cannot start.)

use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
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

#[test]
fn conflicting_settings_panic_at_first_use_naming_both_functions() {
    let panic = std::panic::catch_unwind(first).unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted message")
        .clone();
    assert!(
        message.contains("conflicting settings for circuit breaker 'conflicted'"),
        "{message}"
    );
    assert!(
        message.contains("fail_max = 3 on conflict::first"),
        "{message}"
    );
    assert!(
        message.contains("fail_max = 4 on conflict::second"),
        "{message}"
    );
    // Every later use reports the same, rather than running unguarded.
    assert!(std::panic::catch_unwind(second).is_err());
    assert!(std::panic::catch_unwind(breaker::registry::names).is_err());
}
