//! Nothing a caller's code does can wedge a breaker: a panic while a call's
//! result is being recorded (an exclusion predicate, a `source()`, the
//! clock), an admission dropped while a remote storage applies it, and the
//! edges of time and generations.

mod common;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use breaker::clock::{Clock, ManualClock};
use breaker::storage::{Applied, ApplyFuture, Storage};
use breaker::storage::{Limits, Op, Snapshot};
use breaker::{CircuitBreaker, Error, Reason, State};
use common::breakers::MINUTE;
use common::LockedStorage;

#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused")
    }
}

impl StdError for Refused {}

fn half_open(name: &'static str) -> (CircuitBreaker, ManualClock) {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder(name)
        .fail_max(1)
        .clock(clock.clone())
        .build();
    cb.half_open();
    (cb, clock)
}

/// The breaker is not wedged: the trial failed, so it is open, and once the
/// reset timeout has passed the next call runs as its trial and closes it.
fn assert_trial_ended_as_a_failure(cb: &CircuitBreaker, clock: &ManualClock) {
    assert_eq!(cb.current_state(), State::Open);
    clock.advance(MINUTE);
    assert_eq!(cb.call(|| Ok::<_, Refused>(7)).unwrap(), 7);
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn a_panicking_exclusion_predicate_ends_the_trial_as_a_failure() {
    let (cb, clock) = half_open("wedge-predicate");
    cb.add_excluded_if(|_: &Refused| panic!("predicate bug"));
    let outcome = catch_unwind(AssertUnwindSafe(|| cb.call(|| Err::<(), _>(Refused))));
    assert!(outcome.is_err(), "the predicate's panic continues");
    assert_trial_ended_as_a_failure(&cb, &clock);
}

#[test]
fn a_panicking_exclusion_predicate_is_a_failure_in_closed() {
    let cb = CircuitBreaker::builder("wedge-predicate-closed")
        .fail_max(3)
        .exclude_if(|_: &Refused| panic!("predicate bug"))
        .build();
    let outcome = catch_unwind(AssertUnwindSafe(|| cb.call(|| Err::<(), _>(Refused))));
    assert!(outcome.is_err());
    assert_eq!(cb.fail_counter(), 1);
}

#[test]
fn a_panicking_exclusion_predicate_ends_an_async_trial_as_a_failure() {
    let (cb, clock) = half_open("wedge-predicate-async");
    cb.add_excluded_if(|_: &Refused| panic!("predicate bug"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(cb.call_async(async { Err::<(), _>(Refused) }))
    }));
    assert!(outcome.is_err());
    assert_trial_ended_as_a_failure(&cb, &clock);
}

/// An error whose `source()` panics.
#[derive(Debug)]
struct BadSource;

impl fmt::Display for BadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bad source")
    }
}

impl StdError for BadSource {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        panic!("source() bug")
    }
}

#[test]
fn a_source_that_panics_while_an_exclusion_walks_the_chain_ends_the_trial() {
    let (cb, clock) = half_open("wedge-source");
    cb.add_excluded::<Refused>();
    fn view(e: &BadSource) -> Option<&(dyn StdError + 'static)> {
        Some(e)
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        cb.call_with_view(|| Err::<(), _>(BadSource), view)
    }));
    assert!(outcome.is_err());
    assert_trial_ended_as_a_failure(&cb, &clock);
}

/// A manual clock that panics while `broken` is set.
#[derive(Clone)]
struct Flaky {
    time: ManualClock,
    broken: Arc<AtomicBool>,
}

impl Clock for Flaky {
    fn now(&self) -> Duration {
        if self.broken.load(Ordering::SeqCst) {
            panic!("clock bug");
        }
        self.time.now()
    }
}

#[test]
fn a_clock_that_panics_when_a_failing_trial_needs_the_time_does_not_wedge_it() {
    let flaky = Flaky {
        time: ManualClock::new(),
        broken: Arc::new(AtomicBool::new(false)),
    };
    for storage in ["memory", "locked"] {
        let builder = CircuitBreaker::builder("wedge-clock")
            .fail_max(1)
            .clock(flaky.clone());
        let cb = match storage {
            "memory" => builder.build(),
            _ => builder.storage(LockedStorage::default()).build(),
        };
        cb.half_open();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            cb.call(|| {
                flaky.broken.store(true, Ordering::SeqCst);
                Err::<(), _>(Refused)
            })
        }));
        assert!(outcome.is_err(), "{storage}: the clock's panic continues");
        flaky.broken.store(false, Ordering::SeqCst);
        // The failure was recorded (as of long ago, the time being unknown):
        // open, and the next call is its trial at once.
        assert_eq!(cb.current_state(), State::Open, "{storage}");
        assert_eq!(cb.fail_counter(), 1, "{storage}");
        assert_eq!(cb.call(|| Ok::<_, Refused>(1)).unwrap(), 1, "{storage}");
        assert_eq!(cb.current_state(), State::Closed, "{storage}");
    }
}

