//! The attribute on sync functions and methods.

use breaker::{circuit_breaker, registry, CircuitBreakerError, State};

#[derive(Debug, PartialEq, thiserror::Error)]
enum DbError {
    #[error("connection refused")]
    Down,
    #[error("invalid: {0}")]
    Invalid(#[source] Validation),
    #[error(transparent)]
    Breaker(#[from] CircuitBreakerError),
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("validation failed")]
struct Validation;

#[circuit_breaker(name = "sync-db", fail_max = 2, reset_timeout = "60s", exclude = [Validation])]
fn update(fail: Option<DbError>) -> Result<u32, DbError> {
    match fail {
        Some(e) => Err(e),
        None => Ok(7),
    }
}

#[test]
fn trips_rejects_and_resets_through_the_registry() {
    let cb = registry::get("sync-db");
    cb.reset();
    assert_eq!(update(None), Ok(7));
    assert_eq!(update(Some(DbError::Down)), Err(DbError::Down));
    assert_eq!(cb.fail_counter(), 1);
    // An excluded error in the source chain is returned as-is and is a success.
    assert_eq!(
        update(Some(DbError::Invalid(Validation))),
        Err(DbError::Invalid(Validation))
    );
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(update(Some(DbError::Down)), Err(DbError::Down));
    let tripped = update(Some(DbError::Down));
    assert!(
        matches!(tripped, Err(DbError::Breaker(ref e)) if e.state() == State::Open),
        "{tripped:?}"
    );
    assert_eq!(cb.current_state(), State::Open);
    assert!(matches!(update(None), Err(DbError::Breaker(_))));
    registry::get("sync-db").reset();
    assert_eq!(update(None), Ok(7));
}
