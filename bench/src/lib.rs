//! Shared pieces of the benchmarks: the guarded work and the peers' setup.
//! See `benches/hot_path.rs` and `scripts/bench`.

use std::hint::black_box;

/// The guarded work: a trivial function returning `Ok`.
#[inline(never)]
pub fn work(x: u64) -> Result<u64, Failure> {
    Ok(black_box(x) + 1)
}

/// A failure every `every` calls.
#[inline(never)]
pub fn work_failing_every(x: u64, every: u64) -> Result<u64, Failure> {
    if black_box(x).is_multiple_of(every) {
        Err(Failure)
    } else {
        Ok(x + 1)
    }
}

/// The benchmarks' error type.
#[derive(Debug)]
pub struct Failure;

impl From<breaker::CircuitBreakerError> for Failure {
    fn from(_: breaker::CircuitBreakerError) -> Self {
        Failure
    }
}

/// failsafe with its fastest policy: consecutive failures, constant backoff.
pub fn failsafe_breaker(fail_max: u32) -> impl failsafe::CircuitBreaker + Clone + Send + Sync {
    use std::time::Duration;
    let policy = failsafe::failure_policy::consecutive_failures(
        fail_max,
        failsafe::backoff::constant(Duration::from_secs(3600)),
    );
    failsafe::Config::new().failure_policy(policy).build()
}
