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

struct Rows(u32);

impl Stream for Rows {
    type Item = Result<u32, DbError>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0 = self.0.saturating_sub(1);
        Poll::Ready((self.0 > 0).then_some(Ok(self.0)))
    }
}

#[circuit_breaker(name = "rows")]
fn rows(n: u32) -> impl Stream<Item = Result<u32, DbError>> + Send + Unpin {
    Rows(n)
}

#[circuit_breaker(name = "rows")]
fn rows_qualified(n: u32) -> impl futures_core::Stream<Item = Result<u32, DbError>> {
    Rows(n)
}

fn main() {
    let _ = rows(3);
    let _ = rows_qualified(3);
}
