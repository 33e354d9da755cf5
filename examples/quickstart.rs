//! A breaker guarding a flaky dependency: it trips, rejects, and recovers.
//!
//! Run with `cargo run --example quickstart`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use breaker::{CircuitBreaker, Error, Listener, State};

/// Prints every state change as it happens.
struct PrintChanges;

impl Listener for PrintChanges {
    fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
        println!("    [{}] state change: {old} -> {new}", cb.name());
    }
}

/// The dependency: down until `HEALTHY` is set.
static HEALTHY: AtomicBool = AtomicBool::new(false);

fn fetch_price(item: u32) -> Result<u32, String> {
    if HEALTHY.load(Ordering::Relaxed) {
        Ok(100 + item)
    } else {
        Err(format!("price service unreachable (item {item})"))
    }
}

fn main() {
    let reset_timeout = Duration::from_millis(300);
    let prices = CircuitBreaker::builder("prices")
        .fail_max(3)
        .reset_timeout(reset_timeout)
        .listener(PrintChanges)
        .build();

    let call = |item: u32| {
        let outcome = prices.call(|| fetch_price(item));
        let shown = match &outcome {
            Ok(price) => format!("ok: {price}"),
            Err(Error::Inner(e)) => format!("failed: {e}"),
            Err(Error::Tripped(cbe, e)) => format!("failed and tripped: {e}; {cbe}"),
            Err(Error::Open(cbe)) => format!("rejected, not called: {cbe}"),
        };
        println!(
            "call {item}: {shown} (state {}, failures {})",
            prices.current_state(),
            prices.fail_counter()
        );
    };

    println!("1. The dependency is down: three failures trip the breaker.");
    for item in 1..=3 {
        call(item);
    }

    println!("2. While open, calls are rejected without running.");
    for item in 4..=5 {
        call(item);
    }

    println!(
        "3. The dependency recovers; after {reset_timeout:?} a trial call closes the breaker."
    );
    HEALTHY.store(true, Ordering::Relaxed);
    thread::sleep(reset_timeout + Duration::from_millis(20));
    for item in 6..=7 {
        call(item);
    }
    assert_eq!(prices.current_state(), State::Closed);
}
