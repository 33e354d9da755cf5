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
use crate::builder::{check_fail_max, check_success_threshold, CircuitBreakerBuilder};
use crate::clock::ClockImpl;
use crate::error::ConfigError;
use crate::exclude::Exclusion;
use crate::listener::Listener;
use crate::name::Name;
use crate::state::{Limits, Op, Snapshot, State};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

/// A breaker's state and settings, shared by every handle on it.
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) name: Name,
    pub(crate) clock: ClockImpl,
    pub(crate) fail_max: AtomicU32,
    pub(crate) success_threshold: AtomicU32,
    pub(crate) reset_timeout_ns: AtomicU64,
    pub(crate) throw_on_trip: AtomicBool,
    /// Whether `listeners` is not empty: the hot path reads this flag, not
    /// the list.
    pub(crate) listening: AtomicBool,
    pub(crate) listeners: ArcSwap<Vec<Arc<dyn Listener>>>,
    /// Whether `exclusions` is not empty: a failure reads this flag first.
    pub(crate) excluding: AtomicBool,
    pub(crate) exclusions: ArcSwap<Vec<Exclusion>>,
    /// Serialises edits of the two lists, so each flag is set from the list
    /// its own edit left: two racing edits setting flags from their own
    /// views could leave `listening` false over a non-empty list.
    pub(crate) edits: Mutex<()>,
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
    pub fn builder(name: impl Into<Cow<'static, str>>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(name.into())
    }

    /// A breaker named `name` with every setting at its default.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self::builder(name).build()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        CircuitBreaker { shared }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        self.shared.name.as_str()
    }

    /// The full current state in one consistent read.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.backend.load()
    }

    /// The current state.
    pub fn current_state(&self) -> State {
        self.shared.backend.state()
    }

    /// Consecutive failures counted in closed (kept through open and half-open).
    pub fn fail_counter(&self) -> u32 {
        self.snapshot().fail_counter
    }

    /// Trial successes counted in half-open.
    pub fn success_counter(&self) -> u32 {
        self.snapshot().success_counter
    }

    /// When the circuit last opened, while it is open or half-open.
    pub fn opened_at(&self) -> Option<SystemTime> {
        self.snapshot().opened_at.map(|at| UNIX_EPOCH + at)
    }

    /// Time until the next trial call, while the circuit is open.
    pub fn retry_after(&self) -> Option<Duration> {
        let timeout = self.reset_timeout();
        // Never more than the open period (the opening time is rounded up
        // to the millisecond).
        let left = self.snapshot().retry_after(timeout, self.now());
        left.map(|d| d.min(timeout))
    }

    /// Consecutive failures that open the circuit.
    pub fn fail_max(&self) -> u32 {
        self.shared.fail_max.load(Ordering::Relaxed)
    }

    /// Changes `fail_max`; it applies from the next failure on.
    ///
    /// # Errors
    /// [`ConfigError::FailMax`] if `n` is 0 or above 65,535; nothing changes.
    pub fn set_fail_max(&self, n: u32) -> Result<(), ConfigError> {
        self.shared
            .fail_max
            .store(check_fail_max(n)?, Ordering::Relaxed);
        Ok(())
    }

    /// How long the circuit stays open before a trial call.
    pub fn reset_timeout(&self) -> Duration {
        Duration::from_nanos(self.shared.reset_timeout_ns.load(Ordering::Relaxed))
    }

    /// Changes the reset timeout; an open circuit's next trial is timed with
    /// the new value.
    pub fn set_reset_timeout(&self, d: Duration) {
        self.shared
            .reset_timeout_ns
            .store(saturating_nanos(d), Ordering::Relaxed);
    }

    /// Trial successes in half-open that close the circuit.
    pub fn success_threshold(&self) -> u32 {
        self.shared.success_threshold.load(Ordering::Relaxed)
    }

    /// Changes the success threshold.
    ///
    /// # Errors
    /// [`ConfigError::SuccessThreshold`] if `n` is 0 or above 255.
    pub fn set_success_threshold(&self, n: u32) -> Result<(), ConfigError> {
        self.shared
            .success_threshold
            .store(check_success_threshold(n)?, Ordering::Relaxed);
        Ok(())
    }

    /// Whether a failure that opens the circuit returns [`Error::Tripped`](crate::Error::Tripped)
    /// (`true`, the default) or the plain [`Error::Inner`](crate::Error::Inner).
    pub fn throw_new_error_on_trip(&self) -> bool {
        self.shared.throw_on_trip.load(Ordering::Relaxed)
    }

    /// Changes [`throw_new_error_on_trip`](Self::throw_new_error_on_trip).
    pub fn set_throw_new_error_on_trip(&self, on: bool) {
        self.shared.throw_on_trip.store(on, Ordering::Relaxed);
    }

    /// Opens the circuit now: calls are rejected for `reset_timeout`.
    pub fn open(&self) {
        self.force(Op::Force(State::Open));
    }

    /// Closes the circuit now, with both counters at zero.
    pub fn close(&self) {
        self.force(Op::Force(State::Closed));
    }

    /// Moves to half-open now: the next call runs as a trial.
    pub fn half_open(&self) {
        self.force(Op::Force(State::HalfOpen));
    }

    /// Closed, with both counters zero, whatever the state was; results of
    /// calls still running are ignored.
    pub fn reset(&self) {
        self.force(Op::Reset);
    }

    fn force(&self, op: Op) {
        if let Err(panic) = self.announce(self.apply(op)) {
            resume_unwind(panic);
        }
    }

    /// Adds a listener at the end of the list.
    pub fn add_listener(&self, listener: Arc<dyn Listener>) {
        let _edit = self.edit();
        push(&self.shared.listeners, &self.shared.listening, listener);
    }

    /// Removes `listener` (compared by identity); returns whether it was there.
    pub fn remove_listener(&self, listener: &Arc<dyn Listener>) -> bool {
        let target = Arc::as_ptr(listener) as *const ();
        let _edit = self.edit();
        remove(&self.shared.listeners, &self.shared.listening, |l| {
            Arc::as_ptr(l) as *const () == target
        })
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
    pub fn listeners(&self) -> Vec<Arc<dyn Listener>> {
        Vec::clone(&self.shared.listeners.load())
    }

    /// From now on, errors of type `E` (itself, boxed, or in a `source()`
    /// chain) are not failures.
    pub fn add_excluded<E: StdError + 'static>(&self) {
        self.add_exclusion(Exclusion::by_type::<E>());
    }

    /// From now on, errors for which `predicate` is true are not failures.
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

    /// The settings a transition depends on, at `now`.
    pub(crate) fn limits_at(&self, now: Duration) -> Limits {
        Limits {
            fail_max: self.fail_max(),
            success_threshold: self.success_threshold(),
            reset_timeout: self.reset_timeout(),
            now,
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
