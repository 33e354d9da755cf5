// A type whose name ends in `Result` is taken for an alias of `Result`; one
// that is not one is a single error on the return type.
use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

#[allow(dead_code)]
struct NotResult<T, E>(T, E);

#[circuit_breaker(name = "not-result.sync")]
fn sync(x: u32) -> NotResult<u32, DbError> {
    if x == 0 {
        return NotResult(0, DbError);
    }
    NotResult(x, DbError)
}

#[circuit_breaker(name = "not-result.async")]
async fn asynchronous(x: u32) -> NotResult<u32, DbError> {
    NotResult(x, DbError)
}

fn main() {
    let _ = (with_fallback(1), items(), later(), flow());
    let _ = sync(1);
    let _ = asynchronous(1);
}

fn cached(x: u32) -> NotResult<u32, DbError> {
    NotResult(x, DbError)
}

#[circuit_breaker(name = "not-result.fallback", fallback = cached)]
fn with_fallback(x: u32) -> NotResult<u32, DbError> {
    NotResult(x, DbError)
}

#[circuit_breaker(name = "not-result.iter")]
fn items() -> impl Iterator<Item = NotResult<u32, DbError>> {
    std::iter::empty()
}

#[circuit_breaker(name = "not-result.future")]
fn later() -> impl std::future::Future<Output = NotResult<u32, DbError>> {
    async { NotResult(1, DbError) }
}

#[circuit_breaker(name = "not-result.stream")]
fn flow() -> impl futures_core::Stream<Item = NotResult<u32, DbError>> {
    Flow
}

struct Flow;

impl futures_core::Stream for Flow {
    type Item = NotResult<u32, DbError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(None)
    }
}
