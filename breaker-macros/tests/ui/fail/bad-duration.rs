use breaker::circuit_breaker;

#[circuit_breaker(name = "db", reset_timeout = "60 parsecs")]
fn parsecs() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "db", reset_timeout = "")]
fn empty() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "db", reset_timeout = "99999999999h")]
fn overflow() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "db", reset_timeout = 60)]
fn not_a_string() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
