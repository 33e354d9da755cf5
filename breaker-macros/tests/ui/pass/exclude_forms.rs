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

mod predicates {
    pub fn not_found(e: &std::io::Error) -> bool {
        e.kind() == std::io::ErrorKind::NotFound
    }

    pub fn is_slow(e: &super::DbError) -> bool {
        matches!(e, super::DbError::Timeout { ms } if *ms > 1000)
    }
}

#[circuit_breaker(
    name = "excludes",
    exclude = [
        std::io::Error,
        DbError,
        DbError::NotFound(..),
        DbError::Timeout { .. },
        DbError::Unit { .. },
        DbError::Unit,
        |e: &DbError| matches!(e, DbError::NotFound(id) if *id > 10),
        move |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound,
        DbError::NotFound(id) if *id > 10,
        DbError::Timeout { ms } if *ms < 100,
        DbError::Unit if true,
        predicates::not_found,
        predicates::is_slow,
    ]
)]
fn query() -> Result<u32, DbError> {
    Ok(1)
}

impl From<CircuitBreakerError> for NotAnError {
    fn from(_: CircuitBreakerError) -> Self {
        NotAnError
    }
}

// A type that is not an `Error` is excluded as the function's own error.
#[circuit_breaker(name = "excludes-own", exclude = [NotAnError, |e: &NotAnError| true])]
fn own() -> Result<u32, NotAnError> {
    Err(NotAnError)
}

fn main() {
    let _ = own();
    let _ = query();
}
