//! [`CircuitBreaker`]: its shared state and settings, monitoring, manual
//! control, and its lists of listeners and exclusions. How a call goes
//! through it is in `admission.rs` (let in or rejected) and `recording.rs`
//! (its result applied and reported).

use std::any::TypeId;
use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::panic::resume_unwind;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::backend::Backend;
use crate::builder::{
    check_backoff, check_fail_max, check_half_open_calls, check_success_threshold,
    CircuitBreakerBuilder,
};
use crate::clock::ClockImpl;
use crate::dispatch::Listeners;
use crate::error::ConfigError;
use crate::exclude::Exclusion;
use crate::flags::Flags;
use crate::listener::Listener;
use crate::name::Name;
use crate::rate::{check_failure_rate, check_min_calls, check_window, Windows};
use crate::state::{Backoff, Limits, Op, Policy, Snapshot, State, WindowShape};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

/// A read of a breaker's policy.
pub(crate) type PolicyGuard = arc_swap::Guard<Arc<Policy>>;

/// A breaker's state and settings, shared by every handle on it.
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) name: Name,
    pub(crate) clock: ClockImpl,
    pub(crate) fail_max: AtomicU32,
    pub(crate) success_threshold: AtomicU32,
    pub(crate) reset_timeout_ns: AtomicU64,
    pub(crate) throw_on_trip: AtomicBool,
    /// Whether `policy` acts as [`Policy::DEFAULT`]
    /// ([`Policy::acts_as_default`]): the consecutive policy's paths read
    /// this flag, not the policy.
    pub(crate) default_policy: AtomicBool,
    pub(crate) policy: ArcSwap<Policy>,
    /// The rate policies' window (`rate.rs`); none without a rate condition.
    pub(crate) windows: Windows,
    /// The listeners (`dispatch.rs`).
    pub(crate) listeners: Listeners,
    /// The word a call reads to choose its path (`flags.rs`): the
    /// listeners' hooks, whether calls are inspected, whether a window
    /// records successes.
    pub(crate) flags: Flags,
    /// Whether `exclusions` is not empty: a failure reads this flag first.
    pub(crate) excluding: AtomicBool,
    pub(crate) exclusions: ArcSwap<Vec<Exclusion>>,
    /// Serialises edits of the two lists, so each flag is set from the list
    /// its own edit left: two racing edits setting flags from their own
    /// views could leave `excluding` false over a non-empty list.
    pub(crate) edits: Mutex<()>,
    /// `fail_if` and slow calls (`inspect.rs`): settings and the flags the
    /// call paths read.
    pub(crate) inspection: crate::inspect::Inspection,
    /// The key of a breaker in a keyed group (`keyed.rs`), `None` otherwise.
    pub(crate) key: Option<Box<dyn crate::keyed::KeyLink>>,
}

/// A circuit breaker: calls go through it, and once a dependency fails
/// `fail_max` times in a row it stops calling it for `reset_timeout`, then
/// lets trial calls decide whether to close again.
///
/// `CircuitBreaker` is `Send + Sync`; share it in an `Arc` or register it in
/// the [`registry`](crate::registry). The guarded function never runs under a
/// lock, and a successful call in the closed state reads the state once and
/// writes nothing.
///
/// ```
/// use breaker::{CircuitBreaker, State};
/// use std::time::Duration;
///
/// let db = CircuitBreaker::builder("db")
///     .fail_max(3)
///     .reset_timeout(Duration::from_secs(30))
///     .build();
///
/// for _ in 0..3 {
///     let _ = db.call(|| Err::<(), _>("connection refused"));
/// }
/// assert_eq!(db.current_state(), State::Open);
/// assert!(db.call(|| Ok::<_, &str>(1)).unwrap_err().is_open());
/// ```
pub struct CircuitBreaker {
    pub(crate) shared: Arc<Shared>,
}

impl CircuitBreaker {
    /// A builder for a breaker named `name`, with pybreaker's defaults.
    ///
    /// # Example
    /// ```
    /// use breaker::CircuitBreaker;
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(3).build();
    /// assert_eq!((cb.name(), cb.fail_max()), ("db", 3));
    /// ```
    pub fn builder(name: impl Into<Cow<'static, str>>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(name.into())
    }

