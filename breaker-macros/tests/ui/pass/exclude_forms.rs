use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub enum DbError {
    NotFound(u64),
    Timeout { ms: u64 },
    Unit,
    Breaker(CircuitBreakerError),
}

impl From<CircuitBreakerError> for DbError {
    fn from(e: CircuitBreakerError) -> Self {
        DbError::Breaker(e)
    }
}

#[derive(Debug)]
pub struct NotAnError;

#[circuit_breaker(
    name = "excludes",
    exclude = [
        std::io::Error,
        NotAnError,
        DbError::NotFound(..),
        DbError::Timeout { .. },
        DbError::Unit { .. },
        DbError::Unit,
        |e: &DbError| matches!(e, DbError::NotFound(id) if *id > 10),
        move |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound,
    ]
)]
fn query() -> Result<u32, DbError> {
    Ok(1)
}

fn main() {
    let _ = query();
}
