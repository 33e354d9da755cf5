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
use crate::listener::Listener;
use crate::memory::MemoryStorage;
use crate::name::Name;
use crate::state::{Backoff, Policy, MAX_FAIL_MAX, MAX_HALF_OPEN_CALLS, MAX_SUCCESS_THRESHOLD};
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
    reset_timeout: Duration,
    success_threshold: u32,
    half_open_calls: u32,
    backoff: Backoff,
    throw_on_trip: bool,
    exclusions: Vec<Exclusion>,
    listeners: Vec<Arc<dyn Listener>>,
    storage: Option<Backend>,
    clock: Option<ClockImpl>,
    /// Set by a keyed group (`keyed.rs`) for the breaker of one key.
    pub(crate) key: Option<Box<dyn crate::keyed::KeyLink>>,
}

impl CircuitBreakerBuilder {
    pub(crate) fn new(name: Cow<'static, str>) -> Self {
        CircuitBreakerBuilder {
            name: name.into(),
            fail_max: 5,
            reset_timeout: Duration::from_secs(60),
            success_threshold: 1,
            half_open_calls: 1,
            backoff: Backoff::constant(),
            throw_on_trip: true,
            exclusions: Vec::new(),
            listeners: Vec::new(),
            storage: None,
            clock: None,
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
    pub fn fail_max(mut self, n: u32) -> Self {
        self.fail_max = n;
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
    /// `[0, 1)`, and when the storage cannot apply the policy.
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
        let policy = Policy {
            half_open_calls: check_half_open_calls(self.half_open_calls)?,
            backoff: check_backoff(self.backoff, self.reset_timeout)?,
        };
        let excluding = !self.exclusions.is_empty();
        let backend = self
            .storage
            .unwrap_or_else(|| Backend::memory(MemoryStorage::new()));
        backend.check_policy(&policy)?;
        let shared = Arc::new(Shared {
            backend,
            name: self.name,
            clock: self
                .clock
                .unwrap_or_else(|| ClockImpl::System(SystemClock::new())),
            fail_max: AtomicU32::new(fail_max),
            success_threshold: AtomicU32::new(success_threshold),
            reset_timeout_ns: AtomicU64::new(saturating_nanos(self.reset_timeout)),
            throw_on_trip: AtomicBool::new(self.throw_on_trip),
            default_policy: AtomicBool::new(policy.is_default()),
            policy: ArcSwap::from_pointee(policy),
            listeners: Listeners::new(self.listeners),
            excluding: AtomicBool::new(excluding),
            exclusions: ArcSwap::from_pointee(self.exclusions),
            edits: Mutex::new(()),
            key: self.key,
        });
        shared.backend.bind(Binding {
            name: shared.storage_name(),
            breaker: Arc::downgrade(&shared),
            clock: shared.clock.clone(),
        });
        Ok(CircuitBreaker::from_shared(shared))
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
