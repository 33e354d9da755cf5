//! [`CircuitBreakerBuilder`]: a new breaker's settings, checked when it is
//! built.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::backend::Backend;
use crate::breaker::{saturating_nanos, CircuitBreaker, Shared};
use crate::clock::{Clock, ClockImpl, SystemClock};
use crate::dispatch::Listeners;
use crate::error::ConfigError;
use crate::exclude::Exclusion;
use crate::flags::Flags;
use crate::inspect::{check_slow_call_duration, check_slow_call_rate, FailIf, Inspection};
use crate::listener::Listener;
use crate::memory::MemoryStorage;
use crate::name::Name;
use crate::rate::{check_failure_rate, check_min_calls, check_window, Windows};
use crate::state::{
    Backoff, Policy, RatePolicy, WindowShape, MAX_FAIL_MAX, MAX_HALF_OPEN_CALLS,
    MAX_SUCCESS_THRESHOLD,
};
use crate::storage::{Binding, Storage};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex};

/// Settings for a new [`CircuitBreaker`]; made by [`CircuitBreaker::builder`].
///
/// ```
/// use breaker::{CircuitBreaker, ConfigError};
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
pub struct CircuitBreakerBuilder {
    name: Name,
    fail_max: u32,
    /// Whether `fail_max` was set: beside a rate condition, it keeps the
    /// consecutive condition on.
    fail_max_set: bool,
    failure_rate: Option<f64>,
    window: WindowShape,
    min_calls: u32,
    reset_timeout: Duration,
    success_threshold: u32,
    half_open_calls: u32,
    backoff: Backoff,
    throw_on_trip: bool,
    exclusions: Vec<Exclusion>,
    listeners: Vec<Arc<dyn Listener>>,
    storage: Option<Backend>,
    clock: Option<ClockImpl>,
    fail_if: Option<FailIf>,
    slow_call_duration: Option<Duration>,
    slow_call_rate: Option<f64>,
    /// Set by a keyed group (`keyed.rs`) for the breaker of one key.
    pub(crate) key: Option<Box<dyn crate::keyed::KeyLink>>,
}

impl CircuitBreakerBuilder {
    pub(crate) fn new(name: Cow<'static, str>) -> Self {
        CircuitBreakerBuilder {
            name: name.into(),
            fail_max: 5,
            fail_max_set: false,
            failure_rate: None,
            window: WindowShape::DEFAULT,
            min_calls: RatePolicy::DEFAULT.min_calls,
            reset_timeout: Duration::from_secs(60),
            success_threshold: 1,
            half_open_calls: 1,
            backoff: Backoff::constant(),
            throw_on_trip: true,
            exclusions: Vec::new(),
            listeners: Vec::new(),
            storage: None,
            clock: None,
            fail_if: None,
            slow_call_duration: None,
            slow_call_rate: None,
            key: None,
        }
    }

