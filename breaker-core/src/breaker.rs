//! [`CircuitBreaker`], its [`Builder`], monitoring and manual control.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::announce::Announcer;
use crate::clock::{Clock, ClockImpl, SystemClock};
use crate::error::{
    check_fail_max, check_success_threshold, CircuitBreakerError, ConfigError, Name,
};
use crate::exclude::Exclusion;
use crate::future::Applying;
use crate::listener::Listener;
use crate::memory::{self, MemoryStorage};
use crate::state::{Limits, Op, Outcome, Reason, Snapshot, State};
use crate::storage::{Applied, Binding, Storage};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

/// Where the state lives: the default storage is matched directly so its hot
/// path inlines to a single atomic load; any other goes through the trait.
pub(crate) enum Backend {
    Memory(MemoryStorage),
    Custom(Box<dyn Storage>),
}

pub(crate) struct Shared {
    pub(crate) backend: Backend,
    /// Reports the memory storage's transitions in the order they were
    /// committed (`None` for other storages, whose generations this
    /// process does not see all of).
    announcer: Option<Announcer>,
    name: Name,
    clock: ClockImpl,
    fail_max: AtomicU32,
    success_threshold: AtomicU32,
    reset_timeout_ns: AtomicU64,
    throw_on_trip: AtomicBool,
    /// Whether `listeners` is not empty: the hot path reads this flag, not
    /// the list.
    listening: AtomicBool,
    listeners: ArcSwap<Vec<Arc<dyn Listener>>>,
    /// Whether `exclusions` is not empty: a failure reads this flag first.
    excluding: AtomicBool,
    exclusions: ArcSwap<Vec<Exclusion>>,
    /// Serialises edits of the two lists, so each flag is set from the list
    /// its own edit left: two racing edits setting flags from their own
    /// views could leave `listening` false over a non-empty list.
    edits: Mutex<()>,
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
/// use breaker_core::{CircuitBreaker, State};
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

/// Admission to run one call: the generation it reports under, and whether it
/// runs as the half-open trial.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    pub(crate) generation: u64,
    pub(crate) trial: bool,
}

impl CircuitBreaker {
    /// A builder for a breaker named `name`, with pybreaker's defaults.
    pub fn builder(name: impl Into<Cow<'static, str>>) -> Builder {
        Builder::new(name.into())
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
        match &self.shared.backend {
            Backend::Memory(m) => m.load(),
            Backend::Custom(s) => s.load(),
        }
    }

    /// The current state.
    pub fn current_state(&self) -> State {
        match &self.shared.backend {
            Backend::Memory(m) => memory::word_state(m.word()),
            Backend::Custom(s) => s.load().state,
        }
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
        self.snapshot()
            .retry_after(self.reset_timeout(), self.shared.clock.now())
    }

    /// Consecutive failures that open the circuit.
    pub fn fail_max(&self) -> u32 {
        self.shared.fail_max.load(Ordering::Relaxed)
    }

    /// Changes `fail_max`; it applies from the next failure on.
    ///
    /// # Errors
    /// [`ConfigError::FailMax`] if `n` is 0 or above 1,048,575; nothing changes.
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
    /// [`ConfigError::SuccessThreshold`] if `n` is 0 or above 65,535.
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
        let applied = self.apply(op);
        if let Err(panic) = self.after_transition(&applied) {
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

    // ---- the machinery behind `call` and `call_async` ----

    pub(crate) fn limits(&self) -> Limits {
        self.limits_at(self.now())
    }

    /// The time on the breaker's clock.
    pub(crate) fn now(&self) -> Duration {
        self.shared.clock.now()
    }

    fn limits_at(&self, now: Duration) -> Limits {
        Limits {
            fail_max: self.fail_max(),
            success_threshold: self.success_threshold(),
            reset_timeout: self.reset_timeout(),
            now,
        }
    }

    pub(crate) fn apply(&self, op: Op) -> Applied {
        match &self.shared.backend {
            // The memory storage reads the clock only for the operations
            // whose outcome depends on it.
            Backend::Memory(m) => {
                m.apply_timed(op, &self.limits_at(Duration::ZERO), Some(|| self.now()))
            }
            Backend::Custom(s) => s.apply(op, &self.limits()),
        }
    }

    /// `op` applied at once on the memory storage, or a custom storage's
    /// future of it (for `call_async`, which must not block).
    pub(crate) fn applying(&self, op: Op) -> Applying<'_> {
        match &self.shared.backend {
            Backend::Memory(_) => Applying::Now(self.apply(op)),
            Backend::Custom(s) => Applying::Later(s.apply_async(op, self.limits())),
        }
    }