    /// A breaker named `name` with every setting at its default.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::new("db");
    /// assert_eq!(cb.current_state(), State::Closed);
    /// assert_eq!(cb.fail_max(), 5);
    /// assert_eq!(cb.reset_timeout(), Duration::from_secs(60));
    /// assert_eq!(cb.success_threshold(), 1);
    /// assert!(cb.throw_new_error_on_trip());
    /// ```
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self::builder(name).build()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        CircuitBreaker { shared }
    }

    /// The breaker's name.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::new(format!("shard-{}", 7));
    /// assert_eq!(cb.name(), "shard-7");
    /// ```
    pub fn name(&self) -> &str {
        self.shared.name.as_str()
    }

    /// The full current state in one consistent read.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// let snap = cb.snapshot();
    /// assert_eq!(snap.state, State::Closed);
    /// assert_eq!(snap.fail_counter, 1);
    /// assert_eq!(snap.opened_at, None);
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        self.shared.backend.load()
    }

    /// The current state.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(1).build();
    /// assert_eq!(cb.current_state(), State::Closed);
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.current_state(), State::Open);
    /// assert_eq!(cb.current_state().to_string(), "open");
    /// ```
    pub fn current_state(&self) -> State {
        self.shared.backend.state()
    }

    /// Consecutive failures counted in closed (kept through open and half-open).
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::new("db");
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.fail_counter(), 2);
    /// let _ = cb.call(|| Ok::<_, &str>(()));
    /// assert_eq!(cb.fail_counter(), 0); // a success in closed resets it
    /// ```
    pub fn fail_counter(&self) -> u32 {
        self.snapshot().fail_counter
    }

    /// Trial successes counted in half-open.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::builder("db").success_threshold(2).build();
    /// cb.half_open();
    /// let _ = cb.call(|| Ok::<_, &str>(()));
    /// assert_eq!(cb.success_counter(), 1);
    /// assert_eq!(cb.current_state(), State::HalfOpen);
    /// let _ = cb.call(|| Ok::<_, &str>(()));
    /// assert_eq!(cb.current_state(), State::Closed); // and the counter is back to 0
    /// assert_eq!(cb.success_counter(), 0);
    /// ```
    pub fn success_counter(&self) -> u32 {
        self.snapshot().success_counter
    }

    /// When the circuit last opened, while it is open or half-open.
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, CircuitBreaker};
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let clock = ManualClock::starting_at(Duration::from_secs(1_700_000_000));
    /// let cb = CircuitBreaker::builder("db").clock(clock).build();
    /// assert_eq!(cb.opened_at(), None);
    /// cb.open();
    /// assert_eq!(cb.opened_at(), Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    /// cb.close();
    /// assert_eq!(cb.opened_at(), None);
    /// ```
    pub fn opened_at(&self) -> Option<SystemTime> {
        self.snapshot().opened_at.map(|at| UNIX_EPOCH + at)
    }

    /// Time until the next trial call, while the circuit is open.
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, CircuitBreaker};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("db")
    ///     .reset_timeout(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// assert_eq!(cb.retry_after(), None); // closed
    /// cb.open();
    /// clock.advance(Duration::from_secs(45));
    /// assert_eq!(cb.retry_after(), Some(Duration::from_secs(15)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_of(&self.snapshot(), self.now())
    }

    /// Time until the next trial of the circuit in `snap`, at `now`: never
    /// more than the open period in force (the opening time is rounded up
    /// to the millisecond).
    pub(crate) fn retry_after_of(&self, snap: &Snapshot, now: Duration) -> Option<Duration> {
        let period = self.open_period(snap);
        snap.retry_after(period, now).map(|d| d.min(period))
    }

    /// How long the circuit in `snap` stays open: the reset timeout, or
    /// what a growing backoff makes of it.
    pub(crate) fn open_period(&self, snap: &Snapshot) -> Duration {
        match self.growing_backoff() {
            None => self.reset_timeout(),
            Some(b) => b.period(
                self.reset_timeout(),
                u32::from(snap.reopens),
                snap.generation,
            ),
        }
    }

    /// The backoff, unless it keeps every open period at the reset timeout.
    #[inline(always)]
    pub(crate) fn growing_backoff(&self) -> Option<Backoff> {
        if self.shared.default_policy.load(Ordering::Relaxed) {
            return None;
        }
        let backoff = self.shared.policy.load().backoff;
        (!backoff.is_constant()).then_some(backoff)
    }

    /// Consecutive failures that open the circuit.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::builder("db").fail_max(3).build();
    /// assert_eq!(cb.fail_max(), 3);
    /// ```
    pub fn fail_max(&self) -> u32 {
        self.shared.fail_max.load(Ordering::Relaxed)
    }

    /// Changes `fail_max`; it applies from the next failure on.
    ///
    /// # Errors
    /// [`ConfigError::FailMax`] if `n` is 0 or above 65,535; nothing changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError, State};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// cb.set_fail_max(1)?;
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.current_state(), State::Open);
    ///
    /// assert_eq!(cb.set_fail_max(0), Err(ConfigError::FailMax { value: 0 }));
    /// assert_eq!(cb.fail_max(), 1); // unchanged
    /// # Ok::<(), ConfigError>(())
    /// ```
    ///
    /// Under a rate policy built without `fail_max`, this turns the
    /// consecutive condition on beside the rates, as `fail_max` in the
    /// builder does.
    pub fn set_fail_max(&self, n: u32) -> Result<(), ConfigError> {
        let n = check_fail_max(n)?;
        if !self.policy().rate.consecutive {
            self.update_policy(|p| p.rate.consecutive = true)?;
        }
        self.shared.fail_max.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// How long the circuit stays open before a trial call.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    ///
    /// let cb = breaker::CircuitBreaker::builder("db")
    ///     .reset_timeout(Duration::from_secs(30))
    ///     .build();
    /// assert_eq!(cb.reset_timeout(), Duration::from_secs(30));
    /// ```
    pub fn reset_timeout(&self) -> Duration {
        Duration::from_nanos(self.shared.reset_timeout_ns.load(Ordering::Relaxed))
    }

    /// Changes the reset timeout; an open circuit's next trial is timed with
    /// the new value.
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, CircuitBreaker};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("db").clock(clock.clone()).build(); // 60 s
    /// cb.open();
    /// cb.set_reset_timeout(Duration::from_secs(5));
    /// assert_eq!(cb.retry_after(), Some(Duration::from_secs(5)));
    /// clock.advance(Duration::from_secs(5));
    /// assert!(cb.call(|| Ok::<_, &str>(())).is_ok()); // the trial runs already
    /// ```
    pub fn set_reset_timeout(&self, d: Duration) {
        self.shared
            .reset_timeout_ns
            .store(saturating_nanos(d), Ordering::Relaxed);
    }

    /// Trial successes in half-open that close the circuit.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::builder("db").success_threshold(3).build();
    /// assert_eq!(cb.success_threshold(), 3);
    /// ```
    pub fn success_threshold(&self) -> u32 {
        self.shared.success_threshold.load(Ordering::Relaxed)
    }

    /// Changes the success threshold.
    ///
    /// # Errors
    /// [`ConfigError::SuccessThreshold`] if `n` is 0 or above 255.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// assert_eq!(cb.set_success_threshold(2), Ok(()));
    /// assert_eq!(cb.success_threshold(), 2);
    /// assert_eq!(
    ///     cb.set_success_threshold(256),
    ///     Err(ConfigError::SuccessThreshold { value: 256 })
    /// );
    /// ```
    pub fn set_success_threshold(&self, n: u32) -> Result<(), ConfigError> {
        self.shared
            .success_threshold
            .store(check_success_threshold(n)?, Ordering::Relaxed);
        Ok(())
    }

    /// Trial calls admitted at once in half-open.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::builder("db").half_open_calls(3).build();
    /// assert_eq!(cb.half_open_calls(), 3);
    /// ```
    pub fn half_open_calls(&self) -> u32 {
        self.policy().half_open_calls
    }

    /// Changes how many trials half-open admits at once; trials running
    /// now finish, and new ones are admitted while fewer than `n` run.
    ///
    /// # Errors
    /// [`ConfigError::HalfOpenCalls`] if `n` is 0 or above 255, and
    /// [`ConfigError::Unsupported`] on a storage that cannot apply it;
    /// nothing changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// cb.set_half_open_calls(4)?;
    /// assert_eq!(cb.half_open_calls(), 4);
    /// assert_eq!(cb.set_half_open_calls(0), Err(ConfigError::HalfOpenCalls { value: 0 }));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn set_half_open_calls(&self, n: u32) -> Result<(), ConfigError> {
        let half_open_calls = check_half_open_calls(n)?;
        self.update_policy(|p| p.half_open_calls = half_open_calls)
    }

    /// How the open period grows with consecutive re-openings.
    ///
    /// # Example
    /// ```
    /// use breaker::{Backoff, CircuitBreaker};
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(2.0, Duration::from_secs(600));
    /// let cb = CircuitBreaker::builder("db").backoff(backoff).build();
    /// assert_eq!(cb.backoff(), backoff);
    /// ```
    pub fn backoff(&self) -> Backoff {
        self.policy().backoff
    }

    /// Changes the backoff; it applies at once, as
    /// [`set_reset_timeout`](Self::set_reset_timeout) does: an open
    /// circuit's next trial is timed with the new backoff, from the opening
    /// in force (and `retry_after` says so). A `max` below a reset timeout
    /// set later acts as the reset timeout.
    ///
    /// # Errors
    /// [`ConfigError::BackoffFactor`], [`ConfigError::BackoffMax`] (below
    /// the current reset timeout) or [`ConfigError::Jitter`] for a bad
    /// value, [`ConfigError::Unsupported`] on a storage that cannot apply
    /// it; nothing changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, Backoff, CircuitBreaker, ConfigError};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("db")
    ///     .reset_timeout(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build();
    /// cb.set_backoff(Backoff::exponential(2.0, Duration::from_secs(60)))?;
    /// cb.open();
    /// cb.open(); // a re-opening without a close: twice as long
    /// assert_eq!(cb.retry_after(), Some(Duration::from_secs(20)));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn set_backoff(&self, backoff: Backoff) -> Result<(), ConfigError> {
        let backoff = check_backoff(backoff, self.reset_timeout())?;
        self.update_policy(|p| p.backoff = backoff)
    }

    /// The failure rate that opens the circuit, if that condition is on.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::builder("api").failure_rate(0.5).build();
    /// assert_eq!(cb.failure_rate(), Some(0.5));
    /// assert_eq!(breaker::CircuitBreaker::new("db").failure_rate(), None);
    /// ```
    pub fn failure_rate(&self) -> Option<f64> {
        self.policy().rate.failure_rate
    }

    /// Turns the failure-rate condition on, or changes its threshold; it
    /// applies from the next failure on. Turning it on starts an empty
    /// window, and, unless `fail_max` was set, turns the consecutive
    /// condition off (as in the builder).
    ///
    /// # Errors
    /// [`ConfigError::FailureRate`] for a rate outside `(0, 1]` or NaN,
    /// [`ConfigError::Unsupported`] on a storage that cannot apply it;
    /// nothing changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError, Number};
    ///
    /// let cb = CircuitBreaker::new("api");
    /// cb.set_failure_rate(0.25)?;
    /// assert_eq!(cb.failure_rate(), Some(0.25));
    /// assert_eq!(
    ///     cb.set_failure_rate(1.5),
    ///     Err(ConfigError::FailureRate { value: Number::from(1.5) })
    /// );
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn set_failure_rate(&self, rate: f64) -> Result<(), ConfigError> {
        let rate = check_failure_rate(rate)?;
        self.update_policy(|p| p.rate.failure_rate = Some(rate))
    }

    /// The window the rates are taken over: [`WindowShape::Calls`] or
    /// [`WindowShape::Time`] (the default, `Calls(100)`, with no rate
    /// condition on).
    ///
    /// # Example
    /// ```
    /// use breaker::{storage::WindowShape, CircuitBreaker};
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::builder("api").window_time(Duration::from_secs(60)).build();
    /// assert_eq!(cb.window_shape(), WindowShape::Time(Duration::from_secs(60)));
    /// ```
    pub fn window_shape(&self) -> WindowShape {
        self.policy().rate.window
    }

    /// Takes the rates over the last `n` calls from now on. A new shape
    /// starts a new, empty window: the calls the old one held are no
    /// longer counted. (Each window a breaker had keeps its memory, a few
    /// hundred bytes to a few KB, until the breaker is dropped.)
    ///
    /// # Errors
    /// [`ConfigError::WindowCalls`] for 0 or more than 32,768,
    /// [`ConfigError::Unsupported`] on a storage that cannot apply it;
    /// nothing changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{storage::WindowShape, CircuitBreaker, ConfigError};
    ///
    /// let cb = CircuitBreaker::builder("api").failure_rate(0.5).build();
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// cb.set_window_calls(20)?;
    /// assert_eq!(cb.window_shape(), WindowShape::Calls(20));
    /// assert_eq!(cb.window().calls, 0); // a new, empty window
    /// assert_eq!(cb.set_window_calls(0), Err(ConfigError::WindowCalls { value: 0 }));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn set_window_calls(&self, n: u32) -> Result<(), ConfigError> {
        let shape = check_window(WindowShape::Calls(n))?;
        self.update_policy(|p| p.rate.window = shape)
    }

    /// Takes the rates over the calls of the last `span` from now on, in
    /// 10 buckets of `span / 10`. A new shape starts a new, empty window,
    /// as [`set_window_calls`](Self::set_window_calls) says.
    ///
    /// # Errors
    /// [`ConfigError::WindowTime`] for a span under 10 ms,
    /// [`ConfigError::Unsupported`] on a storage that cannot apply it;
    /// nothing changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError};
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::builder("api").failure_rate(0.5).build();
    /// cb.set_window_time(Duration::from_secs(30))?;
    /// assert_eq!(
    ///     cb.set_window_time(Duration::ZERO),
    ///     Err(ConfigError::WindowTime { value: Duration::ZERO })
    /// );
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn set_window_time(&self, span: Duration) -> Result<(), ConfigError> {
        let shape = check_window(WindowShape::Time(span))?;
        self.update_policy(|p| p.rate.window = shape)
    }

    /// Calls the window must hold before a rate is decided on.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::builder("api").failure_rate(0.5).min_calls(20).build();
    /// assert_eq!(cb.min_calls(), 20);
    /// ```
    pub fn min_calls(&self) -> u32 {
        self.policy().rate.min_calls
    }

    /// Changes `min_calls`; the window is kept.
    ///
    /// # Errors
    /// [`ConfigError::MinCalls`] for 0, [`ConfigError::Unsupported`] on a
    /// storage that cannot apply it; nothing changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError};
    ///
    /// let cb = CircuitBreaker::builder("api").failure_rate(0.5).build();
    /// cb.set_min_calls(3)?;
    /// assert_eq!(cb.min_calls(), 3);
    /// assert_eq!(cb.set_min_calls(0), Err(ConfigError::MinCalls { value: 0 }));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn set_min_calls(&self, n: u32) -> Result<(), ConfigError> {
        let n = check_min_calls(n)?;
        self.update_policy(|p| p.rate.min_calls = n)
    }

    /// The policy in force.
    pub(crate) fn policy(&self) -> Policy {
        **self.shared.policy.load()
    }

    /// Changes the policy, if the storage can apply the result; starts a
    /// new window if a rate condition is on and the window's shape changed.
    pub(crate) fn update_policy(
        &self,
        change: impl FnOnce(&mut Policy),
    ) -> Result<(), ConfigError> {
        let _edit = self.edit();
        let mut policy = self.policy();
        change(&mut policy);
        self.shared.backend.check_policy(&policy)?;
        self.apply_rate_policy(&policy.rate)?;
        self.shared.policy.store(Arc::new(policy));
        self.shared
            .default_policy
            .store(policy.acts_as_default(), Ordering::Relaxed);
        Ok(())
    }

    /// Whether a failure that opens the circuit returns [`Error::Tripped`](crate::Error::Tripped)
    /// (`true`, the default) or the plain [`Error::Inner`](crate::Error::Inner).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Error};
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(1).build();
    /// assert!(cb.throw_new_error_on_trip());
    /// assert!(matches!(cb.call(|| Err::<(), _>("refused")), Err(Error::Tripped(_, "refused"))));
    /// ```
    pub fn throw_new_error_on_trip(&self) -> bool {
        self.shared.throw_on_trip.load(Ordering::Relaxed)
    }

    /// Changes [`throw_new_error_on_trip`](Self::throw_new_error_on_trip).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Error, State};
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(1).build();
    /// cb.set_throw_new_error_on_trip(false);
    /// // The failure that opens the circuit comes back as it was returned.
    /// assert!(matches!(cb.call(|| Err::<(), _>("refused")), Err(Error::Inner("refused"))));
    /// assert_eq!(cb.current_state(), State::Open);
    /// ```
    pub fn set_throw_new_error_on_trip(&self, on: bool) {
        self.shared.throw_on_trip.store(on, Ordering::Relaxed);
    }

    /// Opens the circuit now: calls are rejected for `reset_timeout`.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// cb.open();
    /// assert_eq!(cb.current_state(), State::Open);
    /// let mut ran = false;
    /// assert!(cb.call(|| { ran = true; Ok::<_, &str>(()) }).unwrap_err().is_open());
    /// assert!(!ran);
    /// ```
    pub fn open(&self) {
        self.force(Op::Force(State::Open));
    }

    /// Closes the circuit now, with both counters at zero.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(1).build();
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.current_state(), State::Open);
    /// cb.close();
    /// assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
    /// assert_eq!(cb.call(|| Ok::<_, &str>(1)).unwrap(), 1);
    /// ```
    pub fn close(&self) {
        self.force(Op::Force(State::Closed));
    }

    /// Moves to half-open now: the next call runs as a trial.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// cb.half_open();
    /// assert_eq!(cb.current_state(), State::HalfOpen);
    /// let _ = cb.call(|| Err::<(), _>("still down")); // the trial fails
    /// assert_eq!(cb.current_state(), State::Open);
    /// ```
    pub fn half_open(&self) {
        self.force(Op::Force(State::HalfOpen));
    }

    /// Closed, with both counters zero, whatever the state was; results of
    /// calls still running are ignored.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// let _ = cb.call(|| {
    ///     cb.reset(); // while this call runs
    ///     Err::<(), _>("refused")
    /// });
    /// // The failure belonged to the time before the reset: not counted.
    /// assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
    /// ```
    pub fn reset(&self) {
        self.force(Op::Reset);
    }

    fn force(&self, op: Op) {
        if let Err(panic) = self.announce(self.apply(op)) {
            resume_unwind(panic);
        }
    }

    /// Adds a listener at the end of the list.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Listener, State};
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Default)]
    /// struct Changes(Mutex<Vec<(State, State)>>);
    /// impl Listener for Changes {
    ///     fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
    ///         self.0.lock().unwrap().push((old, new));
    ///     }
    /// }
    ///
    /// let cb = CircuitBreaker::new("db");
    /// let changes = Arc::new(Changes::default());
    /// cb.add_listener(changes.clone());
    /// cb.open();
    /// cb.close();
    /// assert_eq!(
    ///     *changes.0.lock().unwrap(),
    ///     [(State::Closed, State::Open), (State::Open, State::Closed)]
    /// );
    /// ```
    pub fn add_listener(&self, listener: Arc<dyn Listener>) {
        let _edit = self.edit();
        let shared = &self.shared;
        shared
            .listeners
            .edit(&shared.flags, |list| list.push(listener));
        self.update_durations_wanted();
    }

    /// Removes `listener` (compared by identity); returns whether it was there.
    ///
    /// Calls that start after it returns do not call it, on any thread.
    ///
    /// When the removed listener is dropped: a call reads its breaker's
    /// list of listeners without a shared write, so lists are not freed
    /// the moment they are replaced. A breaker keeps its first 16 lists
    /// (the one it was built with and one per `add_listener` or
    /// `remove_listener`) until it is dropped: a listener that was in one
    /// of them is dropped with the breaker. After that, each thread keeps
    /// the lists it ran last (a few), so a listener that was only in later
    /// lists is dropped once every thread that ran it has run another list
    /// in its place, or has exited.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Listener};
    /// use std::sync::Arc;
    ///
    /// struct Quiet;
    /// impl Listener for Quiet {}
    ///
    /// let cb = CircuitBreaker::new("db");
    /// let listener: Arc<dyn Listener> = Arc::new(Quiet);
    /// cb.add_listener(listener.clone());
    /// assert!(cb.remove_listener(&listener));
    /// assert!(!cb.remove_listener(&listener)); // already gone
    /// assert!(cb.listeners().is_empty());
    /// ```
    pub fn remove_listener(&self, listener: &Arc<dyn Listener>) -> bool {
        let target = Arc::as_ptr(listener) as *const ();
        let _edit = self.edit();
        let shared = &self.shared;
        let removed = shared.listeners.edit(&shared.flags, |list| {
            let before = list.len();
            list.retain(|l| Arc::as_ptr(l) as *const () != target);
            list.len() != before
        });
        self.update_durations_wanted();
        removed
    }

    /// Held while editing the listeners or the exclusions.
    fn edit(&self) -> MutexGuard<'_, ()> {
        // Nothing panics while it is held.
        self.shared
            .edits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The listeners, in the order they run.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Listener};
    /// use std::sync::Arc;
    ///
    /// struct Quiet;
    /// impl Listener for Quiet {}
    ///
    /// let first: Arc<dyn Listener> = Arc::new(Quiet);
    /// let cb = CircuitBreaker::builder("db").listener_arc(first.clone()).build();
    /// cb.add_listener(Arc::new(Quiet));
    /// let listeners = cb.listeners();
    /// assert_eq!(listeners.len(), 2);
    /// assert!(Arc::ptr_eq(&listeners[0], &first));
    /// ```
    pub fn listeners(&self) -> Vec<Arc<dyn Listener>> {
        self.shared.listeners.to_vec()
    }

    /// From now on, errors of type `E` (itself, boxed, or in a `source()`
    /// chain) are not failures.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Error};
    /// use std::num::ParseIntError;
    ///
    /// let cb = CircuitBreaker::new("parser");
    /// cb.add_excluded::<ParseIntError>();
    /// let parsed = cb.call(|| "x".parse::<u32>());
    /// assert!(matches!(parsed, Err(Error::Inner(_)))); // returned as it is...
    /// assert_eq!(cb.fail_counter(), 0); // ...and not counted
    /// ```
    pub fn add_excluded<E: StdError + 'static>(&self) {
        self.add_exclusion(Exclusion::by_type::<E>());
    }

    /// From now on, errors for which `predicate` is true are not failures.
    ///
    /// # Example
    /// ```
    /// use breaker::CircuitBreaker;
    /// use std::io::{Error, ErrorKind};
    ///
    /// let cb = CircuitBreaker::new("files");
    /// cb.add_excluded_if(|e: &Error| e.kind() == ErrorKind::NotFound);
    /// let _ = cb.call(|| Err::<(), _>(Error::from(ErrorKind::NotFound)));
    /// assert_eq!(cb.fail_counter(), 0);
    /// let _ = cb.call(|| Err::<(), _>(Error::from(ErrorKind::TimedOut)));
    /// assert_eq!(cb.fail_counter(), 1);
    /// ```
    pub fn add_excluded_if<E, F>(&self, predicate: F)
    where
        E: StdError + 'static,
        F: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.add_exclusion(Exclusion::predicate(predicate));
    }

    fn add_exclusion(&self, exclusion: Exclusion) {
        let _edit = self.edit();
        push(&self.shared.exclusions, &self.shared.excluding, exclusion);
    }

    /// Stops excluding errors of type `E` (added with `exclude::<E>()` or
    /// `add_excluded::<E>()`); returns whether it was excluded.
    ///
    /// # Example
    /// ```
    /// use breaker::CircuitBreaker;
    /// use std::num::ParseIntError;
    ///
    /// let cb = CircuitBreaker::builder("parser").exclude::<ParseIntError>().build();
    /// assert!(cb.remove_excluded::<ParseIntError>());
    /// assert!(!cb.remove_excluded::<ParseIntError>());
    /// let _ = cb.call(|| "x".parse::<u32>());
    /// assert_eq!(cb.fail_counter(), 1); // a failure again
    /// ```
    pub fn remove_excluded<E: 'static>(&self) -> bool {
        let _edit = self.edit();
        remove(&self.shared.exclusions, &self.shared.excluding, |x| {
            x.is_type::<E>()
        })
    }

    /// The time on the breaker's clock.
    pub(crate) fn now(&self) -> Duration {
        self.shared.clock.now()
    }

    /// The policy beyond the consecutive one's: on the consecutive
    /// policy's path one flag read and a static; otherwise the shared one,
    /// its guard kept in `slot`.
    #[inline(always)]
    pub(crate) fn policy_in<'a>(&'a self, slot: &'a mut Option<PolicyGuard>) -> &'a Policy {
        if self.shared.default_policy.load(Ordering::Relaxed) {
            &Policy::DEFAULT
        } else {
            slot.insert(self.shared.policy.load())
        }
    }

    /// The settings a transition depends on, at `now`, with `policy`.
    #[inline(always)]
    pub(crate) fn limits_at<'a>(&self, now: Duration, policy: &'a Policy) -> Limits<'a> {
        Limits {
            fail_max: self.fail_max(),
            success_threshold: self.success_threshold(),
            reset_timeout: self.reset_timeout(),
            now,
            policy,
        }
    }

    /// The reset timeout in nanoseconds.
    #[inline(always)]
    pub(crate) fn reset_timeout_nanos(&self) -> u64 {
        self.shared.reset_timeout_ns.load(Ordering::Relaxed)
    }
}

