//! Inspecting a completed call beyond `Ok` or `Err`: an `Ok` value that
//! `fail_if` accepts is a failure, and a call that took longer than the
//! slow-call duration is slow.
//!
//! Both are off by default and cost the plain path one flag's load
//! ([`Inspection::on`]): a breaker with neither never reads a clock for a
//! call and never looks at its value. With either on, a call goes through
//! [`complete`](CircuitBreaker::complete) instead of the plain `finish_*`:
//!
//! - **`fail_if`**: the breaker's predicate ([`FailIf`], type-erased with
//!   its `TypeId`, applied by the public call family, whose `T` is
//!   `'static`) or a call site's (the attribute's, typed, passed to the
//!   `__private` shims; a zero-sized no-op when the site has none). An
//!   accepted `Ok` is recorded as a failure and still returned as `Ok`.
//! - **timing**: on while a slow-call duration is set or a listener
//!   [wants durations](crate::Listener::wants_durations). The breaker's
//!   clock is read when the call is admitted and when it completes; the
//!   listeners hear [`call_duration`](crate::Listener::call_duration) (and
//!   [`slow_call`](crate::Listener::slow_call) when it was slow) once the
//!   result is recorded and reported.

use std::any::{Any, TypeId};
use std::error::Error as StdError;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::admission::Ticket;
use crate::breaker::CircuitBreaker;
use crate::error::{ConfigError, Error, Number};
use crate::flags::Flags;
use crate::listener::Hooks;
use crate::recording::{failure_op, success_op, Panic};
use crate::state::Op;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::window::Outcome;

/// What [`failure`](crate::Listener::failure) listeners are told for an
/// `Ok` value that `fail_if` accepted: the call failed to the breaker, and
/// its value was still returned.
///
/// ```
/// use breaker::{listener, CircuitBreaker, FailedValue};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// let judged = Arc::new(AtomicU32::new(0));
/// let seen = judged.clone();
/// let cb = CircuitBreaker::builder("api")
///     .fail_if(|status: &u16| *status >= 500)
///     .listener(listener::on_failure(move |_, failure| {
///         if failure.downcast_ref::<FailedValue>().is_some() {
///             seen.fetch_add(1, Ordering::Relaxed);
///         }
///     }))
///     .build();
/// assert_eq!(cb.call(|| Ok::<u16, ()>(503)).unwrap(), 503);
/// assert_eq!(judged.load(Ordering::Relaxed), 1);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedValue;

impl std::fmt::Debug for FailedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an `Ok` value `fail_if` counts as a failure")
    }
}

/// A breaker's `fail_if`: a predicate on one `'static` type, kept with its
/// `TypeId`.
pub(crate) struct FailIf {
    type_id: TypeId,
    type_name: &'static str,
    predicate: Box<Predicate>,
}

/// A `fail_if` predicate, taking its value as `dyn Any`.
type Predicate = dyn Fn(&dyn Any) -> bool + Send + Sync;

impl FailIf {
    pub(crate) fn new<T, F>(predicate: F) -> Self
    where
        T: 'static,
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        FailIf {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            predicate: Box::new(move |value| value.downcast_ref::<T>().is_some_and(&predicate)),
        }
    }

    /// Whether the predicate accepts `value`; a value of another type is
    /// never judged (a hint says so in debug builds, once per breaker and
    /// type).
    fn accepts<T: 'static>(&self, breaker: &'static str, value: &T) -> bool {
        if TypeId::of::<T>() == self.type_id {
            return (self.predicate)(value);
        }
        crate::hint::not_judged(
            breaker,
            (TypeId::of::<T>(), std::any::type_name::<T>()),
            (self.type_id, self.type_name),
        );
        false
    }
}