    /// Admission once the closed fast path ([`closed_ticket`](Self::closed_ticket))
    /// said no: either a decision or the need to apply `Op::Admit`.
    #[inline(always)]
    pub(crate) fn precheck_after_closed(&self) -> Precheck {
        if let Some(ticket) = self.custom_closed_ticket() {
            return Precheck::Admitted(ticket);
        }
        match self.open_rejection() {
            Some(retry_nanos) => Precheck::Rejected(self.open_error(retry_nanos)),
            None => self.precheck_slow(),
        }
    }

    /// A custom storage's closed state, from its [`Storage::closed_hint`]:
    /// admission without a whole snapshot.
    #[inline]
    pub(crate) fn custom_closed_ticket(&self) -> Option<Ticket> {
        let Backend::Custom(storage) = &self.shared.backend else {
            return None;
        };
        let hint = storage.closed_hint()?;
        Some(Ticket {
            generation: hint.generation,
            trial: false,
        })
    }

    /// The rejection of an open circuit, built where the caller returns it.
    #[inline(always)]
    pub(crate) fn open_error(&self, retry_nanos: u64) -> CircuitBreakerError {
        CircuitBreakerError::with_retry_nanos(
            self.shared.name,
            State::Open,
            Reason::TimeoutNotElapsed,
            retry_nanos,
        )
    }

    /// The hot path: a closed circuit on the memory storage admits on one
    /// atomic load.
    #[inline(always)]
    pub(crate) fn closed_ticket(&self) -> Option<Ticket> {
        if let Backend::Memory(m) = &self.shared.backend {
            let word = m.word();
            if memory::word_state(word) == State::Closed {
                return Some(Ticket {
                    generation: memory::word_generation(word),
                    trial: false,
                });
            }
        }
        None
    }

