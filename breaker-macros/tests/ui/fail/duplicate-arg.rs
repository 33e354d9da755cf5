use breaker::circuit_breaker;

#[circuit_breaker(fail_max = 5, name = "db", fail_max = 3)]
fn query() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
