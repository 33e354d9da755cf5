//! Functions that return a future without being `async fn`s: the future the
//! body makes is one guarded call, as an `async fn`'s body is.

use std::future::Future;
use std::pin::Pin;

use breaker::{circuit_breaker, registry, CircuitBreakerError, State};

#[derive(Debug, PartialEq)]
enum ApiError {
    Down,
    Rejected,
}

impl From<CircuitBreakerError> for ApiError {
    fn from(_: CircuitBreakerError) -> Self {
        ApiError::Rejected
    }
}

#[circuit_breaker(name = "shape-impl", fail_max = 1, reset_timeout = "60s")]
fn fetch(ok: bool) -> impl Future<Output = Result<u32, ApiError>> + Send {
    async move {
        match ok {
            true => Ok(1),
            false => Err(ApiError::Down),
        }
    }
}

#[tokio::test]
async fn an_impl_future_return_is_guarded() {
    assert_eq!(fetch(true).await, Ok(1));
    assert_eq!(fetch(false).await, Err(ApiError::Rejected)); // opens it
    assert_eq!(registry::get("shape-impl").current_state(), State::Open);
    assert_eq!(fetch(true).await, Err(ApiError::Rejected));
}

/// The shape `#[async_trait]` gives an `async fn` in a trait impl.
trait Api {
    fn get<'a>(
        &'a self,
        id: u32,
    ) -> Pin<Box<dyn Future<Output = Result<u32, ApiError>> + Send + 'a>>;
}

struct Client {
    down: bool,
}

impl Api for Client {
    #[circuit_breaker(name = "shape-boxed", fail_max = 1, reset_timeout = "60s")]
    fn get<'a>(
        &'a self,
        id: u32,
    ) -> Pin<Box<dyn Future<Output = Result<u32, ApiError>> + Send + 'a>> {
        Box::pin(async move {
            match self.down {
                true => Err(ApiError::Down),
                false => Ok(id),
            }
        })
    }
}

#[tokio::test]
async fn a_boxed_future_return_is_guarded() {
    let up = Client { down: false };
    let down = Client { down: true };
    assert_eq!(up.get(3).await, Ok(3));
    // Nothing runs until the future is polled: dropping it records nothing.
    drop(down.get(1));
    assert_eq!(registry::get("shape-boxed").fail_counter(), 0);
    assert_eq!(down.get(1).await, Err(ApiError::Rejected)); // opens it
    assert_eq!(up.get(3).await, Err(ApiError::Rejected));
    // The future is `Send`: it can be spawned.
    let spawned = tokio::spawn(async { Client { down: false }.get(5).await });
    assert_eq!(spawned.await.unwrap(), Err(ApiError::Rejected));
}

/// `#[async_trait]` turns each `async fn` of the impl into the boxed shape
/// above before the attribute sees it.
#[async_trait::async_trait]
trait Store {
    async fn load(&self, id: u32) -> Result<u32, ApiError>;
}

struct Db {
    down: bool,
}

#[async_trait::async_trait]
impl Store for Db {
    #[circuit_breaker(name = "shape-async-trait", fail_max = 1, reset_timeout = "60s")]
    async fn load(&self, id: u32) -> Result<u32, ApiError> {
        match self.down {
            true => Err(ApiError::Down),
            false => Ok(id * 2),
        }
    }
}

#[tokio::test]
async fn an_async_trait_method_is_guarded() {
    let up = Db { down: false };
    let down = Db { down: true };
    assert_eq!(up.load(2).await, Ok(4));
    assert_eq!(down.load(2).await, Err(ApiError::Rejected)); // opens it
    assert_eq!(
        registry::get("shape-async-trait").current_state(),
        State::Open
    );
    assert_eq!(up.load(2).await, Err(ApiError::Rejected));
    let spawned = tokio::spawn(async { Db { down: false }.load(1).await });
    assert_eq!(spawned.await.unwrap(), Err(ApiError::Rejected));
}