/// A breaker's inspection settings, and the flags the call paths read.
///
/// Whether calls take the inspected path (a `fail_if` is set, or calls are
/// timed) is the breaker's `INSPECTED` flag (`flags.rs`), which the plain
/// path reads with the listeners' hooks.
pub(crate) struct Inspection {
    /// Whether calls are timed: a slow-call duration is set, or a
    /// listener wants durations.
    timing: AtomicBool,
    /// Whether a listener attached now wants durations.
    durations_wanted: AtomicBool,
    /// Whether a call may be timed on the coarse clock: no listener wants
    /// durations, and the slow-call duration is at least
    /// [`COARSE_FACTOR`] times the coarse clock's lag.
    coarse: AtomicBool,
    /// The slow-call duration in nanoseconds; 0: none.
    slow_nanos: AtomicU64,
    /// How far the breaker's coarse clock may lag, in nanoseconds.
    lag_nanos: u64,
    fail_if: Option<FailIf>,
}

/// A slow-call duration at least this many times the coarse clock's lag
/// (one or two scheduler ticks) is told apart on the coarse clock: an
/// error of at most 1 % of it, for a reading several times cheaper.
pub(crate) const COARSE_FACTOR: u64 = 100;

impl Inspection {
    pub(crate) fn new(
        fail_if: Option<FailIf>,
        slow_call_duration: Option<Duration>,
        durations_wanted: bool,
        lag_nanos: u64,
        flags: &Flags,
    ) -> Self {
        let inspection = Inspection {
            timing: AtomicBool::new(false),
            durations_wanted: AtomicBool::new(durations_wanted),
            coarse: AtomicBool::new(false),
            slow_nanos: AtomicU64::new(slow_call_duration.map_or(0, crate::clock::as_nanos)),
            lag_nanos,
            fail_if,
        };
        inspection.update_flags(flags);
        inspection
    }

    /// Sets `timing`, `coarse` and the breaker's `INSPECTED` flag from the
    /// settings.
    fn update_flags(&self, flags: &Flags) {
        let slow_nanos = self.slow_nanos.load(Ordering::Relaxed);
        let wanted = self.durations_wanted.load(Ordering::Relaxed);
        let timing = slow_nanos != 0 || wanted;
        let coarse = !wanted && slow_nanos >= self.lag_nanos.saturating_mul(COARSE_FACTOR);
        self.coarse.store(coarse, Ordering::Relaxed);
        self.timing.store(timing, Ordering::Relaxed);
        flags.set_inspected(timing || self.fail_if.is_some());
    }

    /// Notes whether the listeners attached now want durations.
    pub(crate) fn set_durations_wanted(&self, wanted: bool, flags: &Flags) {
        self.durations_wanted.store(wanted, Ordering::Relaxed);
        self.update_flags(flags);
    }

    /// The slow-call duration, if set.
    pub(crate) fn slow_call_duration(&self) -> Option<Duration> {
        match self.slow_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

/// A slow-call duration, if it is not zero.
pub(crate) fn check_slow_call_duration(d: Duration) -> Result<Duration, ConfigError> {
    match d.is_zero() {
        true => Err(ConfigError::SlowCallDuration { value: d }),
        false => Ok(d),
    }
}

/// A slow-call rate, if it is in `(0, 1]` (a NaN is not) and a slow-call
/// duration says what is slow.
pub(crate) fn check_slow_call_rate(
    rate: f64,
    duration: Option<Duration>,
) -> Result<f64, ConfigError> {
    if !(rate > 0.0 && rate <= 1.0) {
        return Err(ConfigError::SlowCallRate {
            value: Number::from(rate),
        });
    }
    match duration {
        Some(_) => Ok(rate),
        None => Err(ConfigError::SlowCallRateWithoutDuration),
    }
}

/// Whether a timed call was slow.
#[inline]
pub(crate) fn is_slow(timed: Option<Timed>) -> bool {
    timed.is_some_and(|t| t.slow)
}

/// What decides whether an `Ok` value is a failure: the breaker's
/// `fail_if` (`ByBreaker`, for the public call family), a call site's
/// predicate ([`AtSite`]), or nothing ([`Unjudged`]). Not public API
/// (reached through `__private` by generated code's types).
pub trait Judge<T> {
    /// Whether the call site judges every `Ok` itself (so even a breaker
    /// that inspects nothing takes the inspected path for it).
    const AT_SITE: bool;

    /// Whether `value` is a failure (user code: it may panic).
    fn fails(&self, cb: &CircuitBreaker, value: &T) -> bool;
}

/// The breaker's own `fail_if`, checked by `TypeId`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ByBreaker;

impl<T: 'static> Judge<T> for ByBreaker {
    const AT_SITE: bool = false;

    #[inline]
    fn fails(&self, cb: &CircuitBreaker, value: &T) -> bool {
        match &cb.shared.inspection.fail_if {
            Some(fail_if) => fail_if.accepts(cb.shared.name.as_str(), value),
            None => false,
        }
    }
}

/// A call site's typed predicate (the attribute's `fail_if`).
#[derive(Clone, Copy)]
pub struct AtSite<F>(pub(crate) F);

impl<T, F: Fn(&T) -> bool> Judge<T> for AtSite<F> {
    const AT_SITE: bool = true;

