//! What a `#[circuit_breaker]` function returns: a `Result`
//! ([`GuardedResult`]) whose error can carry the breaker's own
//! ([`FromBreakerError`]). The attribute checks both on the function's
//! return type, so a misfit is one compile error that says what to change.

use crate::error::CircuitBreakerError;

/// An error type that can carry the breaker's [`CircuitBreakerError`]: what
/// a `#[circuit_breaker]` function returns when its call is rejected (and
/// when its failure opens the circuit, while `throw_new_error_on_trip` is
/// on).
///
/// Implemented for every type that implements
/// `From<CircuitBreakerError>`: implement that (a `#[from]` variant with
/// thiserror), not this. A generic error type is bounded the same way,
/// `E: From<CircuitBreakerError>`.
///
/// ```
/// use breaker::{circuit_breaker, CircuitBreakerError, FromBreakerError};
///
/// #[derive(Debug, thiserror::Error)]
/// enum DbError {
///     #[error("connection refused")]
///     Down,
///     #[error(transparent)]
///     Breaker(#[from] CircuitBreakerError), // makes DbError a FromBreakerError
/// }
///
/// #[circuit_breaker(name = "returns.db")]
/// fn query() -> Result<u32, DbError> {
///     Err(DbError::Down)
/// }
///
/// fn carries<E: FromBreakerError>() {}
/// carries::<DbError>();
/// # let _ = query();
/// ```
///
/// A foreign error type (`std::io::Error`, `reqwest::Error`) cannot be
/// given the impl (the orphan rule): return an error of your own that wraps
/// it and the breaker's, or `anyhow::Error`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry the circuit breaker's error",
    label = "the error type of a `#[circuit_breaker]` function",
    note = "add `impl From<breaker::CircuitBreakerError> for {Self}` (or a `#[from] breaker::CircuitBreakerError` variant with thiserror) so rejected calls can return it",
    note = "if `{Self}` is not a type of your crate (the orphan rule forbids that impl), return an error type of your own that wraps it and `breaker::CircuitBreakerError`, or `anyhow::Error`"
)]
pub trait FromBreakerError: Sized {
    /// The breaker's error as `Self`.
    fn from_breaker_error(error: CircuitBreakerError) -> Self;
}

impl<E: From<CircuitBreakerError>> FromBreakerError for E {
    #[inline(always)]
    fn from_breaker_error(error: CircuitBreakerError) -> Self {
        E::from(error)
    }
}

/// The `Result` a `#[circuit_breaker]` function returns: the attribute
/// takes a return type named `Result` (or with a name ending in `Result`, an
/// alias such as `io::Result<T>`) for one, and checks here that it is.
/// Implemented for `Result<T, E>` only (sealed).
///
/// ```
/// use breaker::GuardedResult;
///
/// type DbResult<T> = Result<T, std::io::Error>;
///
/// fn guarded<R: GuardedResult>() {}
/// guarded::<DbResult<u32>>(); // an alias of `Result`
/// ```
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker]` guards functions returning `Result<T, E>`: `{Self}` is not a `Result`",
    label = "not a `Result`",
    note = "the attribute takes a return type whose name ends in `Result` for an alias of `Result`; return `Result<T, E>` (or an alias of it) instead"
)]
pub trait GuardedResult: sealed::Sealed + Sized {
    /// The `T` of `Result<T, E>`.
    type Ok;
    /// The `E` of `Result<T, E>`.
    type Err;
    /// `self` as the `Result` it is.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
    /// The `Result` as `Self`.
    fn from_result(result: Result<Self::Ok, Self::Err>) -> Self;
}

impl<T, E> GuardedResult for Result<T, E> {
    type Ok = T;
    type Err = E;

    #[inline(always)]
    fn into_result(self) -> Result<T, E> {
        self
    }

    #[inline(always)]
    fn from_result(result: Result<T, E>) -> Self {
        result
    }
}

mod sealed {
    pub trait Sealed {}
    impl<T, E> Sealed for Result<T, E> {}
}
