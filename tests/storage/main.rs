//! Storages: one behaviour suite run over the memory storage and over Redis,
//! and the Redis storage's own tests: many processes sharing one breaker,
//! faults (Redis stopped, paused, restarted), a cluster, namespaces, TTLs,
//! late joiners, corrupt values, and the Lua script against `state::step`.
//!
//! The Redis tests start their own `redis-server`s on free 127.0.0.1 ports
//! (see `support`); without Redis installed they skip, except in CI.

mod suite;

mod memory {
    crate::behaviour_suite!(Some(crate::suite::Memory::new()));
}

#[cfg(feature = "redis")]
mod support;

#[cfg(feature = "redis")]
mod redis;

/// `MemoryStorage::with_state`: a breaker starts in the state given; an open
/// one admits its trial one reset timeout after the storage was made.
#[test]
fn a_memory_storage_starts_in_the_state_it_is_given() {
    use breaker::{CircuitBreaker, MemoryStorage, State};
    use std::time::{Duration, Instant};

    let reset = Duration::from_millis(50);
    let cb = CircuitBreaker::builder("starts-open")
        .reset_timeout(reset)
        .storage(MemoryStorage::with_state(State::Open))
        .build();
    assert_eq!(cb.current_state(), State::Open);
    assert!(cb.call(|| Ok::<_, &str>(())).unwrap_err().is_open());
    let retry = cb.retry_after().expect("open");
    assert!(retry > Duration::ZERO && retry <= reset, "{retry:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while cb.call(|| Ok::<_, &str>(())).is_err() {
        assert!(Instant::now() < deadline, "the trial was never admitted");
        std::thread::yield_now();
    }
    assert_eq!(cb.current_state(), State::Closed);

    let closed = CircuitBreaker::builder("starts-closed")
        .storage(MemoryStorage::with_state(State::Closed))
        .build();
    assert_eq!(
        (closed.current_state(), closed.fail_counter()),
        (State::Closed, 0)
    );
}
