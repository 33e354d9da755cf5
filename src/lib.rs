//! Circuit breakers for Rust, after Michael Nygard's *Release It!* and
//! Python's pybreaker.
//!
//! A breaker stands in front of calls to a dependency. While the dependency
//! works it is **closed** and calls run. After `fail_max` consecutive failures
//! it **opens**: calls are rejected at once, without running, so a struggling
//! service is not hammered and callers fail fast. Once `reset_timeout` has
//! passed it is **half-open**: one trial call runs; its success closes the
//! circuit, its failure opens it again.
//!
//! ```
//! use breaker::{CircuitBreaker, Error, State};
//! use std::time::Duration;
//!
//! let db = CircuitBreaker::builder("db")
//!     .fail_max(3)
//!     .reset_timeout(Duration::from_secs(30))
//!     .build();
//!
//! fn query() -> Result<u32, std::io::Error> {
//!     Err(std::io::Error::other("connection refused"))
//! }
//!
//! for _ in 0..3 {
//!     let _ = db.call(query);
//! }
//! assert_eq!(db.current_state(), State::Open);
//! match db.call(query) {
//!     Err(Error::Open(e)) => println!("not called: {e}"),
//!     other => unreachable!("{other:?}"),
//! }
//! ```
//!
//! See the README for the guide: excluded errors, listeners, async calls,
//! the registry, storage and testing with a manual clock.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[doc(inline)]
pub use breaker_macros::circuit_breaker;

#[doc(inline)]
pub use breaker_core::{
    clock, parse_duration, registry, storage, CircuitBreaker, CircuitBreakerBuilder,
    CircuitBreakerError, ConfigError, DurationError, Error, ErrorView, Failure, Listener,
    MemoryStorage, ParseStateError, Reason, State,
};

/// Sharing a breaker's state across processes through Redis (feature
/// `redis`): [`RedisStorage`] and its settings.
#[cfg(feature = "redis")]
#[doc(inline)]
pub use breaker_core::redis;
#[cfg(feature = "redis")]
#[doc(inline)]
pub use breaker_core::RedisStorage;

/// Not public API. Referenced by code that `#[circuit_breaker]` generates.
#[doc(hidden)]
pub mod __private {
    pub use breaker_core::private::*;
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
