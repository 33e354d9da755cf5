//! Breakers on a `ManualClock`, and the plain calls the tests make on them.

use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::{CircuitBreaker, CircuitBreakerBuilder, Error};

/// The reset timeout of the breakers built here (and the default one).
pub const MINUTE: Duration = Duration::from_secs(60);

/// A builder for `name` with `fail_max`, `success_threshold` and a reset
/// timeout of a [`MINUTE`], on a fresh `ManualClock`, returned beside it.
pub fn clocked_builder(
    name: &'static str,
    fail_max: u32,
    success_threshold: u32,
) -> (CircuitBreakerBuilder, ManualClock) {
    let clock = ManualClock::new();
    let builder = CircuitBreaker::builder(name)
        .fail_max(fail_max)
        .success_threshold(success_threshold)
        .reset_timeout(MINUTE)
        .clock(clock.clone());
    (builder, clock)
}

/// The breaker of [`clocked_builder`], built, and its clock.
pub fn breaker(
    name: &'static str,
    fail_max: u32,
    success_threshold: u32,
) -> (CircuitBreaker, ManualClock) {
    let (builder, clock) = clocked_builder(name, fail_max, success_threshold);
    (builder.build(), clock)
}

/// A call whose function fails with `"boom"`.
pub fn fail(cb: &CircuitBreaker) -> Result<u32, Error<&'static str>> {
    cb.call(|| Err("boom"))
}

/// A call whose function succeeds with `7`.
pub fn succeed(cb: &CircuitBreaker) -> Result<u32, Error<&'static str>> {
    cb.call(|| Ok(7))
}