/// Appends `item` to `list` and sets its `non_empty` flag. The caller holds
/// the breaker's edit lock.
fn push<T: Clone>(list: &ArcSwap<Vec<T>>, non_empty: &AtomicBool, item: T) {
    let mut items = Vec::clone(&list.load());
    items.push(item);
    list.store(Arc::new(items));
    non_empty.store(true, Ordering::Release);
}

/// Removes the items of `list` that match, setting its `non_empty` flag from
/// what is left; whether any did. The caller holds the breaker's edit lock.
fn remove<T: Clone>(
    list: &ArcSwap<Vec<T>>,
    non_empty: &AtomicBool,
    matches: impl Fn(&T) -> bool,
) -> bool {
    let previous = list.load();
    let kept: Vec<T> = previous.iter().filter(|x| !matches(x)).cloned().collect();
    let removed = kept.len() != previous.len();
    non_empty.store(!kept.is_empty(), Ordering::Release);
    list.store(Arc::new(kept));
    removed
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.snapshot();
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name())
            .field("state", &snap.state)
            .field("fail_counter", &snap.fail_counter)
            .field("success_counter", &snap.success_counter)
            .field("fail_max", &self.fail_max())
            .field("reset_timeout", &self.reset_timeout())
            .field("success_threshold", &self.success_threshold())
            .field("half_open_calls", &self.half_open_calls())
            .field("backoff", &self.backoff())
            .finish_non_exhaustive()
    }
}

pub(crate) fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// Compile-time checks of the promises in the docs.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CircuitBreaker>();
    let _ = TypeId::of::<CircuitBreaker>;
};
