//! The behaviour every storage must show, written once and run over each
//! storage (as pybreaker's suite runs over its memory and Redis storages).
//!
//! A [`Fixture`] builds breakers on one storage and lets time pass on their
//! clock: a `ManualClock` for the memory storage, real time (the Redis
//! server's clock) with a short reset timeout for Redis.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::{
    CircuitBreaker, CircuitBreakerBuilder as Builder, Error, Listener, MemoryStorage, Reason, State,
};

/// One storage under test.
pub trait Fixture: Sync {
    /// Builds the breaker on this fixture's storage (and clock).
    fn build(&self, builder: Builder) -> CircuitBreaker;
    /// Lets `d` pass on the breakers' clock.
    fn elapse(&self, d: Duration);
    /// The reset timeout the tests use.
    fn reset_timeout(&self) -> Duration;
    /// The time on the breakers' clock.
    fn now(&self) -> Duration;
    /// How far times reported in the breakers' clock may be off (a remote
    /// storage translates the server's clock into it).
    fn tolerance(&self) -> Duration {
        Duration::ZERO
    }
    /// Waits until work in the background (remote notifications) is done.
    fn settle(&self) {}
}

/// The memory storage, with a manual clock.
pub struct Memory {
    clock: ManualClock,
}

impl Memory {
    pub fn new() -> Self {
        Memory {
            clock: ManualClock::new(),
        }
    }
}

impl Fixture for Memory {
    fn build(&self, builder: Builder) -> CircuitBreaker {
        builder
            .storage(MemoryStorage::new())
            .clock(self.clock.clone())
            .build()
    }
    fn elapse(&self, d: Duration) {
        self.clock.advance(d);
    }
    fn reset_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn now(&self) -> Duration {
        breaker::clock::Clock::now(&self.clock)
    }
}

/// Instantiates every behaviour test for one fixture.
#[macro_export]
macro_rules! behaviour_suite {
    ($fixture:expr) => {
        $crate::behaviour_suite!(@tests $fixture;
            trips_at_fail_max_and_rejects_without_running,
            a_success_resets_the_failure_counter,
            a_trial_success_closes_the_circuit,
            a_trial_failure_opens_it_again,
            several_trial_successes_may_be_needed,
            excluded_errors_count_as_successes,
            a_panic_is_a_failure,
            manual_transitions,
            listeners_hear_each_transition_once,
            a_result_admitted_before_a_manual_transition_is_ignored,
            concurrent_failures_trip_once_and_stop_at_fail_max,
            half_open_admits_one_trial_at_a_time,
            a_cancelled_async_trial_frees_its_place,
            async_calls_need_no_particular_executor,
            opened_at_and_retry_after,
        );
    };
    (@tests $fixture:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let Some(fixture) = $fixture else { return };
                $crate::suite::$test(&fixture);
            }
        )*
    };
}

fn fail(cb: &CircuitBreaker) -> Result<u32, Error<&'static str>> {
    cb.call(|| Err("boom"))
}

fn succeed(cb: &CircuitBreaker) -> Result<u32, Error<&'static str>> {
    cb.call(|| Ok(7))
}

fn builder(name: &str, f: &impl Fixture) -> Builder {
    CircuitBreaker::builder(name.to_owned()).reset_timeout(f.reset_timeout())
}

/// Fails until the circuit opens.
fn trip(cb: &CircuitBreaker) {
    for _ in 1..cb.fail_max() - cb.fail_counter() {
        assert!(matches!(fail(cb), Err(Error::Inner("boom"))));
    }
    assert!(matches!(fail(cb), Err(Error::Tripped(_, "boom"))));
    assert_eq!(cb.current_state(), State::Open);
}

fn rejected_because(r: Result<u32, Error<&'static str>>) -> Reason {
    match r {
        Err(Error::Open(e)) => e.reason(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Records state changes.
#[derive(Default)]
pub struct Changes(pub Mutex<Vec<(State, State)>>);

impl Listener for Changes {
    fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
        self.0.lock().unwrap().push((old, new));
    }
}

impl Changes {
    pub fn seen(&self) -> Vec<(State, State)> {
        self.0.lock().unwrap().clone()
    }
}

pub fn trips_at_fail_max_and_rejects_without_running(f: &impl Fixture) {
    let cb = f.build(builder("trips", f).fail_max(3));
    assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 2));
    let tripped = fail(&cb);
    assert!(
        matches!(&tripped, Err(Error::Tripped(e, "boom")) if e.reason() == Reason::FailureThreshold),
        "{tripped:?}"
    );
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Open, 3));
    let ran = AtomicUsize::new(0);
    let r = cb.call(|| {
        ran.fetch_add(1, Ordering::Relaxed);
        Ok::<u32, &str>(1)
    });
    assert_eq!(rejected_because(r), Reason::TimeoutNotElapsed);
    assert_eq!(ran.load(Ordering::Relaxed), 0);
    assert_eq!(cb.fail_counter(), 3);
}

