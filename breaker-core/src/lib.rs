//! The circuit breaker behind the [`breaker`](https://docs.rs/breaker) crate:
//! the state machine, storage, listeners and registry. Use it through
//! `breaker`, which re-exports everything here along with the
//! `#[circuit_breaker]` attribute.
//!
//! A breaker stands in front of calls to a dependency. While the dependency
//! works it is **closed** and calls run; after `fail_max` consecutive
//! failures it **opens** and rejects calls without running them; once
//! `reset_timeout` has passed it lets one trial call through (**half-open**),
//! and closes again after `success_threshold` trial successes.
//!
//! ```
//! use breaker::{CircuitBreaker, Error, State};
//! use breaker::clock::ManualClock;
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let cb = CircuitBreaker::builder("db")
//!     .fail_max(2)
//!     .reset_timeout(Duration::from_secs(10))
//!     .clock(clock.clone())
//!     .build();
//!
//! let _ = cb.call(|| Err::<(), _>("refused"));
//! let tripped = cb.call(|| Err::<(), _>("refused"));
//! assert!(matches!(tripped, Err(Error::Tripped(_, "refused"))));
//! assert!(cb.call(|| Ok::<_, &str>(())).unwrap_err().is_open());
//!
//! clock.advance(Duration::from_secs(10));
//! assert_eq!(cb.call(|| Ok::<_, &str>(7)).unwrap(), 7); // the trial
//! assert_eq!(cb.current_state(), State::Closed);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod admission;
mod announce;
mod autoref;
mod backend;
#[cfg(loom)]
#[doc(hidden)]
pub use announce::loom_impatient;
mod breaker;
mod builder;
mod call;
pub mod clock;
mod detach;
mod dispatch;
mod duration;
mod error;
mod exclude;
mod flags;
mod forward;
mod future;
pub mod hint;
mod inspect;
mod iter;
pub mod keyed;
pub mod listener;
mod memory;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod name;
mod rate;
mod recording;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
pub mod registry;
mod returns;
#[cfg(feature = "serde")]
mod settings;
mod state;
pub mod storage;
mod stream;
mod sync;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod tracing;
// Not public API: the rate policies' sliding window, public (hidden) only
// for its loom model, its property test and the benches.
#[doc(hidden)]
pub mod window;

#[doc(hidden)]
pub mod private;

pub use breaker::CircuitBreaker;
pub use builder::CircuitBreakerBuilder;
pub use call::ErrorView;
pub use duration::{parse_duration, DurationError};
pub use error::{CircuitBreakerError, ConfigError, Error, Number};
pub use inspect::FailedValue;
pub use listener::{Failure, Listener};
pub use memory::MemoryStorage;
pub use rate::WindowStats;
pub use returns::{FromBreakerError, GuardedResult};
pub use state::{Backoff, ParseStateError, Reason, State};

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use settings::Settings;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use self::redis::handle::RedisStorage;
