use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

#[circuit_breaker(name = "db")]
async fn load(id: u64) -> Result<u64, DbError> {
    if id == 0 {
        return Err(DbError);
    }
    Ok(id)
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(load(1));
}
