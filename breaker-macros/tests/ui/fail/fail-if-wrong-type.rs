// A `fail_if` predicate on another type than the function's `Ok` type is an
// error on the closure.
use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

#[circuit_breaker(name = "a", fail_if = |n: &u32| *n == 0)]
fn text() -> Result<String, DbError> {
    Ok(String::new())
}

#[circuit_breaker(name = "b", fail_if = |n: &u32| *n == 0)]
fn items() -> impl Iterator<Item = Result<u32, DbError>> {
    std::iter::empty()
}

fn main() {}
