//! Operator overrides from a TOML file, applied to declared breakers before
//! the first call: `cargo run --example settings --features serde`.

use std::collections::BTreeMap;

use breaker::{circuit_breaker, registry, CircuitBreakerError, Settings};

#[derive(Debug)]
enum AppError {
    Down,
    Breaker(CircuitBreakerError),
}

impl From<CircuitBreakerError> for AppError {
    fn from(e: CircuitBreakerError) -> Self {
        AppError::Breaker(e)
    }
}

#[circuit_breaker(name = "payments", fail_max = 5, reset_timeout = "60s")]
fn charge(cents: u64) -> Result<u64, AppError> {
    if cents == 0 {
        return Err(AppError::Down);
    }
    Ok(cents)
}

#[circuit_breaker(name = "inventory")]
fn reserve(sku: u32) -> Result<u32, AppError> {
    Ok(sku)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/breakers.toml");
    let file: BTreeMap<String, Settings> = toml::from_str(&std::fs::read_to_string(path)?)?;
    for (name, settings) in &file {
        registry::configure(name, settings)?;
        println!(
            "{name}: {}",
            toml::to_string(&Settings::of(&registry::get(name)))?.replace('\n', " ")
        );
    }

    assert_eq!(reserve(7).unwrap(), 7);
    for attempt in 1..=4 {
        match charge(0) {
            Err(AppError::Breaker(e)) => println!("charge #{attempt}: {e}"),
            other => println!("charge #{attempt}: {other:?}"),
        }
    }
    // fail_max = 3 from the file (5 in the code): the third failure opened it.
    assert!(registry::get("payments").current_state() == breaker::State::Open);
    Ok(())
}
