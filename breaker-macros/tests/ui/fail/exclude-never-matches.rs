use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub enum DbError {
    Down,
    Breaker(CircuitBreakerError),
}

impl From<CircuitBreakerError> for DbError {
    fn from(e: CircuitBreakerError) -> Self {
        DbError::Breaker(e)
    }
}

#[circuit_breaker(name = "db", exclude = [u32, String, DbError])]
fn by_type() -> Result<(), DbError> {
    Err(DbError::Down)
}

#[circuit_breaker(name = "db", exclude = [|e: &u32| *e > 1])]
fn by_closure() -> Result<(), DbError> {
    Err(DbError::Down)
}

fn main() {}
