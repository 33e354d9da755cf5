use breaker::{circuit_breaker, CircuitBreakerError};

#[derive(Debug)]
pub struct HttpError;

impl From<CircuitBreakerError> for HttpError {
    fn from(_: CircuitBreakerError) -> Self {
        HttpError
    }
}

pub struct Request {
    pub host: String,
    pub body: Vec<u8>,
}

fn send(request: Request) -> Result<usize, HttpError> {
    Ok(request.body.len())
}

// The key borrows `request`, the body moves it: the key is evaluated (and
// its borrow ends) before the body runs.
#[circuit_breaker(name = "http", key = request.host.as_str())]
fn post(request: Request) -> Result<usize, HttpError> {
    send(request)
}

#[circuit_breaker(name = "http", key = request.host.as_str())]
async fn post_async(request: Request) -> Result<usize, HttpError> {
    send(request)
}

fn main() {
    let _ = post(Request { host: "a".into(), body: vec![1] });
    let _ = post_async(Request { host: "a".into(), body: vec![1] });
}
