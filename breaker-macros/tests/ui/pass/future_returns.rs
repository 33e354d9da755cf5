use std::future::Future;
use std::pin::Pin;

use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct ApiError;

impl From<CircuitBreakerError> for ApiError {
    fn from(_: CircuitBreakerError) -> Self {
        ApiError
    }
}

#[circuit_breaker(name = "impl-future")]
pub fn impl_future(id: u32) -> impl Future<Output = Result<u32, ApiError>> {
    async move { Ok(id) }
}

#[circuit_breaker(name = "impl-future-send")]
pub fn impl_future_send<'a>(name: &'a str) -> impl Future<Output = Result<usize, ApiError>> + Send + 'a {
    async move { Ok(name.len()) }
}

pub struct Client;

pub trait Api {
    fn get<'a>(&'a self) -> Pin<Box<dyn Future<Output = Result<u32, ApiError>> + Send + 'a>>;
}

impl Api for Client {
    #[circuit_breaker(name = "boxed-future")]
    fn get<'a>(&'a self) -> Pin<Box<dyn Future<Output = Result<u32, ApiError>> + Send + 'a>> {
        Box::pin(async { Ok(1) })
    }
}

#[circuit_breaker(name = "boxed-local")]
pub fn boxed_local() -> Pin<Box<dyn Future<Output = Result<u32, ApiError>>>> {
    Box::pin(async { Ok(1) })
}

fn main() {
    let _ = impl_future(1);
    let _ = impl_future_send("a");
    let _ = Client.get();
    let _ = boxed_local();
}
