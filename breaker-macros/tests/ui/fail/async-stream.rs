use std::pin::Pin;
use std::task::{Context, Poll};

use breaker::{circuit_breaker, CircuitBreakerError};
use futures_core::Stream;

#[derive(Debug)]
pub struct DbError;

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError
    }
}

struct Rows;

impl Stream for Rows {
    type Item = Result<u32, DbError>;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}

#[circuit_breaker(name = "rows")]
async fn rows() -> impl Stream<Item = Result<u32, DbError>> {
    Rows
}

fn main() {}
