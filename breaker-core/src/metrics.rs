//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (to
//! Prometheus with `metrics-exporter-prometheus`, or any other recorder),
//! from a listener a breaker opts into.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `breaker_calls_total` | counter | `breaker`, `outcome` = `success` \| `failure` \| `excluded` \| `rejected` \| `cancelled` |
//! | `breaker_transitions_total` | counter | `breaker`, `from`, `to` |
//! | `breaker_state` | gauge | `breaker`, `state` (1 for the current state, 0 for the other two) |
//!
//! A breaker opts in by adding a [`MetricsListener`] ([`observe`] does it
//! for a running breaker, `listeners = [breaker::metrics::listener]` in the
//! attribute); a breaker without one pays nothing. With one, a call costs a
//! listener's dispatch plus one counter increment on handles registered
//! once per breaker (the first event registers them with the recorder
//! installed then: install the recorder first).
//!
//! The outcomes are disjoint: a call is counted once, so their sum is
//! every call made or turned away (`excluded`: it failed with an error the
//! breaker excludes, a success to the breaker; `cancelled`: dropped before
//! it finished). The histogram `breaker_call_duration_seconds` of the
//! design needs the engine to time calls, which it does not yet do; it is
//! left for the call timing of the trip policies (slow calls).
//!
//! ```
//! use breaker::CircuitBreaker;
//! use std::sync::Arc;
//!
//! let cb = Arc::new(CircuitBreaker::new("payments"));
//! breaker::metrics::observe(&cb); // breaker_state{breaker="payments",state="closed"} 1
//! cb.open(); // breaker_transitions_total{breaker="payments",from="closed",to="open"} 1
//! ```

use std::sync::OnceLock;

use ::metrics::{Counter, Gauge};

use crate::breaker::CircuitBreaker;
use crate::error::CircuitBreakerError;
use crate::listener::{Failure, Hooks, Listener};
use crate::state::State;

const CALLS: &str = "breaker_calls_total";
const TRANSITIONS: &str = "breaker_transitions_total";
const STATE: &str = "breaker_state";

const STATES: [State; 3] = [State::Closed, State::Open, State::HalfOpen];

fn state_label(state: State) -> &'static str {
    match state {
        State::Closed => "closed",
        State::Open => "open",
        State::HalfOpen => "half-open",
    }
}

fn index(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
    }
}

/// The listener that records this module's metrics for the breaker it
/// hears from first (attach one per breaker; one shared by several records
/// the others too, looking their metrics up on every event).
///
/// ```
/// use breaker::{metrics::MetricsListener, CircuitBreaker};
///
/// let cb = CircuitBreaker::builder("db").listener(MetricsListener::new()).build();
/// # let _ = cb;
/// ```
#[derive(Debug, Default)]
pub struct MetricsListener {
    handles: OnceLock<Handles>,
}

/// One breaker's metrics, registered once.
#[derive(Debug)]
struct Handles {
    breaker: &'static str,
    success: Counter,
    failure: Counter,
    excluded: Counter,
    rejected: Counter,
    cancelled: Counter,
    /// `[from][to]`.
    transitions: [[Counter; 3]; 3],
    states: [Gauge; 3],
}

impl Handles {
    fn new(cb: &CircuitBreaker) -> Self {
        let breaker = cb.shared.name.as_str();
        let calls = |outcome: &'static str| ::metrics::counter!(CALLS, "breaker" => breaker, "outcome" => outcome);
        let transition = |from: State, to: State| {
            ::metrics::counter!(
                TRANSITIONS,
                "breaker" => breaker,
                "from" => state_label(from),
                "to" => state_label(to)
            )
        };
        let handles = Handles {
            breaker,
            success: calls("success"),
            failure: calls("failure"),
            excluded: calls("excluded"),
            rejected: calls("rejected"),
            cancelled: calls("cancelled"),
            transitions: STATES.map(|from| STATES.map(|to| transition(from, to))),
            states: STATES.map(|state| {
                ::metrics::gauge!(STATE, "breaker" => breaker, "state" => state_label(state))
            }),
        };
        handles.show_state(cb.current_state());
        handles
    }

    fn show_state(&self, current: State) {
        for state in STATES {
            let on = if state == current { 1.0 } else { 0.0 };
            self.states[index(state)].set(on);
        }
    }
}

impl MetricsListener {
    /// A listener for one breaker.
    ///
    /// ```
    /// let listener = breaker::metrics::MetricsListener::new();
    /// # let _ = listener;
    /// ```
    pub fn new() -> Self {
        MetricsListener::default()
    }

    /// `cb`'s handles: cached for the first breaker heard, made afresh
    /// (looked up in the recorder) for any other.
    #[inline(always)]
    fn with<R>(&self, cb: &CircuitBreaker, f: impl FnOnce(&Handles) -> R) -> R {
        let cached = self.handles.get_or_init(|| Handles::new(cb));
        // Names are interned: the same breaker's is the same pointer.
        if std::ptr::eq(cached.breaker, cb.shared.name.as_str()) || cached.breaker == cb.name() {
            f(cached)
        } else {
            f(&Handles::new(cb))
        }
    }
}

/// A [`MetricsListener`], for the attribute's `listeners = [..]`.
///
/// ```
/// use breaker::{circuit_breaker, CircuitBreakerError};
///
/// # #[derive(Debug)] struct E;
/// # impl From<CircuitBreakerError> for E { fn from(_: CircuitBreakerError) -> Self { E } }
/// #[circuit_breaker(name = "measured", listeners = [breaker::metrics::listener])]
/// fn fetch() -> Result<u32, E> {
///     Ok(1)
/// }
/// # assert_eq!(fetch().unwrap(), 1);
/// ```
pub fn listener() -> MetricsListener {
    MetricsListener::new()
}

/// Adds a [`MetricsListener`] to a running breaker and shows its state in
/// `breaker_state` at once.
///
/// ```
/// use breaker::{registry, CircuitBreaker};
///
/// let cb = registry::register(CircuitBreaker::new("observed")).unwrap();
/// breaker::metrics::observe(&cb);
/// assert_eq!(cb.listeners().len(), 1);
/// ```
pub fn observe(cb: &CircuitBreaker) {
    let listener = MetricsListener::new();
    listener.with(cb, |_| ());
    cb.add_listener(std::sync::Arc::new(listener));
}

#[diagnostic::do_not_recommend]
impl Listener for MetricsListener {
    fn hooks(&self) -> Hooks {
        Hooks::SUCCESS
            | Hooks::FAILURE
            | Hooks::EXCLUDED
            | Hooks::REJECTED
            | Hooks::CANCELLED
            | Hooks::STATE_CHANGE
    }

    fn success(&self, cb: &CircuitBreaker) {
        self.with(cb, |h| h.success.increment(1));
    }

    fn failure(&self, cb: &CircuitBreaker, _: &Failure<'_>) {
        self.with(cb, |h| h.failure.increment(1));
    }

    fn excluded(&self, cb: &CircuitBreaker, _: &Failure<'_>) {
        self.with(cb, |h| h.excluded.increment(1));
    }

    fn rejected(&self, cb: &CircuitBreaker, _: &CircuitBreakerError) {
        self.with(cb, |h| h.rejected.increment(1));
    }

    fn cancelled(&self, cb: &CircuitBreaker) {
        self.with(cb, |h| h.cancelled.increment(1));
    }

    fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
        self.with(cb, |h| {
            h.transitions[index(old)][index(new)].increment(1);
            h.show_state(new);
        });
    }
}
