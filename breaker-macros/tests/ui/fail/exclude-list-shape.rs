use breaker::circuit_breaker;

#[derive(Debug, thiserror::Error)]
#[error("a")]
struct A;

#[derive(Debug, thiserror::Error)]
#[error("b")]
struct B;

#[circuit_breaker(name = "db", exclude = [A | B])]
fn either() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "db", exclude = [A,, B])]
fn doubled_comma() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
