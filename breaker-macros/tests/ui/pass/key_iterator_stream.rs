// `key` on functions returning iterators and streams: the key is read
// before the body, which may move the argument it borrowed.
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

#[circuit_breaker(name = "shard-rows", key = shard)]
fn rows(shard: u32, n: u32) -> impl Iterator<Item = Result<u32, DbError>> {
    (0..n).map(move |i| Ok(shard + i))
}

#[circuit_breaker(name = "tenant-rows", key = tenant.as_str())]
fn tenant_rows(tenant: String) -> Result<impl Iterator<Item = Result<String, DbError>>, DbError> {
    Ok(std::iter::once(Ok(tenant))) // moves what the key borrowed
}

#[circuit_breaker(name = "stream-rows", key = (region, shard))]
fn stream_rows(region: &str, shard: u16) -> impl Stream<Item = Result<u32, DbError>> + Send + Unpin {
    let _ = region;
    Rows(u32::from(shard))
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let it = rows(1, 3);
    assert_send(&it);
    let _ = it.count();
    let _ = tenant_rows("acme".to_owned());
    let s = stream_rows("eu", 3);
    assert_send(&s);
}