    #[inline]
    fn fails(&self, _: &CircuitBreaker, value: &T) -> bool {
        (self.0)(value)
    }
}

/// No judge: every `Ok` is a success (the attribute without `fail_if`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unjudged;

impl<T> Judge<T> for Unjudged {
    const AT_SITE: bool = false;

    #[inline(always)]
    fn fails(&self, _: &CircuitBreaker, _: &T) -> bool {
        false
    }
}

/// What the inspected path noted at admission: the call's start on the
/// breaker's clock (nanoseconds; whether on its coarse reading), if it is
/// timed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Started(Option<(u64, bool)>);

/// How long a completed, timed call took, and whether that was slow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timed {
    pub(crate) elapsed: Duration,
    pub(crate) slow: bool,
}

impl CircuitBreaker {
    /// Whether calls take the inspected path: one load of the flag word.
    #[inline(always)]
    pub(crate) fn inspecting(&self) -> bool {
        self.path().inspected()
    }

    /// The start of an inspected call: the clock read if calls are timed.
    /// A clock that panics leaves the call untimed.
    pub(crate) fn start(&self) -> Started {
        let inspection = &self.shared.inspection;
        if !inspection.timing.load(Ordering::Relaxed) {
            return Started(None);
        }
        let coarse = inspection.coarse.load(Ordering::Relaxed);
        Started(self.timing_reading(coarse).map(|at| (at, coarse)))
    }

    /// A reading for timing a call, the coarse one or the precise one; `None`
    /// if the clock panics.
    fn timing_reading(&self, coarse: bool) -> Option<u64> {
        let clock = &self.shared.clock;
        catch_unwind(AssertUnwindSafe(|| match coarse {
            true => clock.coarse_nanos().0,
            false => clock.monotonic_nanos(),
        }))
        .ok()
    }

    /// How long the call `started` took, if timed, and whether it was slow.
    pub(crate) fn stop(&self, started: Started) -> Option<Timed> {
        let (start, coarse) = started.0?;
        let end = self.timing_reading(coarse)?;
        let elapsed = Duration::from_nanos(end.saturating_sub(start));
        let slow = self
            .slow_call_duration()
            .is_some_and(|limit| elapsed > limit);
        Some(Timed { elapsed, slow })
    }

    /// Tells the listeners how long a call took (and that it was slow); a
    /// panic among them continues once they have all run.
    pub(crate) fn tell_duration(&self, timed: Option<Timed>) {
        if let Err(panic) = self.told_duration(timed) {
            resume_unwind(panic);
        }
    }

    /// [`tell_duration`](Self::tell_duration), the first panic handed back.
    pub(crate) fn told_duration(&self, timed: Option<Timed>) -> Result<(), Panic> {
        let Some(Timed { elapsed, slow }) = timed else {
            return Ok(());
        };
        self.each_listener(Hooks::SLOW_CALL | Hooks::CALL_DURATION, |l| {
            let hooks = l.hooks();
            if slow && hooks.contains(Hooks::SLOW_CALL) {
                l.slow_call(self, elapsed);
            }
            if hooks.contains(Hooks::CALL_DURATION) {
                l.call_duration(self, elapsed);
            }
        })
    }

