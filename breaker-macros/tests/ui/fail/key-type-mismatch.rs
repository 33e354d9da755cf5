use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct HttpError;

impl From<CircuitBreakerError> for HttpError {
    fn from(_: CircuitBreakerError) -> Self {
        HttpError
    }
}

pub struct Url;

// A key expression that does not type-check: reported on it.
#[circuit_breaker(name = "http", key = url.host())]
fn get(url: &Url) -> Result<(), HttpError> {
    let _ = url;
    Ok(())
}

// A key of a type that is not a key: reported on it.
#[circuit_breaker(name = "http2", key = url)]
fn get2(url: &Url) -> Result<(), HttpError> {
    let _ = url;
    Ok(())
}

// `key` on a function returning a future by hand: reported on the key.
#[circuit_breaker(name = "http3", key = n)]
fn later(n: u32) -> impl std::future::Future<Output = Result<u32, HttpError>> {
    async move { Ok(n) }
}

// `max_keys` without `key`.
#[circuit_breaker(name = "http4", max_keys = 10)]
fn unkeyed() -> Result<(), HttpError> {
    Ok(())
}

fn main() {}
