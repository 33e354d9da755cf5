//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (to
//! Prometheus with `metrics-exporter-prometheus`, or any other recorder),
//! from a listener a breaker opts into.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `breaker_calls_total` | counter | `breaker`, `outcome` = `success` \| `failure` \| `excluded` \| `rejected` \| `cancelled` |
//! | `breaker_transitions_total` | counter | `breaker`, `from`, `to` |
//! | `breaker_state` | gauge | `breaker`, `state` (1 for the current state, 0 for the other two) |
//! | `breaker_call_duration_seconds` | histogram | `breaker` |
//!
//! A breaker of a keyed group ([`KeyedBreakers`](crate::keyed::KeyedBreakers))
//! adds a `key` label: `breaker` is the group's name and `key` the key's text
//! ([`CircuitBreaker::key`]), `breaker="http",key="host-a"`, as the admin
//! router's `/metrics` labels it (its JSON and URLs spell the same breaker
//! `http[host-a]`). The group's overflow breaker has no `key`.
//!
//! **Cardinality.** Every key is a set of series (nine counters and three
//! gauges): a group whose keys come from input you do not control (any
//! URL's host, a tenant id from a header) can create as many series as it
//! has keys. A group holds at most `max_keys` keys at once, but a recorder
//! keeps a series after its key is evicted, so over time the series are the
//! keys ever seen: give such a group a `max_keys` your metrics backend can
//! afford, keep keys to a known set (hosts you configured, not hosts you
//! were sent), or leave `MetricsListener` out of its configuration and
//! watch the group's keys through the admin router (whose `/metrics` shows
//! only live keys, so at most `max_keys` per group).
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
//! it finished).
//!
//! `breaker_call_duration_seconds` records how long each completed call
//! took (success, failure or panic; not a rejected or cancelled call)
//! whenever the breaker times its calls: while a slow-call duration is
//! set, or, with [`MetricsListener::with_durations`], always. Timing costs
//! two readings of the breaker's clock per call, so a plain
//! [`MetricsListener`] does not ask for it.
//!
//! ```
//! use breaker::CircuitBreaker;
//! use std::sync::Arc;
//!
//! let cb = Arc::new(CircuitBreaker::new("payments"));
//! breaker::metrics::observe(&cb); // breaker_state{breaker="payments",state="closed"} 1
//! cb.open(); // breaker_transitions_total{breaker="payments",from="closed",to="open"} 1
//! ```

use std::sync::{Arc, OnceLock, Weak};

use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Label};

use crate::breaker::{CircuitBreaker, Shared};
use crate::error::CircuitBreakerError;
use crate::listener::{Failure, Hooks, Listener};
use crate::state::State;

const CALLS: &str = "breaker_calls_total";
const TRANSITIONS: &str = "breaker_transitions_total";
const STATE: &str = "breaker_state";
const DURATION: &str = "breaker_call_duration_seconds";

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
    /// Whether the breaker times every call for the histogram.
    durations: bool,
}

/// One breaker's metrics, registered once.
#[derive(Debug)]
struct Handles {
    /// The breaker they are for: a `Weak` keeps its allocation, so no other
    /// breaker can have this address while the handles live, and an event's
    /// breaker is this one if the addresses are equal.
    breaker: Weak<Shared>,
    success: Counter,
    failure: Counter,
    excluded: Counter,
    rejected: Counter,
    cancelled: Counter,
    /// `[from][to]`.
    transitions: [[Counter; 3]; 3],
    states: [Gauge; 3],
    duration: Histogram,
}

impl Handles {
    fn new(cb: &CircuitBreaker) -> Self {
        let breaker = cb.shared.name.as_str();
        let key = cb.key().map(str::to_owned);
        // `breaker`, then `key` for a keyed group's breaker, then `more`.
        let labels = |more: &[(&'static str, &'static str)]| {
            let mut labels = vec![Label::new("breaker", breaker)];
            if let Some(key) = &key {
                labels.push(Label::new("key", key.clone()));
            }
            labels.extend(more.iter().map(|&(k, v)| Label::new(k, v)));
            labels
        };
        let calls =
            |outcome: &'static str| ::metrics::counter!(CALLS, labels(&[("outcome", outcome)]));
        let transition = |from: State, to: State| {
            ::metrics::counter!(
                TRANSITIONS,
                labels(&[("from", state_label(from)), ("to", state_label(to))])
            )
        };
        let handles = Handles {
            breaker: Arc::downgrade(&cb.shared),
            success: calls("success"),
            failure: calls("failure"),
            excluded: calls("excluded"),
            rejected: calls("rejected"),
            cancelled: calls("cancelled"),
            transitions: STATES.map(|from| STATES.map(|to| transition(from, to))),
            states: STATES
                .map(|state| ::metrics::gauge!(STATE, labels(&[("state", state_label(state))]))),
            duration: ::metrics::histogram!(DURATION, labels(&[])),
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

    /// A listener for one breaker that has it time every call, for
    /// `breaker_call_duration_seconds` (two readings of its clock per
    /// call).
    ///
    /// ```
    /// use breaker::{metrics::MetricsListener, CircuitBreaker};
    ///
    /// let cb = CircuitBreaker::builder("db").listener(MetricsListener::with_durations()).build();
    /// let _ = cb.call(|| Ok::<_, ()>(())); // breaker_call_duration_seconds{breaker="db"}
    /// ```
    pub fn with_durations() -> Self {
        MetricsListener {
            durations: true,
            ..MetricsListener::default()
        }
    }

    /// `cb`'s handles: cached for the first breaker heard (one load and
    /// one comparison), made afresh (looked up in the recorder) for any
    /// other.
    #[inline(always)]
    fn with(&self, cb: &CircuitBreaker, f: impl FnOnce(&Handles)) {
        match self.handles.get() {
            Some(cached) if std::ptr::eq(cached.breaker.as_ptr(), Arc::as_ptr(&cb.shared)) => {
                f(cached)
            }
            _ => self.with_other(cb, f),
        }
    }

    /// The first event heard, or one of another breaker than the first.
    #[cold]
    #[inline(never)]
    fn with_other(&self, cb: &CircuitBreaker, f: impl FnOnce(&Handles)) {
        let cached = self.handles.get_or_init(|| Handles::new(cb));
        if std::ptr::eq(cached.breaker.as_ptr(), Arc::as_ptr(&cb.shared)) {
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

/// A [`MetricsListener::with_durations`], for the attribute's
/// `listeners = [..]`.
///
/// ```
/// use breaker::{circuit_breaker, CircuitBreakerError};
///
/// # #[derive(Debug)] struct E;
/// # impl From<CircuitBreakerError> for E { fn from(_: CircuitBreakerError) -> Self { E } }
/// #[circuit_breaker(name = "timed", listeners = [breaker::metrics::listener_with_durations])]
/// fn fetch() -> Result<u32, E> {
///     Ok(1)
/// }
/// # assert_eq!(fetch().unwrap(), 1);
/// ```
pub fn listener_with_durations() -> MetricsListener {
    MetricsListener::with_durations()
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
            | Hooks::CALL_DURATION
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

    fn call_duration(&self, cb: &CircuitBreaker, elapsed: Duration) {
        self.with(cb, |h| h.duration.record(elapsed.as_secs_f64()));
    }

    fn wants_durations(&self) -> bool {
        self.durations
    }
}
