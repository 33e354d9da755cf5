use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

fn wrong_parameter(id: String) -> Result<u64, DbError> {
    Ok(id.len() as u64)
}

fn wrong_return(id: u64) -> Result<u32, DbError> {
    Ok(id as u32)
}

#[circuit_breaker(name = "db", fallback = wrong_parameter)]
fn by_parameter(id: u64) -> Result<u64, DbError> {
    Ok(id)
}

#[circuit_breaker(name = "db", fallback = wrong_return)]
fn by_return(id: u64) -> Result<u64, DbError> {
    Ok(id)
}

pub struct Repo;

impl Repo {
    #[circuit_breaker(name = "repo", fallback = Self::stale)]
    fn fetch(&mut self) -> Result<u64, DbError> {
        Ok(1)
    }

    fn stale(&mut self) -> Result<u64, DbError> {
        Ok(0)
    }
}

fn main() {}
