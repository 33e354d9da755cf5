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