pub fn a_success_resets_the_failure_counter(f: &impl Fixture) {
    let cb = f.build(builder("resets", f).fail_max(3));
    let _ = fail(&cb);
    let _ = fail(&cb);
    assert_eq!(succeed(&cb).unwrap(), 7);
    assert_eq!(cb.fail_counter(), 0);
    let _ = fail(&cb);
    let _ = fail(&cb);
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 2));
}

pub fn a_trial_success_closes_the_circuit(f: &impl Fixture) {
    let cb = f.build(builder("closes", f).fail_max(2));
    trip(&cb);
    f.elapse(f.reset_timeout());
    assert_eq!(succeed(&cb).unwrap(), 7);
    let snap = cb.snapshot();
    assert_eq!(
        (snap.state, snap.fail_counter, snap.success_counter),
        (State::Closed, 0, 0)
    );
    assert_eq!(cb.opened_at(), None);
}

pub fn a_trial_failure_opens_it_again(f: &impl Fixture) {
    let cb = f.build(builder("reopens", f).fail_max(2));
    trip(&cb);
    f.elapse(f.reset_timeout());
    let r = fail(&cb);
    assert!(
        matches!(&r, Err(Error::Tripped(e, "boom")) if e.reason() == Reason::TrialFailed),
        "{r:?}"
    );
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Open, 3));
    assert_eq!(rejected_because(succeed(&cb)), Reason::TimeoutNotElapsed);
}

pub fn several_trial_successes_may_be_needed(f: &impl Fixture) {
    let cb = f.build(builder("threshold", f).fail_max(1).success_threshold(2));
    trip(&cb);
    f.elapse(f.reset_timeout());
    assert_eq!(succeed(&cb).unwrap(), 7);
    assert_eq!(
        (cb.current_state(), cb.success_counter()),
        (State::HalfOpen, 1)
    );
    assert_eq!(succeed(&cb).unwrap(), 7);
    assert_eq!(
        (cb.current_state(), cb.success_counter()),
        (State::Closed, 0)
    );
}

#[derive(Debug, thiserror::Error)]
#[error("invalid input")]
struct Invalid;

pub fn excluded_errors_count_as_successes(f: &impl Fixture) {
    let cb = f.build(builder("excluded", f).fail_max(2).exclude::<Invalid>());
    let _ = fail(&cb);
    assert_eq!(cb.fail_counter(), 1);
    let r = cb.call(|| Err::<(), _>(Invalid));
    assert!(matches!(r, Err(Error::Inner(Invalid))));
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
}

pub fn a_panic_is_a_failure(f: &impl Fixture) {
    let cb = f.build(builder("panics", f).fail_max(1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cb.call(|| -> Result<(), &str> { panic!("kaboom") })
    }));
    assert!(r.is_err());
    assert_eq!(cb.current_state(), State::Open);
}

pub fn manual_transitions(f: &impl Fixture) {
    let cb = f.build(builder("manual", f).fail_max(3));
    cb.open();
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(rejected_because(succeed(&cb)), Reason::TimeoutNotElapsed);
    cb.half_open();
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(succeed(&cb).unwrap(), 7); // the trial
    assert_eq!(cb.current_state(), State::Closed);
    let _ = fail(&cb);
    let _ = fail(&cb);
    cb.close();
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
    trip(&cb);
    cb.reset();
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
}

pub fn listeners_hear_each_transition_once(f: &impl Fixture) {
    let changes = Arc::new(Changes::default());
    let cb = f.build(
        builder("listened", f)
            .fail_max(2)
            .listener_arc(changes.clone()),
    );
    trip(&cb);
    f.elapse(f.reset_timeout());
    assert_eq!(succeed(&cb).unwrap(), 7);
    cb.open();
    cb.reset();
    f.settle();
    use State::*;
    assert_eq!(
        changes.seen(),
        [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed),
            (Closed, Open),
            (Open, Closed)
        ]
    );
}

