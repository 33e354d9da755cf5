//! `crate = "..."` for a renamed dependency.
use ::breaker as circuit;

#[derive(Debug)]
pub struct DbError;

impl From<circuit::CircuitBreakerError> for DbError {
    fn from(_: circuit::CircuitBreakerError) -> Self {
        DbError
    }
}

#[circuit::circuit_breaker(name = "renamed", crate = "circuit")]
fn query() -> Result<u32, DbError> {
    Ok(1)
}

fn main() {
    let _ = query();
}
