use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

#[async_trait::async_trait]
pub trait Store {
    async fn load(&self, id: u64) -> Result<u64, DbError>;
    async fn save(&self, id: u64, name: String) -> Result<(), DbError>;
}

pub struct Db;

#[async_trait::async_trait]
impl Store for Db {
    #[circuit_breaker(name = "store.load", exclude = [DbError])]
    async fn load(&self, id: u64) -> Result<u64, DbError> {
        Ok(id)
    }

    #[circuit_breaker(name = "store.save")]
    async fn save(&self, id: u64, name: String) -> Result<(), DbError> {
        let _ = (id, name);
        Ok(())
    }
}

fn main() {
    let _ = Db.load(1);
    let _ = Db.save(1, String::new());
}