    /// Consecutive failures that open the circuit (default 5).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(2).build();
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.current_state(), State::Closed);
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.current_state(), State::Open);
    /// ```
    ///
    /// With a rate condition ([`failure_rate`](Self::failure_rate)), setting
    /// `fail_max` keeps the consecutive condition on beside it: the circuit
    /// opens when either holds.
    pub fn fail_max(mut self, n: u32) -> Self {
        self.fail_max = n;
        self.fail_max_set = true;
        self
    }

    /// Opens the circuit when failures / calls in the window reach `rate`
    /// (in `(0, 1]`), once the window holds [`min_calls`](Self::min_calls)
    /// calls. Decided when a failure completes: the failure that makes the
    /// rate hold opens the circuit (and gets
    /// [`Error::Tripped`](crate::Error::Tripped)). Without
    /// [`fail_max`](Self::fail_max), the consecutive condition is off; with
    /// it, the circuit opens when either holds. Excluded errors count as
    /// successes; rejected and cancelled calls are not recorded.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Error, State};
    ///
    /// let cb = CircuitBreaker::builder("api").failure_rate(0.5).min_calls(4).build();
    /// for _ in 0..2 {
    ///     let _ = cb.call(|| Ok::<_, &str>(()));
    ///     let _ = cb.call(|| Err::<(), _>("refused")); // never 5 in a row
    /// }
    /// assert_eq!(cb.current_state(), State::Open); // 2 of 4 calls failed
    /// ```
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// Takes the rates over the last `n` completed calls, the oldest
    /// dropped first (the default: 100).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::builder("api").failure_rate(0.5).window_calls(4).min_calls(4).build();
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// for _ in 0..4 {
    ///     let _ = cb.call(|| Ok::<_, &str>(())); // the failure leaves the window
    /// }
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!((cb.window().failures, cb.current_state()), (1, State::Closed));
    /// ```
    pub fn window_calls(mut self, n: u32) -> Self {
        self.window = WindowShape::Calls(n);
        self
    }

    /// Takes the rates over the calls completed in the last `span`, in 10
    /// buckets of `span / 10`: a call leaves the window between 9/10 of
    /// `span` and `span` after it completed. Calls are placed on the
    /// clock's coarse reading; no thread runs in the background.
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, CircuitBreaker};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("api")
    ///     .failure_rate(0.5)
    ///     .window_time(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build();
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.window().failures, 1);
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(cb.window().failures, 0); // expired
    /// ```
    pub fn window_time(mut self, span: Duration) -> Self {
        self.window = WindowShape::Time(span);
        self
    }

    /// Calls the window must hold before a rate is decided on (default
    /// 10; a count window smaller than this decides once it is full).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::builder("api").failure_rate(0.5).min_calls(3).build();
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.current_state(), State::Closed); // 2 calls: not decided yet
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(cb.current_state(), State::Open);
    /// ```
    pub fn min_calls(mut self, n: u32) -> Self {
        self.min_calls = n;
        self
    }

    /// How long the circuit stays open before a trial call (default 60 s).
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, CircuitBreaker};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("db")
    ///     .reset_timeout(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build();
    /// cb.open();
    /// clock.advance(Duration::from_secs(9));
    /// assert!(cb.call(|| Ok::<_, &str>(())).unwrap_err().is_open());
    /// clock.advance(Duration::from_secs(1));
    /// assert!(cb.call(|| Ok::<_, &str>(())).is_ok()); // the trial
    /// ```
    pub fn reset_timeout(mut self, d: Duration) -> Self {
        self.reset_timeout = d;
        self
    }

    /// Trial successes in half-open that close the circuit (default 1).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::builder("db").success_threshold(2).build();
    /// cb.half_open();
    /// let _ = cb.call(|| Ok::<_, &str>(()));
    /// assert_eq!(cb.current_state(), State::HalfOpen);
    /// let _ = cb.call(|| Ok::<_, &str>(()));
    /// assert_eq!(cb.current_state(), State::Closed);
    /// ```
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n;
        self
    }

    /// Trial calls admitted at once in half-open (default 1, at most 255).
    /// Any trial failure opens the circuit again; `success_threshold`
    /// trial successes close it (it may exceed `half_open_calls`: trials
    /// are admitted as places free up).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// let cb = CircuitBreaker::builder("db").half_open_calls(2).success_threshold(2).build();
    /// cb.half_open();
    /// let both = cb.call(|| {
    ///     // A second trial runs while the first does; a third is rejected.
    ///     let second = cb.call(|| {
    ///         assert!(cb.call(|| Ok::<_, &str>(3)).unwrap_err().is_open());
    ///         Ok::<_, &str>(2)
    ///     });
    ///     second.map_err(|_| "second")
    /// });
    /// assert_eq!(both.unwrap(), 2);
    /// assert_eq!(cb.current_state(), State::Closed); // two trial successes
    /// ```
    pub fn half_open_calls(mut self, n: u32) -> Self {
        self.half_open_calls = n;
        self
    }

    /// How the open period grows when the circuit opens again without
    /// closing in between (default [`Backoff::constant()`]: always the
    /// reset timeout). [`retry_after`](CircuitBreaker::retry_after) reports
    /// the period in force.
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, Backoff, CircuitBreaker};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("db")
    ///     .fail_max(1)
    ///     .reset_timeout(Duration::from_secs(10))
    ///     .backoff(Backoff::exponential(2.0, Duration::from_secs(600)))
    ///     .clock(clock.clone())
    ///     .build();
    /// let _ = cb.call(|| Err::<(), _>("down"));
    /// assert_eq!(cb.retry_after(), Some(Duration::from_secs(10)));
    /// clock.advance(Duration::from_secs(10));
    /// let _ = cb.call(|| Err::<(), _>("still down")); // the trial fails
    /// assert_eq!(cb.retry_after(), Some(Duration::from_secs(20)));
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// `Ok` values that `predicate` accepts are failures: recorded as a
    /// failure (they count toward `fail_max` and the failure rate, and can
    /// open the circuit), and still returned as `Ok`, even by the call
    /// that opens the circuit. Listeners hear a
    /// [`failure`](crate::Listener::failure) with a
    /// [`FailedValue`](crate::FailedValue). A later `fail_if` replaces an
    /// earlier one; a predicate that panics fails the call, and the panic
    /// continues.
    ///
    /// The public call family applies it ([`call`](CircuitBreaker::call),
    /// [`call_with_view`](CircuitBreaker::call_with_view),
    /// [`call_or_else`](CircuitBreaker::call_or_else),
    /// [`call_async`](CircuitBreaker::call_async) and its forms,
    /// [`call_stream`](CircuitBreaker::call_stream), to each `Ok` item, and
    /// the `tower` layer's requests, to each response), to values of type
    /// `T` only: a call returning another type is never
    /// judged, and in debug builds a [`hint`](crate::hint) says so, once
    /// per breaker and type. To judge it, the methods need the value's type
    /// to be `'static`, so they take `T: 'static` (as they take
    /// `E: 'static`). A closure that returns a borrow (`Ok(&self.cache)`)
    /// does not compile through them; return an owned value or a copy
    /// (`Ok(self.cache.clone())`, `Ok(*count)`), or call through
    /// `#[circuit_breaker]`, which keeps borrowed returns and has a
    /// `fail_if` key of its own, typed per function.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State};
    ///
    /// struct Response {
    ///     status: u16,
    /// }
    ///
    /// let cb = CircuitBreaker::builder("api")
    ///     .fail_max(2)
    ///     .fail_if(|r: &Response| r.status >= 500)
    ///     .build();
    /// let first = cb.call(|| Ok::<_, ()>(Response { status: 503 }));
    /// assert_eq!(first.unwrap().status, 503); // still returned
    /// assert_eq!(cb.fail_counter(), 1);
    /// let second = cb.call(|| Ok::<_, ()>(Response { status: 502 }));
    /// assert!(second.is_ok()); // the call that opened the circuit
    /// assert_eq!(cb.current_state(), State::Open);
    /// ```
    pub fn fail_if<T, F>(mut self, predicate: F) -> Self
    where
        T: 'static,
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.fail_if = Some(FailIf::new(predicate));
        self
    }

    /// A call that takes longer than `d` (from admission to its result,
    /// success or failure) is slow: it is counted in the window's
    /// `slow_calls`, listeners hear [`slow_call`](crate::Listener::slow_call),
    /// and [`slow_call_rate`](Self::slow_call_rate) can open the circuit on
    /// it. The breaker then reads its clock when each call is admitted and
    /// when it completes (without a slow-call duration it never does).
    /// Calls through `call`, `call_with_view`, `call_async` and their
    /// forms, and the attribute's functions, are timed; guarded iterators
    /// and streams and the tower layer are not (yet).
    ///
    /// While no listener [wants durations](crate::Listener::wants_durations)
    /// and `d` is at least 100 times the clock's
    /// [coarse lag](crate::clock::Clock::coarse_lag) (one or two scheduler
    /// ticks on Linux), calls are timed on the clock's coarse reading,
    /// several times cheaper than the precise one: a call is then told
    /// slow to within that lag (1 % of `d`). Otherwise on the precise
    /// reading.
    ///
    /// # Example
    /// ```
    /// use breaker::CircuitBreaker;
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::builder("api").slow_call_duration(Duration::from_secs(2)).build();
    /// assert_eq!(cb.slow_call_duration(), Some(Duration::from_secs(2)));
    /// ```
    pub fn slow_call_duration(mut self, d: Duration) -> Self {
        self.slow_call_duration = Some(d);
        self
    }

    /// Open the circuit when slow calls make up at least `rate` of the
    /// calls in the window (once it holds `min_calls`), checked when a slow
    /// call completes; `rate` is in `(0, 1]`. It needs a
    /// [`slow_call_duration`](Self::slow_call_duration) to say what is slow.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError, Number};
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::builder("api")
    ///     .slow_call_duration(Duration::from_secs(2))
    ///     .slow_call_rate(0.8)
    ///     .build();
    /// assert_eq!(cb.slow_call_rate(), Some(0.8));
    ///
    /// let bad = CircuitBreaker::builder("api").slow_call_rate(f64::NAN).try_build();
    /// assert_eq!(bad.unwrap_err(), ConfigError::SlowCallRate { value: Number::from(f64::NAN) });
    /// ```
    pub fn slow_call_rate(mut self, rate: f64) -> Self {
        self.slow_call_rate = Some(rate);
        self
    }

    /// Whether the failure that opens the circuit returns
    /// [`Error::Tripped`](crate::Error::Tripped) (default `true`, as pybreaker).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Error};
    ///
    /// let cb = CircuitBreaker::builder("db")
    ///     .fail_max(1)
    ///     .throw_new_error_on_trip(false)
    ///     .build();
    /// assert!(matches!(cb.call(|| Err::<(), _>("refused")), Err(Error::Inner("refused"))));
    /// assert!(cb.call(|| Ok::<_, &str>(())).unwrap_err().is_open());
    /// ```
    pub fn throw_new_error_on_trip(mut self, on: bool) -> Self {
        self.throw_on_trip = on;
        self
    }

    /// Errors of type `E` are not failures: the error itself, the error in a
    /// `Box<dyn Error>` (or `anyhow::Error` with the `anyhow` feature), and
    /// any error in their `source()` chain. They count as successes and are
    /// returned as [`Error::Inner`](crate::Error::Inner).
    ///
    /// Where a type cannot be found:
    /// - [`call`](crate::CircuitBreaker::call) sees a concrete error type
    ///   as itself only: an `E` inside an application error is found with
    ///   [`call_with_view`](crate::CircuitBreaker::call_with_view)`(f, |e| Some(e))`
    ///   or through `#[circuit_breaker]`.
    /// - An `#[error(transparent)]` variant's `source()` skips the error it
    ///   wraps: exclude the variant instead, with a predicate on the outer
    ///   type, as in `.exclude_if(|e: &FetchError| matches!(e, FetchError::Http(_)))`.
    ///
    /// In debug builds, the first failure that shows one of these mistakes
    /// gives a [`hint`](crate::hint) naming the fix.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Error};
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("invalid customer")]
    /// struct Invalid;
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(1).exclude::<Invalid>().build();
    /// let boxed = || Err::<(), Box<dyn std::error::Error + Send + Sync>>(Box::new(Invalid));
    /// assert!(matches!(cb.call(boxed), Err(Error::Inner(_))));
    /// assert_eq!(cb.fail_counter(), 0);
    /// ```
    pub fn exclude<E: StdError + 'static>(mut self) -> Self {
        self.exclusions.push(Exclusion::by_type::<E>());
        self
    }

    /// Errors of type `E` (found as [`exclude`](Self::exclude) finds them)
    /// for which `predicate` is true are not failures.
    ///
    /// The first thing to reach for: with `E` the guarded function's own
    /// error type, the predicate sees exactly what the function returned
    /// (a variant, a wrapped error), with no chain to search.
    ///
    /// ```
    /// use breaker::CircuitBreaker;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("http {0}")]
    /// struct HttpError(u16);
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// enum FetchError {
    ///     #[error(transparent)] // its `source()` skips the `HttpError`
    ///     Http(#[from] HttpError),
    ///     #[error("timed out")]
    ///     Timeout,
    /// }
    ///
    /// let cb = CircuitBreaker::builder("items")
    ///     .exclude_if(|e: &FetchError| matches!(e, FetchError::Http(h) if h.0 < 500))
    ///     .build();
    /// let _ = cb.call(|| Err::<(), _>(FetchError::Http(HttpError(404))));
    /// assert_eq!(cb.fail_counter(), 0);
    /// let _ = cb.call(|| Err::<(), _>(FetchError::Timeout));
    /// assert_eq!(cb.fail_counter(), 1);
    /// ```
    ///
    /// # Example
    /// ```
    /// use breaker::CircuitBreaker;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("http {status}")]
    /// struct HttpError {
    ///     status: u16,
    /// }
    ///
    /// let cb = CircuitBreaker::builder("api")
    ///     .exclude_if(|e: &HttpError| e.status < 500) // the caller's fault
    ///     .build();
    /// let _ = cb.call(|| Err::<(), _>(HttpError { status: 404 }));
    /// assert_eq!(cb.fail_counter(), 0);
    /// let _ = cb.call(|| Err::<(), _>(HttpError { status: 503 }));
    /// assert_eq!(cb.fail_counter(), 1);
    /// ```
    pub fn exclude_if<E, F>(mut self, predicate: F) -> Self
    where
        E: StdError + 'static,
        F: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.exclusions.push(Exclusion::predicate(predicate));
        self
    }

    /// Adds a listener; listeners run in the order they were added.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Failure, Listener};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// struct CountFailures(Arc<AtomicUsize>);
    /// impl Listener for CountFailures {
    ///     fn failure(&self, _: &CircuitBreaker, _: &Failure<'_>) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let failures = Arc::new(AtomicUsize::new(0));
    /// let cb = CircuitBreaker::builder("db")
    ///     .listener(CountFailures(failures.clone()))
    ///     .build();
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// assert_eq!(failures.load(Ordering::Relaxed), 1);
    /// ```
    pub fn listener(mut self, listener: impl Listener + 'static) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Adds a listener already in an `Arc`, to remove it later by identity.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Listener};
    /// use std::sync::Arc;
    ///
    /// struct Log;
    /// impl Listener for Log {}
    ///
    /// let log: Arc<dyn Listener> = Arc::new(Log);
    /// let cb = CircuitBreaker::builder("db").listener_arc(log.clone()).build();
    /// assert!(cb.remove_listener(&log));
    /// ```
    pub fn listener_arc(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Where the state lives (default: a new [`MemoryStorage`]).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, MemoryStorage, State};
    ///
    /// let cb = CircuitBreaker::builder("db").storage(MemoryStorage::new()).build();
    /// assert_eq!(cb.current_state(), State::Closed);
    /// ```
    pub fn storage<S: Storage>(mut self, storage: S) -> Self {
        self.storage = Some(Backend::new(storage));
        self
    }

    /// The clock (default: [`SystemClock`]); inject a
    /// [`ManualClock`](crate::clock::ManualClock) to test timeouts.
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, CircuitBreaker, State};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("db").clock(clock.clone()).build();
    /// cb.open();
    /// clock.advance(Duration::from_secs(60)); // no sleeping
    /// assert_eq!(cb.call(|| Ok::<_, &str>("trial")).unwrap(), "trial");
    /// assert_eq!(cb.current_state(), State::Closed);
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(ClockImpl::new(clock));
        self
    }

    /// The breaker, or what is wrong with the settings.
    ///
    /// # Errors
    /// [`ConfigError`] when `fail_max`, `success_threshold` or
    /// `half_open_calls` is out of range, when the backoff's factor is
    /// below 1, its `max` below the reset timeout or its jitter outside
    /// `[0, 1)`, when the failure rate is outside `(0, 1]`, the window
    /// holds no call (or spans less than 10 ms) or `min_calls` is 0, when
    /// the slow-call duration is zero or the slow-call rate is outside
    /// `(0, 1]` or set without a duration, and when the storage cannot
    /// apply the policy.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, ConfigError};
    ///
    /// let err = CircuitBreaker::builder("db").success_threshold(0).try_build().unwrap_err();
    /// assert_eq!(err, ConfigError::SuccessThreshold { value: 0 });
    /// assert_eq!(err.to_string(), "success_threshold must be between 1 and 255, got 0");
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(3).try_build()?;
    /// assert_eq!(cb.fail_max(), 3);
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn try_build(self) -> Result<CircuitBreaker, ConfigError> {
        let fail_max = check_fail_max(self.fail_max)?;
        let success_threshold = check_success_threshold(self.success_threshold)?;
        let slow_call_duration = self
            .slow_call_duration
            .map(check_slow_call_duration)
            .transpose()?;
        let slow_call_rate = self
            .slow_call_rate
            .map(|rate| check_slow_call_rate(rate, slow_call_duration))
            .transpose()?;
        let policy = Policy {
            half_open_calls: check_half_open_calls(self.half_open_calls)?,
            backoff: check_backoff(self.backoff, self.reset_timeout)?,
            rate: RatePolicy {
                failure_rate: self.failure_rate.map(check_failure_rate).transpose()?,
                slow_call_rate,
                window: check_window(self.window)?,
                min_calls: check_min_calls(self.min_calls)?,
                consecutive: self.fail_max_set,
            },
        };
        let clock = self
            .clock
            .unwrap_or_else(|| ClockImpl::System(SystemClock::new()));
        let flags = Flags::new();
        let inspection = Inspection::new(
            self.fail_if,
            slow_call_duration,
            self.listeners.iter().any(|l| l.wants_durations()),
            clock.coarse_nanos().1,
            &flags,
        );
        let excluding = !self.exclusions.is_empty();
        let backend = self
            .storage
            .unwrap_or_else(|| Backend::memory(MemoryStorage::new()));
        backend.check_policy(&policy)?;
        let shared = Arc::new(Shared {
            backend,
            name: self.name,
            clock,
            fail_max: AtomicU32::new(fail_max),
            success_threshold: AtomicU32::new(success_threshold),
            reset_timeout_ns: AtomicU64::new(saturating_nanos(self.reset_timeout)),
            throw_on_trip: AtomicBool::new(self.throw_on_trip),
            default_policy: AtomicBool::new(policy.acts_as_default()),
            policy: ArcSwap::from_pointee(policy),
            windows: Windows::new(),
            listeners: Listeners::new(self.listeners, &flags),
            flags,
            excluding: AtomicBool::new(excluding),
            exclusions: ArcSwap::from_pointee(self.exclusions),
            edits: Mutex::new(()),
            inspection,
            key: self.key,
        });
        shared.backend.bind(Binding {
            name: shared.storage_name(),
            breaker: Arc::downgrade(&shared),
            clock: shared.clock.clone(),
        });
        let cb = CircuitBreaker::from_shared(shared);
        cb.apply_rate_policy(&policy.rate)?;
        Ok(cb)
    }

    /// The breaker.
    ///
    /// # Panics
    /// When a setting is out of range, with the message of
    /// [`try_build`](Self::try_build)'s error.
    ///
    /// # Example
    /// ```
    /// use breaker::CircuitBreaker;
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(3).build();
    /// assert_eq!(cb.fail_max(), 3);
    /// ```
    ///
    /// ```should_panic
    /// // panics: "fail_max must be between 1 and 65535, got 0"
    /// let cb = breaker::CircuitBreaker::builder("db").fail_max(0).build();
    /// ```
    pub fn build(self) -> CircuitBreaker {
        match self.try_build() {
            Ok(cb) => cb,
            Err(e) => panic!("{e}"),
        }
    }
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &self.name.as_str())
            .field("fail_max", &self.fail_max)
            .field("reset_timeout", &self.reset_timeout)
            .field("success_threshold", &self.success_threshold)
            .field("half_open_calls", &self.half_open_calls)
            .field("failure_rate", &self.failure_rate)
            .field("window", &self.window)
            .field("min_calls", &self.min_calls)
            .field("backoff", &self.backoff)
            .field("throw_new_error_on_trip", &self.throw_on_trip)
            .finish_non_exhaustive()
    }
}

