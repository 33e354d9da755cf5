use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

/// Docs and other attributes stay on the function.
#[circuit_breaker(name = "db", fail_max = 5, reset_timeout = "60s", success_threshold = 2, throw_new_error_on_trip = false)]
#[must_use]
pub fn update(id: u64) -> Result<u64, DbError> {
    if id == 0 {
        return Err(DbError);
    }
    let parsed: u64 = "7".parse().map_err(|_| DbError)?;
    Ok(id + parsed)
}

#[circuit_breaker]
fn default_name() -> std::result::Result<(), DbError> {
    Ok(())
}

fn main() {
    let _ = update(1);
    let _ = default_name();
}
