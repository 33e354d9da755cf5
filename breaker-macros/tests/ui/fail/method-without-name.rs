use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

pub struct Payments;

impl Payments {
    #[circuit_breaker(fail_max = 3)]
    pub fn fetch(&self) -> Result<u64, DbError> {
        Ok(1)
    }

    #[circuit_breaker]
    pub fn boxed(self: Box<Self>) -> Result<u64, DbError> {
        Ok(2)
    }

    #[circuit_breaker]
    pub fn connect() -> Result<Self, DbError> {
        Ok(Payments)
    }

    #[circuit_breaker(crate = "::breaker")]
    pub fn all<T: Into<u64>>(items: Vec<T>) -> Result<u64, DbError>
    where
        Self: Sized,
    {
        Ok(items.into_iter().map(Into::into).sum())
    }

    // Named: fine.
    #[circuit_breaker(name = "payments.refund")]
    pub fn refund(&self) -> Result<u64, DbError> {
        Ok(3)
    }
}

pub trait Store {
    #[circuit_breaker]
    fn first(&self) -> Result<u64, DbError> {
        Ok(0)
    }
}

fn main() {}