/// A storage whose answers arrive only when the test lets them: `apply_async`
/// applies the operation at once (so it takes effect even if dropped) but
/// its future stays pending until `release`.
#[derive(Default)]
struct Delayed {
    inner: LockedStorage,
    released: Arc<AtomicBool>,
    wakers: Arc<Mutex<Vec<Waker>>>,
    pending: Arc<AtomicUsize>,
}

impl Delayed {
    /// Answers every pending operation, waking their waiters while it
    /// holds the lock their polls take (a waker must not poll in place).
    fn release(&self) {
        let mut wakers = self.wakers.lock().unwrap();
        self.released.store(true, Ordering::SeqCst);
        for waker in wakers.drain(..) {
            waker.wake();
        }
    }
}

struct Answer {
    applied: Applied,
    released: Arc<AtomicBool>,
    wakers: Arc<Mutex<Vec<Waker>>>,
}

impl Future for Answer {
    type Output = Applied;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Applied> {
        // As the Redis storage's hand-off does: the answer is looked at
        // under the lock its deliverer holds while it wakes the waiter.
        let mut wakers = self.wakers.lock().unwrap();
        if self.released.load(Ordering::SeqCst) {
            return Poll::Ready(self.applied);
        }
        wakers.push(cx.waker().clone());
        Poll::Pending
    }
}

impl Storage for Delayed {
    fn load(&self) -> Snapshot {
        self.inner.load()
    }
    fn apply(&self, op: Op, limits: &Limits) -> Applied {
        self.inner.apply(op, limits)
    }
    fn apply_async(&self, op: Op, limits: Limits) -> ApplyFuture<'_> {
        self.pending.fetch_add(1, Ordering::SeqCst);
        Box::pin(Answer {
            applied: self.inner.apply(op, &limits),
            released: Arc::clone(&self.released),
            wakers: Arc::clone(&self.wakers),
        })
    }
}

#[test]
fn a_call_async_dropped_while_admitted_as_the_trial_frees_the_place() {
    let delayed = Arc::new(Delayed::default());
    let cb = CircuitBreaker::builder("wedge-admission")
        .storage(Arc::clone(&delayed))
        .build();
    cb.half_open();
    {
        let mut call = Box::pin(cb.call_async(async { Ok::<_, Refused>(1) }));
        let waker = Waker::noop();
        let polled = call.as_mut().poll(&mut Context::from_waker(waker));
        assert!(polled.is_pending(), "admission waits for the storage");
        assert_eq!(delayed.pending.load(Ordering::SeqCst), 1);
        // Dropped while admitting (a timeout around it, say): the storage
        // has taken the trial place for it all the same.
    }
    assert!(cb.snapshot().trial);
    delayed.release();
    // The breaker finishes the admission (on a thread of its own) and gives
    // the place back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cb.snapshot().trial {
        assert!(Instant::now() < deadline, "the trial place was never freed");
        std::thread::yield_now();
    }
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.call(|| Ok::<_, Refused>(2)).unwrap(), 2);
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn a_manual_clock_saturates_instead_of_wrapping() {
    let clock = ManualClock::new();
    let before = clock.now();
    clock.advance(Duration::MAX);
    assert!(clock.now() > before);
    assert_eq!(clock.now(), Duration::from_nanos(u64::MAX));
    clock.advance(Duration::from_secs(570 * 365 * 86_400));
    assert_eq!(clock.now(), Duration::from_nanos(u64::MAX));
}

#[test]
fn reset_timeout_holds_at_any_time_a_clock_can_show() {
    // 2200, 2500, and two minutes before the last instant a clock can show
    // (`u64::MAX` nanoseconds after the epoch, in 2554).
    for since_epoch in [
        Duration::from_secs(7_258_118_400),
        Duration::from_secs(16_725_225_600),
        Duration::from_millis(u64::MAX / 1_000_000 - 120_000),
    ] {
        let clock = ManualClock::starting_at(since_epoch);
        let cb = CircuitBreaker::builder("wedge-far-future")
            .fail_max(1)
            .clock(clock.clone())
            .build();
        assert!(cb.call(|| Err::<(), _>(Refused)).unwrap_err().is_tripped());
        clock.advance(Duration::from_secs(59));
        let rejected = cb.call(|| Ok::<_, Refused>(())).unwrap_err();
        let Error::Open(e) = rejected else {
            panic!("expected a rejection at {since_epoch:?}, got {rejected:?}")
        };
        assert_eq!(e.reason(), Reason::TimeoutNotElapsed);
        clock.advance(Duration::from_secs(1));
        assert!(cb.call(|| Ok::<_, Refused>(())).is_ok(), "{since_epoch:?}");
    }
}

#[test]
fn a_huge_reset_timeout_never_overflows() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("wedge-huge-timeout")
        .fail_max(1)
        .reset_timeout(Duration::MAX)
        .clock(clock.clone())
        .build();
    let _ = cb.call(|| Err::<(), _>(Refused));
    clock.advance(Duration::from_secs(1_000_000_000));
    assert!(cb.call(|| Ok::<_, Refused>(())).unwrap_err().is_open());
    assert!(cb.retry_after().is_some());
}
