//! The `#[circuit_breaker]` attribute on an async function, with tokio.
//!
//! Run with `cargo run --example attribute`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use breaker::{circuit_breaker, registry, CircuitBreaker, CircuitBreakerError, Listener, State};

/// The error type of the guarded functions: it can carry the breaker's own
/// error, which is what a rejected call returns.
#[derive(Debug, thiserror::Error)]
enum InventoryError {
    #[error("inventory service unavailable")]
    Unavailable,
    #[error("no such item: {0}")]
    NoSuchItem(u32),
    #[error(transparent)]
    Breaker(#[from] CircuitBreakerError),
}

/// How many times the service was really called.
static CALLS: AtomicU32 = AtomicU32::new(0);
/// The service is down while this is non-zero.
static OUTAGE: AtomicU32 = AtomicU32::new(1);

/// `NoSuchItem` is the caller's mistake, not the service failing: excluded.
#[circuit_breaker(
    name = "inventory",
    fail_max = 3,
    reset_timeout = "200ms",
    exclude = [InventoryError::NoSuchItem(..)],
    listeners = [print_changes],
)]
async fn stock(item: u32) -> Result<u32, InventoryError> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(5)).await; // the network
    if item == 0 {
        return Err(InventoryError::NoSuchItem(item));
    }
    if OUTAGE.load(Ordering::Relaxed) != 0 {
        return Err(InventoryError::Unavailable);
    }
    Ok(item * 10)
}

struct PrintChanges;

impl Listener for PrintChanges {
    fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
        println!("    [{}] {old} -> {new}", cb.name());
    }
}

fn print_changes() -> PrintChanges {
    PrintChanges
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Declared breakers are in the registry before any call.
    println!("registered breakers: {:?}", registry::names());
    let inventory = registry::get("inventory");

    println!("an excluded error is returned as-is and is not a failure:");
    println!("  stock(0) = {:?}", stock(0).await);

    println!("the service is down: three failures open the circuit");
    for item in 1..=4 {
        println!(
            "  stock({item}) = {:?}",
            stock(item).await.map_err(|e| e.to_string())
        );
    }
    println!(
        "  {} calls reached the service (stock(0) and three failures): stock(4) never ran",
        CALLS.load(Ordering::Relaxed)
    );

    println!("it recovers; after the reset timeout a trial call closes the circuit");
    OUTAGE.store(0, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(210)).await;
    println!(
        "  stock(5) = {:?}",
        stock(5).await.map_err(|e| e.to_string())
    );
    assert_eq!(inventory.current_state(), State::Closed);
}
