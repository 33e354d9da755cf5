use breaker::circuit_breaker;

#[circuit_breaker(name = "db", fail_maximum = 5)]
fn query() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
