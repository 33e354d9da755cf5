use breaker::circuit_breaker;

#[circuit_breaker(name = "db")]
const fn query() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