/// `fail_max`, if in range.
pub(crate) fn check_fail_max(value: u32) -> Result<u32, ConfigError> {
    if (1..=MAX_FAIL_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::FailMax { value })
    }
}

/// `success_threshold`, if in range.
pub(crate) fn check_success_threshold(value: u32) -> Result<u32, ConfigError> {
    if (1..=MAX_SUCCESS_THRESHOLD).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::SuccessThreshold { value })
    }
}

/// `half_open_calls`, if in range.
pub(crate) fn check_half_open_calls(value: u32) -> Result<u32, ConfigError> {
    if (1..=MAX_HALF_OPEN_CALLS).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::HalfOpenCalls { value })
    }
}

/// `backoff`, if its factor is at least 1, its cap at least
/// `reset_timeout` and its jitter in `[0, 1)` (a NaN is none of these).
pub(crate) fn check_backoff(
    backoff: Backoff,
    reset_timeout: Duration,
) -> Result<Backoff, ConfigError> {
    let factor = backoff.factor();
    if !(factor >= 1.0 && factor.is_finite()) {
        return Err(ConfigError::BackoffFactor {
            value: factor.into(),
        });
    }
    if let Some(max) = backoff.max() {
        if max < reset_timeout {
            return Err(ConfigError::BackoffMax { max, reset_timeout });
        }
    }
    let jitter = backoff.jitter_fraction();
    if !(0.0..1.0).contains(&jitter) {
        return Err(ConfigError::Jitter {
            value: jitter.into(),
        });
    }
    Ok(backoff)
}
