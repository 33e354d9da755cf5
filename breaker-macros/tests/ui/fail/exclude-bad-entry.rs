use breaker::circuit_breaker;

#[circuit_breaker(name = "db", exclude = [42])]
fn literal() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "db", exclude = [|e| true])]
fn untyped_closure() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

#[circuit_breaker(name = "db", exclude = ValidationError)]
fn not_a_list() -> Result<(), breaker::CircuitBreakerError> {
    Ok(())
}

fn main() {}
