// Rate-policy values out of range are errors on their tokens: a rate
// outside (0, 1], a window of no call or of no time, `min_calls = 0`, and
// both windows at once, a zero slow-call duration, a slow-call rate outside
// (0, 1].
use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

#[circuit_breaker(name = "a", failure_rate = 0)]
fn zero_rate() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "b", failure_rate = 1.5)]
fn rate_above_one() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "c", failure_rate = -0.5)]
fn negative_rate() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "d", failure_rate = 0.5, window_calls = 0)]
fn no_calls() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "e", failure_rate = 0.5, window_calls = 100000)]
fn too_many_calls() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "f", failure_rate = 0.5, window_time = "0s")]
fn no_time() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "g", failure_rate = 0.5, window_time = "5ms")]
fn too_short() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "h", failure_rate = 0.5, min_calls = 0)]
fn no_min_calls() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "i", failure_rate = 0.5, window_calls = 100, window_time = "60s")]
fn two_windows() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "j", failure_rate = "half")]
fn not_a_number() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "k", slow_call_duration = "0ms", slow_call_rate = 0)]
fn zero_slow() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(name = "l", slow_call_duration = "2 s", slow_call_rate = 1.01)]
fn bad_slow() -> Result<(), DbError> {
    Ok(())
}

fn main() {}