    /// An open circuit on the memory storage far from its deadline: the
    /// nanoseconds left, decided in integers on the coarse clock. `None`
    /// for every other case, which [`precheck_slow`](Self::precheck_slow)
    /// decides.
    #[inline(always)]
    pub(crate) fn open_rejection(&self) -> Option<u64> {
        let Backend::Memory(m) = &self.shared.backend else {
            return None;
        };
        let word = m.word();
        if memory::word_state(word) != State::Open {
            return None;
        }
        let timeout = self.shared.reset_timeout_ns.load(Ordering::Relaxed);
        match m.opened_ms(word) {
            Some(ms) => {
                let deadline = ms.saturating_mul(1_000_000).saturating_add(timeout);
                let (now, lag) = self.shared.clock.coarse_nanos();
                let left = deadline.saturating_sub(now);
                (left > lag).then_some(left)
            }
            // Opened an instant ago; its opener is about to publish when.
            None if m.word() == word => Some(timeout),
            // The time read is another generation's: the state moved on
            // since `word` was read.
            None => None,
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn precheck_slow(&self) -> Precheck {
        let snap = self.snapshot();
        match snap.state {
            State::Closed => Precheck::Admitted(Ticket {
                generation: snap.generation,
                trial: false,
            }),
            State::Open => {
                // Far from the deadline, the cheap coarse reading decides;
                // near it, the precise one, so the trial is never early.
                let (coarse, lag) = self.shared.clock.coarse_nanos();
                let coarse = snap.retry_after(self.reset_timeout(), Duration::from_nanos(coarse));
                if coarse.is_some_and(|d| saturating_nanos(d) > lag) {
                    return Precheck::Rejected(self.error(
                        State::Open,
                        Reason::TimeoutNotElapsed,
                        coarse,
                    ));
                }
                let retry_after = snap.retry_after(self.reset_timeout(), self.shared.clock.now());
                if retry_after == Some(Duration::ZERO) {
                    Precheck::Apply
                } else {
                    Precheck::Rejected(self.error(
                        State::Open,
                        Reason::TimeoutNotElapsed,
                        retry_after,
                    ))
                }
            }
            State::HalfOpen if snap.trial => {
                Precheck::Rejected(self.error(State::HalfOpen, Reason::TrialInProgress, None))
            }
            State::HalfOpen => Precheck::Apply,
        }
    }

    /// The verdict of an applied `Op::Admit`, after telling listeners of the
    /// open to half-open transition it may have made.
    pub(crate) fn admitted(&self, applied: Applied) -> Result<Ticket, CircuitBreakerError> {
        let notified = self.after_transition(&applied);
        let verdict = match applied.outcome {
            Outcome::Admitted { generation, trial } => Ok(Ticket { generation, trial }),
            Outcome::Rejected { reason } => {
                let retry_after = applied
                    .after
                    .retry_after(self.reset_timeout(), self.shared.clock.now());
                Err(self.error(applied.after.state, reason, retry_after))
            }
            other => unreachable!("Op::Admit cannot give {other:?}"),
        };
        if let Err(panic) = notified {
            if let Ok(ticket) = verdict {
                self.cancel(ticket);
            }
            resume_unwind(panic);
        }
        verdict
    }

    pub(crate) fn error(
        &self,
        state: State,
        reason: Reason,
        retry_after: Option<Duration>,
    ) -> CircuitBreakerError {
        CircuitBreakerError::new(self.shared.name, state, reason, retry_after)
    }

    /// Whether a success under `ticket` has anything to record: not when the
    /// breaker is closed with no failures counted (the hot path), nor when the
    /// generation has moved on.
    #[inline(always)]
    pub(crate) fn success_is_news(&self, ticket: Ticket) -> bool {
        if ticket.trial {
            return true;
        }
        match &self.shared.backend {
            Backend::Memory(m) => {
                let word = m.word();
                !memory::word_is_quiet(word) && memory::word_generation(word) == ticket.generation
            }
            Backend::Custom(s) => match s.closed_hint() {
                Some(hint) => hint.failures && hint.generation == ticket.generation,
                None => {
                    let snap = s.load();
                    snap.state == State::Closed
                        && snap.fail_counter != 0
                        && snap.generation == ticket.generation
                }
            },
        }
    }

    #[inline(always)]
    pub(crate) fn listening(&self) -> bool {
        self.shared.listening.load(Ordering::Acquire)
    }

    /// Runs `event` on every listener; a panicking listener does not stop the
    /// others, and the first panic is handed back to be resumed.
    pub(crate) fn each_listener(
        &self,
        mut event: impl FnMut(&dyn Listener),
    ) -> Result<(), Box<dyn Any + Send>> {
        if !self.listening() {
            return Ok(());
        }
        let list = self.shared.listeners.load();
        let mut first_panic = None;
        for listener in list.iter() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| event(&**listener))) {
                first_panic.get_or_insert(panic);
            }
        }
        first_panic.map_or(Ok(()), Err)
    }

    /// Tells listeners of the transition `applied` made, if it made one.
    ///
    /// On the memory storage every operation that changed the generation
    /// must come here (the announcer orders the reports by generation); any
    /// other storage is handed every result through [`Storage::announce`]
    /// (it may hold a transition until its caller gets here, and report
    /// others queued with it), whether or not anyone listens.
    pub(crate) fn after_transition(&self, applied: &Applied) -> Result<(), Box<dyn Any + Send>> {
        if let Some(announcer) = &self.shared.announcer {
            return announcer.announce(applied, |old, new| {
                self.each_listener(|l| l.state_change(self, old, new))
            });
        }
        let Backend::Custom(storage) = &self.shared.backend else {
            unreachable!("the memory storage has an announcer");
        };
        let mut first_panic = None;
        storage.announce(applied, &mut |old, new| {
            if let Err(panic) = self.each_listener(|l| l.state_change(self, old, new)) {
                first_panic.get_or_insert(panic);
            }
        });
        first_panic.map_or(Ok(()), Err)
    }

    /// Tells listeners of a transition a storage reports itself
    /// ([`Binding::notify_transition`]); the first listener panic is resumed
    /// once every listener has run.
    pub(crate) fn notify_state_change(&self, old: State, new: State) {
        if let Err(panic) = self.each_listener(|l| l.state_change(self, old, new)) {
            resume_unwind(panic);
        }
    }

    /// Frees a trial place that will not report a result.
    pub(crate) fn cancel(&self, ticket: Ticket) {
        if ticket.trial {
            self.apply(Op::Cancel {
                generation: ticket.generation,
            });
        }
    }

    /// Whether an exclusion matches the error.
    pub(crate) fn is_excluded(
        &self,
        any: &dyn Any,
        as_error: Option<&(dyn StdError + 'static)>,
    ) -> bool {
        if !self.shared.excluding.load(Ordering::Acquire) {
            return false;
        }
        let list = self.shared.exclusions.load();
        list.iter().any(|x| x.matches(any, as_error))
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

/// Frees a trial place when dropped: after what is dropped before it, even
/// if that panics.
pub(crate) struct CancelOnDrop<'cb>(pub(crate) &'cb CircuitBreaker, pub(crate) Ticket);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cancel(self.1);
    }
}

