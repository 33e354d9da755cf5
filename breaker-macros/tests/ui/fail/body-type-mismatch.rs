use breaker::circuit_breaker;

#[circuit_breaker(name = "db")]
fn query() -> Result<u32, breaker::CircuitBreakerError> {
    Ok("not a number")
}

fn main() {}
