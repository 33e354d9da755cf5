//! [`tracing`](https://docs.rs/tracing) events for a breaker's transitions,
//! rejections and failures, from a listener a breaker opts into.
//!
//! [`TracingListener`] emits, with target `breaker`:
//!
//! | event | level | fields |
//! |---|---|---|
//! | a transition | WARN | `breaker`, `from`, `to`, `retry_after_ms` (when open) |
//! | a rejected call | DEBUG | `breaker`, `state`, `reason`, `retry_after_ms` (when known) |
//! | a failure | DEBUG | `breaker`, `error` (the error's `Debug`, or the panic) |
//! | a slow call | DEBUG | `breaker`, `elapsed_ms` (a breaker with a slow-call duration) |
//!
//! The listener declares only transitions, rejections and failures in its
//! [`hooks`](crate::Listener::hooks), so a closed-state success costs a
//! breaker with it what it costs one without (`bench/benches/integrations.rs`).
//! Spans are the caller's: the attribute composes with
//! `#[tracing::instrument]` in either order.
//!
//! With this feature on, two more things go to `tracing` (target
//! `breaker`) when a subscriber listens at WARN: [hints](crate::hint) (when
//! no hook is set; otherwise they go to standard error as before), and the
//! Redis storage's connection events (feature `redis`): the connection
//! lost (WARN), breakers falling back to the fallback state (WARN), the
//! storage reconnected (INFO).
//!
//! ```
//! use breaker::CircuitBreaker;
//!
//! let cb = CircuitBreaker::builder("payments")
//!     .listener(breaker::tracing::TracingListener)
//!     .build();
//! cb.open(); // WARN breaker: state changed breaker="payments" from=closed to=open retry_after_ms=60000
//! ```
//!
//! In the attribute: `#[circuit_breaker(listeners = [breaker::tracing::listener])]`.

use crate::breaker::CircuitBreaker;
use crate::error::CircuitBreakerError;
use crate::listener::{Failure, Hooks, Listener};
use crate::state::State;

/// The listener that emits this module's events.
///
/// ```
/// use breaker::{tracing::TracingListener, CircuitBreaker};
///
/// let cb = CircuitBreaker::builder("db").listener(TracingListener).build();
/// # let _ = cb;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingListener;

/// A [`TracingListener`], for the attribute's `listeners = [..]`.
///
/// ```
/// use breaker::{circuit_breaker, CircuitBreakerError};
///
/// # #[derive(Debug)] struct E;
/// # impl From<CircuitBreakerError> for E { fn from(_: CircuitBreakerError) -> Self { E } }
/// #[circuit_breaker(name = "traced", listeners = [breaker::tracing::listener])]
/// fn fetch() -> Result<u32, E> {
///     Ok(1)
/// }
/// # assert_eq!(fetch().unwrap(), 1);
/// ```
pub fn listener() -> TracingListener {
    TracingListener
}

fn millis(d: Option<std::time::Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[diagnostic::do_not_recommend]
impl Listener for TracingListener {
    fn hooks(&self) -> Hooks {
        Hooks::STATE_CHANGE | Hooks::REJECTED | Hooks::FAILURE | Hooks::SLOW_CALL
    }

    fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
        let retry_after = match new {
            State::Open => millis(cb.retry_after()),
            _ => None,
        };
        ::tracing::warn!(
            target: "breaker",
            breaker = cb.name(),
            from = %old,
            to = %new,
            retry_after_ms = retry_after,
            "state changed"
        );
    }

    fn rejected(&self, cb: &CircuitBreaker, error: &CircuitBreakerError) {
        ::tracing::debug!(
            target: "breaker",
            breaker = cb.name(),
            state = %error.state(),
            reason = ?error.reason(),
            retry_after_ms = millis(error.retry_after()),
            "call rejected"
        );
    }

    fn failure(&self, cb: &CircuitBreaker, error: &Failure<'_>) {
        ::tracing::debug!(
            target: "breaker",
            breaker = cb.name(),
            error = ?error,
            "call failed"
        );
    }

    fn slow_call(&self, cb: &CircuitBreaker, elapsed: std::time::Duration) {
        ::tracing::debug!(
            target: "breaker",
            breaker = cb.name(),
            elapsed_ms = millis(Some(elapsed)),
            "slow call"
        );
    }
}

/// A hint, to `tracing` if a subscriber listens; `false` if none does.
pub(crate) fn hint(hint: &crate::hint::Hint) -> bool {
    if !::tracing::enabled!(target: "breaker", ::tracing::Level::WARN) {
        return false;
    }
    ::tracing::warn!(target: "breaker", breaker = hint.breaker(), "{hint}");
    true
}

/// The Redis storage lost its connection (`broken`) or found Redis too
/// slow; `breakers` breakers now decide on `fallback`.
#[cfg(feature = "redis")]
pub(crate) fn redis_down(namespace: &str, broken: bool, breakers: usize, fallback: State) {
    let cause = match broken {
        true => "connection lost",
        false => "command timed out",
    };
    ::tracing::warn!(target: "breaker", namespace, cause, "redis storage lost its connection");
    ::tracing::warn!(
        target: "breaker",
        namespace,
        breakers,
        fallback_state = %fallback,
        "breakers fell back to the fallback state until redis is back"
    );
}

/// The Redis storage is back: breakers follow the shared state again.
#[cfg(feature = "redis")]
pub(crate) fn redis_up(namespace: &str, breakers: usize) {
    ::tracing::info!(
        target: "breaker",
        namespace,
        breakers,
        "redis storage reconnected; breakers follow the shared state again"
    );
}