    /// Notes whether the listeners attached now want durations (after an
    /// edit of the list).
    pub(crate) fn update_durations_wanted(&self) {
        let wanted = self
            .shared
            .listeners
            .to_vec()
            .iter()
            .any(|l| l.wants_durations());
        let shared = &self.shared;
        shared
            .inspection
            .set_durations_wanted(wanted, &shared.flags);
    }

    /// A call longer than this is slow; `None`: no call is slow.
    ///
    /// # Example
    /// ```
    /// use breaker::CircuitBreaker;
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::builder("api").slow_call_duration(Duration::from_secs(2)).build();
    /// assert_eq!(cb.slow_call_duration(), Some(Duration::from_secs(2)));
    /// assert_eq!(CircuitBreaker::new("plain").slow_call_duration(), None);
    /// ```
    pub fn slow_call_duration(&self) -> Option<Duration> {
        self.shared.inspection.slow_call_duration()
    }

    /// Changes the slow-call duration; it applies to calls admitted from
    /// now on (a call already running is judged by the duration read when
    /// it completes).
    ///
    /// # Errors
    /// [`ConfigError::SlowCallDuration`] for a zero duration; nothing
    /// changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError};
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::new("api");
    /// cb.set_slow_call_duration(Duration::from_millis(500))?;
    /// assert_eq!(cb.slow_call_duration(), Some(Duration::from_millis(500)));
    /// assert_eq!(
    ///     cb.set_slow_call_duration(Duration::ZERO),
    ///     Err(ConfigError::SlowCallDuration { value: Duration::ZERO })
    /// );
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn set_slow_call_duration(&self, d: Duration) -> Result<(), ConfigError> {
        let d = check_slow_call_duration(d)?;
        let inspection = &self.shared.inspection;
        inspection
            .slow_nanos
            .store(crate::clock::as_nanos(d), Ordering::Relaxed);
        inspection.update_flags(&self.shared.flags);
        Ok(())
    }

    /// The slow-call rate that opens the circuit, if set.
    ///
    /// # Example
    /// ```
    /// use breaker::CircuitBreaker;
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::builder("api")
    ///     .slow_call_duration(Duration::from_secs(2))
    ///     .slow_call_rate(0.8)
    ///     .build();
    /// assert_eq!(cb.slow_call_rate(), Some(0.8));
    /// ```
    pub fn slow_call_rate(&self) -> Option<f64> {
        self.policy().rate.slow_call_rate
    }

    /// Changes the slow-call rate; it applies from the next slow call on.
    /// Turning it on starts the window (and turns the consecutive
    /// condition off unless `fail_max` was set), as
    /// [`set_failure_rate`](Self::set_failure_rate) does.
    ///
    /// # Errors
    /// [`ConfigError::SlowCallRate`] for a rate outside `(0, 1]` or not a
    /// number, [`ConfigError::SlowCallRateWithoutDuration`] on a breaker
    /// with no slow-call duration; nothing changes.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError, Number};
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::builder("api").slow_call_duration(Duration::from_secs(1)).build();
    /// cb.set_slow_call_rate(0.5)?;
    /// assert_eq!(cb.slow_call_rate(), Some(0.5));
    /// assert_eq!(
    ///     cb.set_slow_call_rate(1.5),
    ///     Err(ConfigError::SlowCallRate { value: Number::from(1.5) })
    /// );
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn set_slow_call_rate(&self, rate: f64) -> Result<(), ConfigError> {
        let rate = check_slow_call_rate(rate, self.slow_call_duration())?;
        self.update_policy(|p| p.rate.slow_call_rate = Some(rate))
    }

