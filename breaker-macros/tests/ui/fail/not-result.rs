use breaker::circuit_breaker;

#[circuit_breaker(name = "db")]
fn nothing() {}

#[circuit_breaker(name = "db")]
fn option() -> Option<u32> {
    None
}

#[circuit_breaker(name = "db")]
async fn rows() -> impl Iterator<Item = Result<u32, breaker::CircuitBreakerError>> {
    std::iter::empty()
}

fn main() {}