pub fn a_result_admitted_before_a_manual_transition_is_ignored(f: &impl Fixture) {
    let cb = f.build(builder("stale", f).fail_max(1));
    let r = cb.call(|| {
        cb.reset();
        Err::<(), _>("boom")
    });
    assert!(matches!(r, Err(Error::Inner("boom"))));
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
}

pub fn concurrent_failures_trip_once_and_stop_at_fail_max(f: &impl Fixture) {
    const THREADS: usize = 6;
    const CALLS: usize = 15;
    let cb = f.build(builder("racing", f).fail_max(20));
    let tripped = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..CALLS {
                    if let Err(Error::Tripped(..)) = fail(&cb) {
                        tripped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(tripped.load(Ordering::Relaxed), 1);
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Open, 20));
}

pub fn half_open_admits_one_trial_at_a_time(f: &impl Fixture) {
    let cb = f.build(builder("one-trial", f).fail_max(1));
    trip(&cb);
    f.elapse(f.reset_timeout());
    let inside = Barrier::new(2);
    let release = Barrier::new(2);
    thread::scope(|s| {
        let trial = s.spawn(|| {
            cb.call(|| {
                inside.wait();
                release.wait();
                Ok::<u32, &str>(1)
            })
        });
        inside.wait();
        for _ in 0..5 {
            assert_eq!(rejected_because(succeed(&cb)), Reason::TrialInProgress);
        }
        release.wait();
        assert_eq!(trial.join().unwrap().unwrap(), 1);
    });
    assert_eq!(cb.current_state(), State::Closed);
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

pub fn a_cancelled_async_trial_frees_its_place(f: &impl Fixture) {
    let cb = f.build(builder("cancelled", f).fail_max(1));
    trip(&cb);
    f.elapse(f.reset_timeout());
    {
        let never = cb.call_async(std::future::pending::<Result<u32, &str>>());
        let mut never = pin!(never);
        // Admission may take a round trip on a remote storage.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cb.current_state() != State::HalfOpen || !cb.snapshot().trial {
            assert!(poll_once(never.as_mut()).is_pending());
            assert!(
                std::time::Instant::now() < deadline,
                "the trial was not admitted"
            );
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(rejected_because(succeed(&cb)), Reason::TrialInProgress);
    } // dropped: cancelled

    // A remote storage may still be answering the admission when the call is
    // dropped: the breaker finishes it and frees the place a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let admitted = loop {
        match succeed(&cb) {
            Err(e) if e.is_open() && std::time::Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            other => break other,
        }
    };
    assert_eq!(admitted.unwrap(), 7);
    assert_eq!(cb.current_state(), State::Closed);
}

/// A minimal executor: no runtime, the thread parks until woken.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        thread::park();
    }
}

pub fn async_calls_need_no_particular_executor(f: &impl Fixture) {
    let cb = f.build(builder("async", f).fail_max(2));
    let r = block_on(cb.call_async(async { Err::<u32, _>("boom") }));
    assert!(matches!(r, Err(Error::Inner("boom"))));
    assert_eq!(cb.fail_counter(), 1);
    let r = block_on(cb.call_async(async { Err::<u32, _>("boom") }));
    assert!(matches!(r, Err(Error::Tripped(_, "boom"))));
    let r = block_on(cb.call_async(async { Ok::<u32, &str>(1) }));
    assert_eq!(rejected_because(r), Reason::TimeoutNotElapsed);
    f.elapse(f.reset_timeout());
    let r = block_on(cb.call_async(async { Ok::<u32, &str>(5) }));
    assert_eq!(r.unwrap(), 5);
    assert_eq!(cb.current_state(), State::Closed);
}

pub fn opened_at_and_retry_after(f: &impl Fixture) {
    let cb = f.build(builder("times", f).fail_max(1));
    assert_eq!((cb.opened_at(), cb.retry_after()), (None, None));
    trip(&cb);
    let opened = cb.opened_at().expect("open since");
    let now = std::time::UNIX_EPOCH + f.now();
    let apart = now.duration_since(opened).unwrap_or_else(|e| e.duration());
    assert!(
        apart < Duration::from_secs(1),
        "opened {apart:?} away from now"
    );
    let retry = cb.retry_after().expect("open");
    let most = f.reset_timeout() + f.tolerance();
    assert!(retry <= most && retry > Duration::ZERO, "{retry:?}");
    match succeed(&cb) {
        Err(Error::Open(e)) => {
            let r = e.retry_after().expect("known");
            assert!(r <= most, "{r:?}");
        }
        other => panic!("{other:?}"),
    }
}
