//! Where a breaker gets the time: the system clock, or a manual one in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time, as a [`Duration`] since the Unix epoch.
///
/// A breaker reads the clock only off its hot path: to decide whether an open
/// circuit's reset timeout has passed and to stamp `opened_at`. Inject a
/// [`ManualClock`] to test timeouts without sleeping.
///
/// Implementations should never go backwards; a clock that does only delays
/// the next trial.
pub trait Clock: Send + Sync + 'static {
    /// The current time since the Unix epoch.
    fn now(&self) -> Duration;
}

/// The default clock: wall-clock time sampled once, then advanced by the
/// monotonic [`Instant`], so it never jumps when the system time is changed.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    base: Duration,
    start: Instant,
}

impl SystemClock {
    /// A clock anchored to the system time now.
    pub fn new() -> Self {
        SystemClock {
            base: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO),
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.base + self.start.elapsed()
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use breaker_core::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now() - t0, Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at 2001-09-09 01:46:40 UTC (10^9 seconds after the
    /// epoch), a round, recognisable start.
    pub fn new() -> Self {
        Self::starting_at(Duration::from_secs(1_000_000_000))
    }

    /// A clock standing at `since_epoch`.
    pub fn starting_at(since_epoch: Duration) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(as_nanos(since_epoch))),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(as_nanos(by), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

fn as_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}