pub(crate) enum Precheck {
    Admitted(Ticket),
    Rejected(CircuitBreakerError),
    Apply,
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

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Settings for a new [`CircuitBreaker`]; made by [`CircuitBreaker::builder`].
///
/// ```
/// use breaker_core::{CircuitBreaker, ConfigError};
/// use std::time::Duration;
///
/// let cb = CircuitBreaker::builder("search")
///     .fail_max(10)
///     .reset_timeout(Duration::from_millis(500))
///     .success_threshold(2)
///     .build();
/// assert_eq!(cb.fail_max(), 10);
///
/// let bad = CircuitBreaker::builder("search").fail_max(0).try_build();
/// assert_eq!(bad.unwrap_err(), ConfigError::FailMax { value: 0 });
/// ```
#[must_use = "a builder does nothing until `build()`"]
pub struct Builder {
    name: Name,
    fail_max: u32,
    reset_timeout: Duration,
    success_threshold: u32,
    throw_on_trip: bool,
    exclusions: Vec<Exclusion>,
    listeners: Vec<Arc<dyn Listener>>,
    storage: Option<Backend>,
    clock: Option<ClockImpl>,
}

impl Builder {
    fn new(name: Cow<'static, str>) -> Self {
        Builder {
            name: name.into(),
            fail_max: 5,
            reset_timeout: Duration::from_secs(60),
            success_threshold: 1,
            throw_on_trip: true,
            exclusions: Vec::new(),
            listeners: Vec::new(),
            storage: None,
            clock: None,
        }
    }

    /// Consecutive failures that open the circuit (default 5).
    pub fn fail_max(mut self, n: u32) -> Self {
        self.fail_max = n;
        self
    }

    /// How long the circuit stays open before a trial call (default 60 s).
    pub fn reset_timeout(mut self, d: Duration) -> Self {
        self.reset_timeout = d;
        self
    }

    /// Trial successes in half-open that close the circuit (default 1).
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n;
        self
    }

    /// Whether the failure that opens the circuit returns
    /// [`Error::Tripped`](crate::Error::Tripped) (default `true`, as pybreaker).
    pub fn throw_new_error_on_trip(mut self, on: bool) -> Self {
        self.throw_on_trip = on;
        self
    }

