use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

#[circuit_breaker(name = "rows")]
fn rows(n: u32) -> impl Iterator<Item = Result<u32, DbError>> + Send {
    (0..n).map(Ok)
}

fn main() {
    let total: Result<u32, DbError> = rows(3).sum();
    let _ = total;
}
