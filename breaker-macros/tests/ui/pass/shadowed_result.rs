//! Generated code must not depend on the user's names: shadowed `Result`,
//! `Ok`, `Err`, `Option`, `Some`, `None`, `Box` and a local `core` module.
#![allow(dead_code)]

use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

type Result<T> = std::result::Result<T, DbError>;
struct Option;
struct Some;
struct None;
struct Box;
mod core {}

#[circuit_breaker(name = "shadowed", fail_max = 2, reset_timeout = "1s")]
fn query() -> Result<u32> {
    std::result::Result::Ok(1)
}

fn main() {
    let _ = query();
}