    /// Errors of type `E` are not failures: the error itself, the error in a
    /// `Box<dyn Error>` (or `anyhow::Error` with the `anyhow` feature), and
    /// any error in their `source()` chain. They count as successes and are
    /// returned as [`Error::Inner`](crate::Error::Inner).
    pub fn exclude<E: StdError + 'static>(mut self) -> Self {
        self.exclusions.push(Exclusion::by_type::<E>());
        self
    }

    /// Errors of type `E` (found as [`exclude`](Self::exclude) finds them)
    /// for which `predicate` is true are not failures.
    pub fn exclude_if<E, F>(mut self, predicate: F) -> Self
    where
        E: StdError + 'static,
        F: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.exclusions.push(Exclusion::predicate(predicate));
        self
    }

    /// Adds a listener; listeners run in the order they were added.
    pub fn listener(mut self, listener: impl Listener + 'static) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Adds a listener already in an `Arc`, to remove it later by identity.
    pub fn listener_arc(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Where the state lives (default: a new [`MemoryStorage`]).
    pub fn storage<S: Storage>(mut self, storage: S) -> Self {
        let mut slot = Some(storage);
        let backend = match (&mut slot as &mut dyn Any).downcast_mut::<Option<MemoryStorage>>() {
            Some(memory) => Backend::Memory(memory.take().unwrap_or_default()),
            None => match slot {
                Some(storage) => Backend::Custom(Box::new(storage)),
                None => Backend::Memory(MemoryStorage::new()),
            },
        };
        self.storage = Some(backend);
        self
    }

    /// The clock (default: [`SystemClock`]); inject a
    /// [`ManualClock`](crate::clock::ManualClock) to test timeouts.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(ClockImpl::new(clock));
        self
    }

    /// The breaker, or what is wrong with the settings.
    ///
    /// # Errors
    /// [`ConfigError`] when `fail_max` or `success_threshold` is out of range.
    pub fn try_build(self) -> Result<CircuitBreaker, ConfigError> {
        let fail_max = check_fail_max(self.fail_max)?;
        let success_threshold = check_success_threshold(self.success_threshold)?;
        let listening = !self.listeners.is_empty();
        let excluding = !self.exclusions.is_empty();
        let backend = self
            .storage
            .unwrap_or(Backend::Memory(MemoryStorage::new()));
        let announcer = match &backend {
            Backend::Memory(m) => {
                let now = m.load();
                Some(Announcer::new(now.generation, now.state))
            }
            Backend::Custom(_) => None,
        };
        let shared = Arc::new(Shared {
            backend,
            announcer,
            name: self.name,
            clock: self
                .clock
                .unwrap_or_else(|| ClockImpl::System(SystemClock::new())),
            fail_max: AtomicU32::new(fail_max),
            success_threshold: AtomicU32::new(success_threshold),
            reset_timeout_ns: AtomicU64::new(saturating_nanos(self.reset_timeout)),
            throw_on_trip: AtomicBool::new(self.throw_on_trip),
            listening: AtomicBool::new(listening),
            listeners: ArcSwap::from_pointee(self.listeners),
            excluding: AtomicBool::new(excluding),
            exclusions: ArcSwap::from_pointee(self.exclusions),
            edits: Mutex::new(()),
        });
        if let Backend::Custom(storage) = &shared.backend {
            storage.bind(Binding {
                name: shared.name.as_str().into(),
                breaker: Arc::downgrade(&shared),
                clock: shared.clock.clone(),
            });
        }
        Ok(CircuitBreaker { shared })
    }

    /// The breaker.
    ///
    /// # Panics
    /// When a setting is out of range, with the message of
    /// [`try_build`](Self::try_build)'s error.
    pub fn build(self) -> CircuitBreaker {
        match self.try_build() {
            Ok(cb) => cb,
            Err(e) => panic!("{e}"),
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name.as_str())
            .field("fail_max", &self.fail_max)
            .field("reset_timeout", &self.reset_timeout)
            .field("success_threshold", &self.success_threshold)
            .field("throw_new_error_on_trip", &self.throw_on_trip)
            .finish_non_exhaustive()
    }
}

// Compile-time checks of the promises in the docs.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CircuitBreaker>();
    let _ = TypeId::of::<CircuitBreaker>;
};
