//! `fallback = path`: a rejected call runs the fallback with the function's
//! arguments; every other call runs the body, recorded as usual.

use std::sync::atomic::{AtomicU32, Ordering};

use breaker::{circuit_breaker, registry, CircuitBreakerError, State};

#[derive(Debug, PartialEq)]
enum PriceError {
    Down,
    Rejected,
}

impl From<CircuitBreakerError> for PriceError {
    fn from(_: CircuitBreakerError) -> Self {
        PriceError::Rejected
    }
}

static BODY_RUNS: AtomicU32 = AtomicU32::new(0);

fn cached_price(item: &str, mut quantity: u32) -> Result<u32, PriceError> {
    quantity += 0;
    Ok(item.len() as u32 * quantity)
}

#[circuit_breaker(name = "fallback-sync", fail_max = 1, reset_timeout = "60s", fallback = cached_price)]
fn price(item: &str, mut quantity: u32) -> Result<u32, PriceError> {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    quantity *= 100;
    if item.is_empty() {
        return Err(PriceError::Down);
    }
    Ok(quantity)
}

#[test]
fn a_rejected_call_runs_the_fallback_with_the_arguments() {
    assert_eq!(price("tea", 2), Ok(200));
    // The failure that opens the circuit is the body's own result.
    assert_eq!(price("", 2), Err(PriceError::Rejected));
    assert_eq!(registry::get("fallback-sync").current_state(), State::Open);
    let runs = BODY_RUNS.load(Ordering::SeqCst);
    assert_eq!(price("tea", 2), Ok(6));
    assert_eq!(
        BODY_RUNS.load(Ordering::SeqCst),
        runs,
        "the body did not run"
    );
    // Nothing was recorded: still open, one failure counted.
    assert_eq!(registry::get("fallback-sync").current_state(), State::Open);
}

struct Catalog {
    discount: u32,
}

impl Catalog {
    #[circuit_breaker(name = "fallback-method", fail_max = 1, reset_timeout = "60s", fallback = Self::stale)]
    fn fetch(&self, id: u32) -> Result<u32, PriceError> {
        match id {
            0 => Err(PriceError::Down),
            _ => Ok(id - self.discount),
        }
    }

    fn stale(&self, id: u32) -> Result<u32, PriceError> {
        Ok(id + self.discount)
    }

    #[circuit_breaker(name = "fallback-async", fail_max = 1, reset_timeout = "60s", fallback = Self::stale_async)]
    async fn fetch_async(&self, id: String) -> Result<String, PriceError> {
        match id.as_str() {
            "" => Err(PriceError::Down),
            _ => Ok(format!("fresh {id}")),
        }
    }

    async fn stale_async(&self, id: String) -> Result<String, PriceError> {
        Ok(format!("stale {id} -{}", self.discount))
    }
}

#[test]
fn a_method_passes_its_receiver_to_the_fallback() {
    let catalog = Catalog { discount: 1 };
    assert_eq!(catalog.fetch(10), Ok(9));
    assert_eq!(catalog.fetch(0), Err(PriceError::Rejected));
    assert_eq!(catalog.fetch(10), Ok(11));
}

#[tokio::test]
async fn an_async_fallback_is_awaited() {
    let catalog = Catalog { discount: 3 };
    assert_eq!(catalog.fetch_async("a".into()).await.unwrap(), "fresh a");
    assert_eq!(
        catalog.fetch_async(String::new()).await,
        Err(PriceError::Rejected)
    );
    assert_eq!(catalog.fetch_async("a".into()).await.unwrap(), "stale a -3");
    // The future stays `Send`: it can be spawned.
    let handle = tokio::spawn(async {
        let catalog = Catalog { discount: 0 };
        catalog.fetch_async("b".into()).await
    });
    assert_eq!(handle.await.unwrap().unwrap(), "stale b -0");
}

fn origin_price((item, _): (&str, u32), _: bool) -> Result<u32, PriceError> {
    Ok(item.len() as u32)
}

#[circuit_breaker(name = "fallback-patterns", fail_max = 1, reset_timeout = "60s", fallback = origin_price)]
fn price_of((item, quantity): (&str, u32), _: bool) -> Result<u32, PriceError> {
    if quantity == 0 {
        return Err(PriceError::Down);
    }
    Ok(item.len() as u32 * quantity)
}

#[test]
fn parameters_that_are_patterns_are_passed_whole_to_the_fallback() {
    let cb = registry::get("fallback-patterns");
    cb.reset();
    assert_eq!(price_of(("tea", 2), true), Ok(6));
    assert_eq!(price_of(("tea", 0), true), Err(PriceError::Rejected));
    assert_eq!(cb.current_state(), State::Open);
    // Rejected: the fallback gets the tuple as it was given.
    assert_eq!(price_of(("coffee", 2), false), Ok(6));
    cb.reset();
}
