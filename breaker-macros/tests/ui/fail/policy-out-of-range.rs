use breaker::circuit_breaker;

#[circuit_breaker(name = "a", half_open_calls = 0, jitter = 1.0)]
fn zero_trials() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "b", backoff = exponential(0.5, "10m"))]
fn shrinking() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "c", reset_timeout = "1m", backoff = exponential(2.0, "30s"))]
fn cap_below_reset() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "d", backoff = linear(2.0, "10m"), jitter = -0.1)]
fn unknown_backoff() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "e", backoff = exponential(2.0, "ten minutes"))]
fn bad_cap() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
