use breaker::circuit_breaker;

#[circuit_breaker(name = "db", fail_max = 0, success_threshold = 70000)]
fn query() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "db", fail_max = "5", throw_new_error_on_trip = "yes")]
fn wrong_types() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
