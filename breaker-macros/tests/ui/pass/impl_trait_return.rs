use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

#[circuit_breaker(name = "rows")]
fn rows(n: u32) -> Result<impl Iterator<Item = Result<u32, DbError>>, DbError> {
    let limit: u32 = "10".parse().map_err(|_| DbError)?;
    Ok((0..n.min(limit)).map(Ok))
}

fn main() {
    let _ = rows(3).map(|it| it.count());
}
