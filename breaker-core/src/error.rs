//! The errors a guarded call returns, and the breaker's own errors.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::name::Name;
use crate::state::{Reason, State, MAX_FAIL_MAX, MAX_HALF_OPEN_CALLS, MAX_SUCCESS_THRESHOLD};

/// `Option<Duration>` in 8 bytes (nanoseconds plus one, saturating), so a
/// rejected call's `Result` stays small.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PackedDuration(Option<std::num::NonZeroU64>);

impl PackedDuration {
    fn new(d: Option<Duration>) -> Self {
        PackedDuration(d.and_then(|d| {
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1);
            std::num::NonZeroU64::new(nanos.saturating_add(1))
        }))
    }

    fn get(self) -> Option<Duration> {
        self.0.map(|n| Duration::from_nanos(n.get() - 1))
    }
}

/// Why a breaker refused a call or opened: which breaker, in what state, why,
/// and when the next trial may run.
///
/// ```
/// use breaker::{CircuitBreaker, State};
///
/// let cb = CircuitBreaker::new("payments");
/// cb.open();
/// let err = cb.call(|| Ok::<_, std::io::Error>(())).unwrap_err();
/// let cbe = err.breaker_error().unwrap();
/// assert_eq!(cbe.name(), "payments");
/// assert_eq!(cbe.state(), State::Open);
/// assert!(cbe.to_string().starts_with("circuit breaker 'payments' is open: timeout not elapsed yet"));
/// ```
#[derive(Clone)]
pub struct CircuitBreakerError {
    name: Name,
    state: State,
    reason: Reason,
    retry_after: PackedDuration,
}

impl CircuitBreakerError {
    pub(crate) fn new(
        name: Name,
        state: State,
        reason: Reason,
        retry_after: Option<Duration>,
    ) -> Self {
        CircuitBreakerError {
            name,
            state,
            reason,
            retry_after: PackedDuration::new(retry_after),
        }
    }

    /// With `retry_after` in nanoseconds (the rejection fast path).
    #[inline]
    pub(crate) fn with_retry_nanos(name: Name, state: State, reason: Reason, nanos: u64) -> Self {
        CircuitBreakerError {
            name,
            state,
            reason,
            retry_after: PackedDuration(std::num::NonZeroU64::new(nanos.saturating_add(1))),
        }
    }

    /// The breaker's name.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::new("payments");
    /// cb.open();
    /// let err = cb.call(|| Ok::<_, &str>(())).unwrap_err();
    /// assert_eq!(err.breaker_error().unwrap().name(), "payments");
    /// ```
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The breaker's state when this error was made.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Error, State};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// cb.half_open();
    /// let _ = cb.call(|| {
    ///     // While the trial runs, other calls are rejected in half-open.
    ///     let err = cb.call(|| Ok::<_, &str>(())).unwrap_err();
    ///     assert_eq!(err.breaker_error().unwrap().state(), State::HalfOpen);
    ///     Ok::<_, Error<&str>>(())
    /// });
    /// ```
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the call was refused or the circuit opened.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, Error, Reason};
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(1).build();
    /// let Err(Error::Tripped(e, _)) = cb.call(|| Err::<(), _>("refused")) else { unreachable!() };
    /// assert_eq!(e.reason(), Reason::FailureThreshold);
    /// let Err(Error::Open(e)) = cb.call(|| Ok::<_, &str>(())) else { unreachable!() };
    /// assert_eq!(e.reason(), Reason::TimeoutNotElapsed);
    /// ```
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// Time until the next trial call may run, when the circuit is open.
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, CircuitBreaker};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("db").clock(clock.clone()).build(); // 60 s
    /// cb.open();
    /// clock.advance(Duration::from_secs(20));
    /// let err = cb.call(|| Ok::<_, &str>(())).unwrap_err();
    /// assert_eq!(err.breaker_error().unwrap().retry_after(), Some(Duration::from_secs(40)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after.get()
    }
}

impl fmt::Display for CircuitBreakerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker '{}' is {}: {}",
            self.name(),
            self.state,
            self.reason
        )?;
        if let Some(after) = self.retry_after() {
            write!(f, ", next trial in {:?}", crate::state::ceil_millis(after))?;
        }
        Ok(())
    }
}

impl fmt::Debug for CircuitBreakerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerError")
            .field("name", &self.name())
            .field("state", &self.state)
            .field("reason", &self.reason)
            .field("retry_after", &self.retry_after())
            .finish()
    }
}

impl PartialEq for CircuitBreakerError {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
            && self.state == other.state
            && self.reason == other.reason
            && self.retry_after == other.retry_after
    }
}

impl Eq for CircuitBreakerError {}

impl StdError for CircuitBreakerError {}