    /// The operation a success of the call admitted with `ticket` applies,
    /// if it has one, once it is counted in the window (if any): a slow
    /// closed-state success is `Op::Trip` when it makes the slow-call rate
    /// hold; on a storage that keeps the window, it is `Op::SlowCall` (one
    /// operation of its own: the storage counts it and decides).
    pub(crate) fn success_op_as(&self, ticket: Ticket, slow: bool) -> Option<Op> {
        match self.shared.windows.get() {
            Some(_) if slow && !ticket.trial && self.shared.backend.keeps_window() => {
                // Counted among the successes the storage is told of, and
                // sent as slow: the storage decides the slow-call rate.
                self.record_success_in_window(ticket);
                return Some(Op::SlowCall {
                    generation: ticket.generation,
                    failed: false,
                });
            }
            Some(window) if slow && !ticket.trial => {
                let slow_success = Outcome {
                    failed: false,
                    slow: true,
                };
                if let Some(reason) = self.record_in_window(window, ticket, slow_success) {
                    return Some(Op::Trip {
                        generation: ticket.generation,
                        reason,
                    });
                }
            }
            _ => self.record_success_in_window(ticket),
        }
        self.success_to_record(ticket).then(|| success_op(ticket))
    }

    /// The operation a failure of the call admitted with `ticket` applies,
    /// counted in the window (if any) as slow or not (a slow one is
    /// `Op::SlowCall` on a storage that keeps the window).
    pub(crate) fn failure_op_as(&self, ticket: Ticket, slow: bool) -> Op {
        match self.shared.windows.get() {
            Some(_) if slow && !ticket.trial && self.shared.backend.keeps_window() => {
                Op::SlowCall {
                    generation: ticket.generation,
                    failed: true,
                }
            }
            Some(window) if slow && !ticket.trial => {
                let slow_failure = Outcome {
                    failed: true,
                    slow: true,
                };
                match self.record_in_window(window, ticket, slow_failure) {
                    Some(reason) => Op::Trip {
                        generation: ticket.generation,
                        reason,
                    },
                    None => failure_op(ticket),
                }
            }
            _ => self.failure_op(ticket),
        }
    }

    /// Records a success of an inspected call, slow or not.
    pub(crate) fn finish_ok_as(&self, ticket: Ticket, slow: bool) {
        if !slow {
            return self.finish_ok(ticket);
        }
        let recorded = self.success_op_as(ticket, slow).map(|op| self.apply(op));
        self.report_success(recorded);
    }

    /// Records an error result of an inspected call, slow or not: a
    /// success if excluded, else a failure.
    pub(crate) fn finish_err_as<E, V, X>(
        &self,
        ticket: Ticket,
        error: E,
        view: &V,
        site_excluded: &X,
        slow: bool,
    ) -> Error<E>
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    {
        if self.excluded_or_fail(ticket, &error, view, site_excluded) {
            let recorded = self.success_op_as(ticket, slow).map(|op| self.apply(op));
            self.report_excluded(&error, view, recorded);
            return Error::Inner(error);
        }
        self.finish_failure_as(ticket, error, view, slow)
    }

    /// Records a failure of an inspected call, slow or not.
    pub(crate) fn finish_failure_as<E, V>(
        &self,
        ticket: Ticket,
        error: E,
        view: &V,
        slow: bool,
    ) -> Error<E>
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    {
        let recorded = self.apply(self.failure_op_as(ticket, slow));
        self.report_failure(error, view, recorded)
    }

    /// Records a panic as the failure of an inspected call: its duration
    /// is told first (a listener's panic there is dropped: the call's
    /// panic continues).
    pub(crate) fn fail_inspected_with_panic(
        &self,
        ticket: Ticket,
        panic: Panic,
        timed: Option<Timed>,
    ) -> ! {
        let _dropped = self.told_duration(timed);
        let recorded = self.apply(self.failure_op_as(ticket, is_slow(timed)));
        self.report_panic(&*panic, recorded);
        resume_unwind(panic)
    }
}
