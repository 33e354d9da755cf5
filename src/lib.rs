#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[doc(inline)]
pub use breaker_macros::circuit_breaker;

#[doc(inline)]
pub use breaker_core::{
    clock, hint, keyed, listener, parse_duration, registry, storage, Backoff, CircuitBreaker,
    CircuitBreakerBuilder, CircuitBreakerError, ConfigError, DurationError, Error, ErrorView,
    FailedValue, Failure, FromBreakerError, GuardedResult, Listener, MemoryStorage, Number,
    ParseStateError, Reason, State, WindowStats,
};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use breaker_core::redis;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use breaker_core::RedisStorage;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
#[doc(inline)]
pub use breaker_core::tower;

#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
#[doc(inline)]
pub use breaker_core::tracing;

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[doc(inline)]
pub use breaker_core::Settings;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[doc(inline)]
pub use breaker_core::metrics;

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
#[doc(inline)]
pub use breaker_core::admin;

/// Not public API. Referenced by code that `#[circuit_breaker]` generates.
#[doc(hidden)]
pub mod __private {
    pub use breaker_core::private::*;
}