/// The result of a call through a breaker that did not succeed.
///
/// ```
/// use breaker::{CircuitBreaker, Error};
///
/// let cb = CircuitBreaker::builder("db").fail_max(2).build();
/// let first = cb.call(|| Err::<(), _>("timeout"));
/// assert!(matches!(first, Err(Error::Inner("timeout"))));
/// let second = cb.call(|| Err::<(), _>("timeout"));
/// assert!(matches!(second, Err(Error::Tripped(_, "timeout"))));
/// let third = cb.call(|| Ok::<_, &str>(()));
/// assert!(third.unwrap_err().is_open());
/// ```
pub enum Error<E> {
    /// The call did not run: the circuit is open, or half-open with its trial
    /// place taken.
    Open(CircuitBreakerError),
    /// The call ran, failed, and this failure opened the circuit (returned
    /// only while `throw_new_error_on_trip` is on).
    Tripped(CircuitBreakerError, E),
    /// The call ran and failed (or failed with an excluded error); the error
    /// as it returned it.
    Inner(E),
}

impl<E> Error<E> {
    /// The guarded function's error, if it ran.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::new("db");
    /// let err = cb.call(|| Err::<(), _>("refused")).unwrap_err();
    /// assert_eq!(err.into_inner(), Some("refused"));
    /// cb.open();
    /// let err = cb.call(|| Err::<(), _>("refused")).unwrap_err();
    /// assert_eq!(err.into_inner(), None); // it did not run
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Open(_) => None,
            Error::Tripped(_, e) | Error::Inner(e) => Some(e),
        }
    }

    /// A reference to the guarded function's error, if it ran.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::new("db");
    /// let err = cb.call(|| Err::<(), _>(String::from("refused"))).unwrap_err();
    /// assert_eq!(err.inner().map(String::as_str), Some("refused"));
    /// ```
    pub fn inner(&self) -> Option<&E> {
        match self {
            Error::Open(_) => None,
            Error::Tripped(_, e) | Error::Inner(e) => Some(e),
        }
    }

    /// True when the call was rejected without running.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::new("db");
    /// assert!(!cb.call(|| Err::<(), _>("refused")).unwrap_err().is_open());
    /// cb.open();
    /// assert!(cb.call(|| Err::<(), _>("refused")).unwrap_err().is_open());
    /// ```
    pub fn is_open(&self) -> bool {
        matches!(self, Error::Open(_))
    }

    /// True when this call's failure opened the circuit.
    ///
    /// # Example
    /// ```
    /// let cb = breaker::CircuitBreaker::builder("db").fail_max(2).build();
    /// assert!(!cb.call(|| Err::<(), _>("refused")).unwrap_err().is_tripped());
    /// assert!(cb.call(|| Err::<(), _>("refused")).unwrap_err().is_tripped());
    /// ```
    pub fn is_tripped(&self) -> bool {
        matches!(self, Error::Tripped(..))
    }

    /// The breaker's error, for `Open` and `Tripped`.
    ///
    /// # Example
    /// ```
    /// use breaker::State;
    ///
    /// let cb = breaker::CircuitBreaker::builder("db").fail_max(2).build();
    /// let inner = cb.call(|| Err::<(), _>("refused")).unwrap_err();
    /// assert!(inner.breaker_error().is_none());
    /// let tripped = cb.call(|| Err::<(), _>("refused")).unwrap_err();
    /// assert_eq!(tripped.breaker_error().unwrap().state(), State::Open);
    /// ```
    pub fn breaker_error(&self) -> Option<&CircuitBreakerError> {
        match self {
            Error::Open(e) | Error::Tripped(e, _) => Some(e),
            Error::Inner(_) => None,
        }
    }

    /// Maps the inner error, keeping the variant.
    ///
    /// # Example
    /// ```
    /// use breaker::Error;
    ///
    /// let cb = breaker::CircuitBreaker::new("db");
    /// let err = cb.call(|| "x".parse::<u32>()).unwrap_err();
    /// let err: Error<String> = err.map_inner(|e| e.to_string());
    /// assert!(matches!(err, Error::Inner(ref m) if m == "invalid digit found in string"));
    /// ```
    pub fn map_inner<F, O: FnOnce(E) -> F>(self, op: O) -> Error<F> {
        match self {
            Error::Open(e) => Error::Open(e),
            Error::Tripped(b, e) => Error::Tripped(b, op(e)),
            Error::Inner(e) => Error::Inner(op(e)),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(b) => f.debug_tuple("Open").field(b).finish(),
            Error::Tripped(b, e) => f.debug_tuple("Tripped").field(b).field(e).finish(),
            Error::Inner(e) => f.debug_tuple("Inner").field(e).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(b) => b.fmt(f),
            Error::Tripped(b, e) => write!(f, "{b} (after: {e})"),
            Error::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: StdError + 'static> StdError for Error<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Open(_) => None,
            Error::Tripped(_, e) => Some(e),
            // Transparent: `Inner` displays as its error, so its source is the
            // error's own source (listing `e` here would print it twice).
            Error::Inner(e) => e.source(),
        }
    }
}

