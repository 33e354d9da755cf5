use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

pub struct Repo {
    rows: Vec<u64>,
}

pub trait Store {
    fn first(&self) -> Result<u64, DbError>;
}

impl Repo {
    #[circuit_breaker(name = "repo")]
    pub fn get(&self, i: usize) -> Result<&u64, DbError> {
        self.rows.get(i).ok_or(DbError)
    }

    #[circuit_breaker(name = "repo")]
    pub fn push(&mut self, v: u64) -> Result<(), DbError> {
        self.rows.push(v);
        Ok(())
    }

    #[circuit_breaker(name = "repo")]
    pub fn into_rows(self) -> Result<Vec<u64>, DbError> {
        Ok(self.rows)
    }

    #[circuit_breaker(name = "repo")]
    pub async fn count(&self) -> Result<usize, DbError> {
        Ok(self.rows.len())
    }

    #[circuit_breaker(name = "repo")]
    pub fn make() -> Result<Self, DbError> {
        Ok(Self { rows: vec![] })
    }

    // Neither `self` nor `Self`: the attribute cannot tell it from a free
    // function, and the default name is accepted (the registry reports a
    // second function with the same default name).
    #[circuit_breaker]
    pub fn ping() -> Result<(), DbError> {
        Ok(())
    }
}

impl Store for Repo {
    #[circuit_breaker(name = "repo")]
    fn first(&self) -> Result<u64, DbError> {
        self.get(0).copied()
    }
}

fn main() {
    let mut repo = Repo::make().unwrap();
    let _ = repo.push(1);
    let _ = repo.first();
    let _ = repo.count();
    let _ = repo.into_rows();
    let _ = Repo::ping();
}
