use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

mod cache {
    pub fn customer(id: u64, _name: &str) -> Result<u64, super::DbError> {
        Ok(id)
    }

    pub async fn customer_async(id: u64) -> Result<u64, super::DbError> {
        Ok(id)
    }
}

#[circuit_breaker(name = "fallback", fallback = cache::customer)]
fn customer(mut id: u64, name: &str) -> Result<u64, DbError> {
    id += name.len() as u64;
    Ok(id)
}

#[circuit_breaker(name = "fallback-async", fallback = cache::customer_async)]
async fn customer_async(id: u64) -> Result<u64, DbError> {
    Ok(id)
}

#[deny(unused_mut, unused_variables)]
fn main() {
    let _ = customer(1, "a");
    let _ = customer_async(1);
}