impl<E> From<CircuitBreakerError> for Error<E> {
    fn from(e: CircuitBreakerError) -> Self {
        Error::Open(e)
    }
}

/// A setting a breaker cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `registry::configure` (feature `serde`) was given a name the
    /// registry does not have.
    #[error("no circuit breaker named '{name}' to configure (registered: {known})")]
    UnknownBreaker {
        /// The name given.
        name: String,
        /// The names the registry has, comma-separated.
        known: String,
    },
    /// Settings for one breaker with values out of range: every one of them.
    #[error("settings of breaker '{breaker}': {}", join_errors(.errors))]
    Settings {
        /// The breaker's name.
        breaker: String,
        /// Each value out of range.
        errors: Vec<ConfigError>,
    },
    /// `fail_max` out of range.
    #[error("fail_max must be between 1 and {max}, got {value}", max = MAX_FAIL_MAX)]
    FailMax {
        /// The value given.
        value: u32,
    },
    /// `success_threshold` out of range.
    #[error("success_threshold must be between 1 and {max}, got {value}", max = MAX_SUCCESS_THRESHOLD)]
    SuccessThreshold {
        /// The value given.
        value: u32,
    },
    /// `half_open_calls` out of range.
    #[error("half_open_calls must be between 1 and {max}, got {value}", max = MAX_HALF_OPEN_CALLS)]
    HalfOpenCalls {
        /// The value given.
        value: u32,
    },
    /// A backoff factor below 1, or not a number.
    #[error("backoff factor must be a finite number of at least 1, got {value}")]
    BackoffFactor {
        /// The value given.
        value: Number,
    },
    /// A backoff's `max` below the reset timeout.
    #[error("backoff max must be at least reset_timeout ({reset_timeout:?}), got {max:?}")]
    BackoffMax {
        /// The cap given.
        max: Duration,
        /// The reset timeout it is below.
        reset_timeout: Duration,
    },
    /// A jitter outside `[0, 1)`, or not a number.
    #[error("jitter must be at least 0 and below 1, got {value}")]
    Jitter {
        /// The value given.
        value: Number,
    },
    /// A failure rate outside `(0, 1]`, or not a number.
    #[error("failure_rate must be above 0 and at most 1, got {value}")]
    FailureRate {
        /// The value given.
        value: Number,
    },
    /// A count window of 0 calls, or of more than the largest (32,768).
    #[error("window_calls must be between 1 and {max}, got {value}", max = crate::window::Window::MAX_CALLS)]
    WindowCalls {
        /// The value given.
        value: u32,
    },
    /// A time window shorter than 10 ms (10 buckets of at least 1 ms).
    #[error("window_time must be at least 10ms, got {value:?}")]
    WindowTime {
        /// The value given.
        value: Duration,
    },
    /// `min_calls` of 0.
    #[error("min_calls must be at least 1, got {value}")]
    MinCalls {
        /// The value given.
        value: u32,
    },
    /// A zero slow-call duration (every call would be slow).
    #[error("slow_call_duration must be above zero, got {value:?}")]
    SlowCallDuration {
        /// The duration given.
        value: Duration,
    },
    /// A slow-call rate outside `(0, 1]`, or not a number.
    #[error("slow_call_rate must be above 0 and at most 1, got {value}")]
    SlowCallRate {
        /// The value given.
        value: Number,
    },
    /// A slow-call rate on a breaker without a slow-call duration: no call
    /// would ever be slow (and the rate turns the consecutive condition
    /// off).
    #[error("slow_call_rate needs a slow_call_duration to say which calls are slow")]
    SlowCallRateWithoutDuration,
    /// The storage cannot apply this setting (yet); the breaker would
    /// otherwise silently ignore it.
    #[error("{storage} cannot apply {setting}: only the default trip policy")]
    Unsupported {
        /// The storage, as its type is named.
        storage: &'static str,
        /// The setting it cannot apply.
        setting: &'static str,
    },
}

/// A number a [`ConfigError`] reports, compared bit for bit (so that the
/// error stays `Eq`, and a NaN equals itself); it prints as the number.
///
/// ```
/// use breaker::{Backoff, CircuitBreaker, ConfigError, Number};
/// use std::time::Duration;
///
/// let err = CircuitBreaker::builder("db")
///     .backoff(Backoff::exponential(0.5, Duration::from_secs(600)))
///     .try_build()
///     .unwrap_err();
/// assert_eq!(err, ConfigError::BackoffFactor { value: Number::from(0.5) });
/// assert_eq!(err.to_string(), "backoff factor must be a finite number of at least 1, got 0.5");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Number(f64);

impl Number {
    /// The number.
    ///
    /// ```
    /// assert_eq!(breaker::Number::from(0.25).get(), 0.25);
    /// ```
    pub const fn get(self) -> f64 {
        self.0
    }
}

impl From<f64> for Number {
    fn from(value: f64) -> Self {
        Number(value)
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Number {}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

fn join_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
