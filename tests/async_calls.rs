//! `call_async`: the same outcomes as `call`, admission at the first poll,
//! cancellation that counts as nothing and frees the trial place, panics
//! inside the future.

use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::storage::{Applied, ApplyFuture, Storage};
use breaker::storage::{Limits, Op, Snapshot};
use breaker::{CircuitBreaker, Error, Listener, Reason, State};

mod common;
use common::breakers::{breaker, MINUTE};
use common::errors::{query_view, QueryError, Validation};
use common::panics::panic_text;
use common::recorder::{new_log, take, Recorder};
use common::LockedStorage;

/// Polls `fut` once, from inside a task.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// A future that is pending once, then ready with `out`.
async fn after_a_yield<T>(out: T) -> T {
    tokio::task::yield_now().await;
    out
}

async fn succeed(cb: &CircuitBreaker) -> Result<u32, Error<&'static str>> {
    cb.call_async(after_a_yield(Ok(7))).await
}

async fn fail(cb: &CircuitBreaker) -> Result<u32, Error<&'static str>> {
    cb.call_async(after_a_yield(Err("boom"))).await
}

// ---- outcomes ----

#[tokio::test]
async fn a_success_returns_the_value_and_resets_the_fail_counter() {
    let (cb, _clock) = breaker("async-success", 3, 1);
    fail(&cb).await.unwrap_err();
    assert_eq!(cb.fail_counter(), 1);
    assert_eq!(succeed(&cb).await.unwrap(), 7);
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(cb.current_state(), State::Closed);
}

#[tokio::test]
async fn failures_count_and_the_one_at_fail_max_trips() {
    let (cb, _clock) = breaker("async-trip", 2, 1);
    assert!(matches!(fail(&cb).await, Err(Error::Inner("boom"))));
    assert_eq!(cb.fail_counter(), 1);
    match fail(&cb).await {
        Err(Error::Tripped(cbe, "boom")) => {
            assert_eq!(cbe.reason(), Reason::FailureThreshold);
            assert_eq!(cbe.state(), State::Open);
            assert_eq!(cbe.retry_after(), Some(MINUTE));
        }
        other => panic!("expected Tripped, got {other:?}"),
    }
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 2);
}

#[tokio::test]
async fn throw_new_error_on_trip_false_returns_inner() {
    let cb = CircuitBreaker::builder("async-no-throw")
        .fail_max(1)
        .throw_new_error_on_trip(false)
        .build();
    assert!(matches!(fail(&cb).await, Err(Error::Inner("boom"))));
    assert_eq!(cb.current_state(), State::Open);
}

#[tokio::test]
async fn an_open_circuit_rejects_without_polling_the_future() {
    let (cb, clock) = breaker("async-reject", 1, 1);
    fail(&cb).await.unwrap_err();
    clock.advance(Duration::from_secs(45));
    let ran = AtomicBool::new(false);
    let r = cb
        .call_async(async {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, &str>(())
        })
        .await;
    let Err(Error::Open(cbe)) = r else {
        panic!("expected Error::Open, got {r:?}");
    };
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(cbe.reason(), Reason::TimeoutNotElapsed);
    assert_eq!(cbe.retry_after(), Some(Duration::from_secs(15)));
    assert_eq!(cb.fail_counter(), 1);
}

#[tokio::test]
async fn the_trial_runs_after_the_timeout_and_closes() {
    let (cb, clock) = breaker("async-trial", 1, 1);
    fail(&cb).await.unwrap_err();
    clock.advance(MINUTE);
    let seen = cb
        .call_async(async {
            tokio::task::yield_now().await;
            // While the trial is pending, other calls are rejected.
            let nested = cb.call(|| Ok::<_, &str>(()));
            let nested_async = cb.call_async(async { Ok::<_, &str>(()) }).await;
            Ok::<_, &str>((
                cb.current_state(),
                nested.unwrap_err().breaker_error().map(|e| e.reason()),
                nested_async
                    .unwrap_err()
                    .breaker_error()
                    .map(|e| e.reason()),
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        (
            State::HalfOpen,
            Some(Reason::TrialInProgress),
            Some(Reason::TrialInProgress)
        )
    );
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
}

#[tokio::test]
async fn a_failed_trial_opens_again() {
    let (cb, clock) = breaker("async-trial-fails", 1, 1);
    fail(&cb).await.unwrap_err();
    clock.advance(MINUTE);
    let r = fail(&cb).await;
    let Err(Error::Tripped(cbe, "boom")) = r else {
        panic!("expected Tripped, got {r:?}");
    };
    assert_eq!(cbe.reason(), Reason::TrialFailed);
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 2);
}

#[tokio::test]
async fn success_threshold_counts_async_trials() {
    let (cb, clock) = breaker("async-threshold", 1, 2);
    fail(&cb).await.unwrap_err();
    clock.advance(MINUTE);
    succeed(&cb).await.unwrap();
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.success_counter(), 1);
    succeed(&cb).await.unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

#[tokio::test]
async fn an_excluded_error_is_a_success_and_returned_as_inner() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("async-excluded")
        .fail_max(2)
        .reset_timeout(MINUTE)
        .exclude::<Validation>()
        .clock(clock.clone())
        .build();
    cb.call_async(async { Err::<(), _>(QueryError(Validation)) })
        .await
        .unwrap_err();
    assert_eq!(cb.fail_counter(), 1);
    let r = cb
        .call_async_with_view(async { Err::<(), _>(QueryError(Validation)) }, query_view)
        .await;
    assert!(matches!(r, Err(Error::Inner(QueryError(Validation)))));
    assert_eq!(cb.fail_counter(), 0);

    // In half-open it is a trial success that closes.
    cb.open();
    clock.advance(MINUTE);
    let r = cb.call_async(after_a_yield(Err::<(), _>(Validation))).await;
    assert!(matches!(r, Err(Error::Inner(Validation))));
    assert_eq!(cb.current_state(), State::Closed);
}

// ---- cancellation ----

#[tokio::test]
async fn a_cancelled_trial_counts_nothing_and_frees_its_place() {
    let (cb, _clock) = breaker("async-cancel-trial", 3, 2);
    cb.call(|| Err::<(), _>("boom")).unwrap_err();
    cb.half_open();
    assert_eq!(cb.fail_counter(), 1);

    let mut trial = Box::pin(cb.call_async(pending::<Result<(), &str>>()));
    assert!(poll_once(&mut trial).await.is_pending());
    // Admitted on that poll: it holds the trial place.
    let r = cb.call(|| Ok::<_, &str>(()));
    assert_eq!(
        r.unwrap_err().breaker_error().unwrap().reason(),
        Reason::TrialInProgress
    );
    drop(trial);

    // Neither success nor failure.
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.fail_counter(), 1);
    assert_eq!(cb.success_counter(), 0);
    // The place is free: the next call is the trial.
    cb.call(|| Ok::<_, &str>(())).unwrap();
    assert_eq!(cb.success_counter(), 1);
    // And a cancelled trial after a trial success leaves that success counted.
    let mut trial = Box::pin(cb.call_async(pending::<Result<(), &str>>()));
    assert!(poll_once(&mut trial).await.is_pending());
    drop(trial);
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.success_counter(), 1);
    succeed(&cb).await.unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

/// Records, when dropped, whether its breaker's trial place was still held.
struct SeesTheTrialPlace<'a> {
    cb: &'a CircuitBreaker,
    held_while_dropped: &'a AtomicBool,
}

impl Drop for SeesTheTrialPlace<'_> {
    fn drop(&mut self) {
        let held = self.cb.snapshot().trial;
        self.held_while_dropped.store(held, Ordering::SeqCst);
    }
}

// A cancelled trial's future is dropped before its place is freed: what it
// holds for the trial (a connection, a permit) is gone before the next trial
// can be admitted. The soak found two trials at once when the place was
// freed first.
#[tokio::test]
async fn a_cancelled_trial_is_dropped_before_its_place_is_freed() {
    let (cb, _clock) = breaker("async-cancel-order", 1, 1);
    cb.half_open();
    let held_while_dropped = AtomicBool::new(false);
    let guard = SeesTheTrialPlace {
        cb: &cb,
        held_while_dropped: &held_while_dropped,
    };
    let mut trial = Box::pin(cb.call_async(async move {
        let _guard = guard;
        pending::<Result<(), &str>>().await
    }));
    assert!(poll_once(&mut trial).await.is_pending());
    drop(trial);
    assert!(held_while_dropped.load(Ordering::SeqCst));
    assert!(!cb.snapshot().trial, "the place was not freed");
}

#[tokio::test(start_paused = true)]
async fn a_trial_cancelled_by_a_timeout_frees_its_place() {
    let (cb, clock) = breaker("async-cancel-timeout", 1, 1);
    fail(&cb).await.unwrap_err();
    clock.advance(MINUTE);

    let started = std::time::Instant::now();
    let slow = cb.call_async(async {
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        Ok::<_, &str>(())
    });
    let r = tokio::time::timeout(Duration::from_secs(1), slow).await;
    assert!(r.is_err(), "the slow call must time out");
    // The paused clock jumped; no real time was spent waiting.
    assert!(started.elapsed() < Duration::from_secs(1));

    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.fail_counter(), 1);
    let again = tokio::time::timeout(Duration::from_secs(1), succeed(&cb)).await;
    assert_eq!(again.unwrap().unwrap(), 7);
    assert_eq!(cb.current_state(), State::Closed);
}

#[tokio::test]
async fn a_cancelled_call_in_closed_counts_nothing() {
    let (cb, _clock) = breaker("async-cancel-closed", 3, 1);
    fail(&cb).await.unwrap_err();
    fail(&cb).await.unwrap_err();
    for _ in 0..3 {
        let mut call = Box::pin(cb.call_async(pending::<Result<(), &str>>()));
        assert!(poll_once(&mut call).await.is_pending());
        drop(call);
    }
    // Not a success (it would reset the counter), not a failure (it would open).
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(cb.current_state(), State::Closed);
}

#[tokio::test]
async fn listeners_hear_async_calls_and_nothing_after_a_cancellation() {
    let log = new_log();
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("async-listeners")
        .fail_max(1)
        .reset_timeout(MINUTE)
        .clock(clock.clone())
        .listener(Recorder::new(&log))
        .build();
    succeed(&cb).await.unwrap();
    assert_eq!(take(&log), ["before_call", "success"]);
    fail(&cb).await.unwrap_err();
    assert_eq!(
        take(&log),
        [
            "before_call",
            "failure \"boom\"",
            "state_change closed->open"
        ]
    );
    succeed(&cb).await.unwrap_err();
    assert_eq!(take(&log), Vec::<String>::new());

    clock.advance(MINUTE);
    let mut trial = Box::pin(cb.call_async(pending::<Result<(), &str>>()));
    assert!(poll_once(&mut trial).await.is_pending());
    drop(trial);
    assert_eq!(take(&log), ["state_change open->half-open", "before_call"]);
    succeed(&cb).await.unwrap();
    assert_eq!(
        take(&log),
        ["before_call", "success", "state_change half-open->closed"]
    );
}

// ---- admission at the first poll ----

#[tokio::test]
async fn a_future_that_is_never_polled_does_nothing() {
    let log = new_log();
    let cb = CircuitBreaker::builder("async-unpolled")
        .fail_max(1)
        .listener(Recorder::new(&log))
        .build();
    cb.half_open();
    take(&log);

    let ran = AtomicBool::new(false);
    let unpolled = cb.call_async(async {
        ran.store(true, Ordering::SeqCst);
        Ok::<_, &str>(())
    });
    // It did not take the trial place: a call now is the trial.
    assert!(log.lock().unwrap().is_empty());
    cb.call(|| Ok::<_, &str>(())).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
    drop(unpolled);
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(
        take(&log),
        ["before_call", "success", "state_change half-open->closed"]
    );
    assert_eq!(cb.fail_counter(), 0);
}

#[tokio::test]
async fn admission_is_decided_when_first_polled_not_when_created() {
    let (cb, clock) = breaker("async-admit-at-poll", 1, 1);

    // Created while closed, polled while open: rejected.
    let ran = AtomicU32::new(0);
    let early = cb.call_async(async {
        ran.fetch_add(1, Ordering::SeqCst);
        Ok::<_, &str>(())
    });
    cb.open();
    assert!(early.await.unwrap_err().is_open());
    assert_eq!(ran.load(Ordering::SeqCst), 0);

    // Created while open, polled after the timeout: admitted as the trial.
    let late = cb.call_async(async {
        ran.fetch_add(1, Ordering::SeqCst);
        Ok::<_, &str>(())
    });
    clock.advance(MINUTE);
    late.await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(cb.current_state(), State::Closed);
}

// ---- panics ----

#[tokio::test]
async fn a_panic_inside_the_future_is_a_failure_and_propagates() {
    let cb = Arc::new(
        CircuitBreaker::builder("async-panic")
            .fail_max(2)
            .reset_timeout(MINUTE)
            .build(),
    );
    let task = {
        let cb = Arc::clone(&cb);
        tokio::spawn(async move {
            cb.call_async(async {
                tokio::task::yield_now().await;
                if true {
                    panic!("async boom");
                }
                Ok::<_, &str>(())
            })
            .await
        })
    };
    let err = task.await.expect_err("the panic must propagate");
    assert!(err.is_panic());
    assert_eq!(panic_text(&*err.into_panic()), "async boom");
    assert_eq!(cb.fail_counter(), 1);
    assert_eq!(cb.current_state(), State::Closed);

    let task = {
        let cb = Arc::clone(&cb);
        tokio::spawn(async move {
            cb.call_async(async {
                if true {
                    panic!("second");
                }
                Ok::<_, &str>(())
            })
            .await
        })
    };
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(cb.current_state(), State::Open);
}

#[tokio::test]
async fn a_panicking_trial_opens_again() {
    let clock = ManualClock::new();
    let cb = Arc::new(
        CircuitBreaker::builder("async-panic-trial")
            .fail_max(1)
            .reset_timeout(MINUTE)
            .clock(clock.clone())
            .build(),
    );
    cb.open();
    clock.advance(MINUTE);
    let task = {
        let cb = Arc::clone(&cb);
        tokio::spawn(async move {
            cb.call_async(async {
                if true {
                    panic!("trial boom");
                }
                Ok::<_, &str>(())
            })
            .await
        })
    };
    assert_eq!(
        panic_text(&*task.await.unwrap_err().into_panic()),
        "trial boom"
    );
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 1);
    // Its place is not leaked: after the timeout the next call is a trial.
    clock.advance(MINUTE);
    succeed(&cb).await.unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

// ---- on a multi-threaded runtime ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_async_works_across_worker_threads() {
    let cb = Arc::new(CircuitBreaker::builder("async-mt").fail_max(1_000).build());
    let tasks: Vec<_> = (0..100_u32)
        .map(|i| {
            let cb = Arc::clone(&cb);
            tokio::spawn(async move {
                cb.call_async(async move {
                    tokio::task::yield_now().await;
                    if i % 2 == 0 {
                        Ok(i)
                    } else {
                        Err("odd")
                    }
                })
                .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Inner("odd")) => failed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, failed), (50, 50));
    assert_eq!(cb.current_state(), State::Closed);
    // Failures interleave with successes; the counter is whatever ran last
    // since a success, never more than the failures.
    assert!(cb.fail_counter() <= 50);
}

// ---- a listener panic before the future runs ----

mod before_call_panic {
    use super::*;
    use breaker::storage::{Applied, Storage};
    use breaker::storage::{Limits, Op, Outcome, Snapshot};
    use breaker::MemoryStorage;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Wake, Waker};

    /// Memory storage that, right after the first trial place is freed,
    /// admits another caller, as a concurrent thread could.
    #[derive(Default)]
    struct Interleaved {
        inner: MemoryStorage,
        cancels: AtomicU32,
        other: Mutex<Option<Outcome>>,
    }

    impl Storage for Interleaved {
        fn load(&self) -> Snapshot {
            self.inner.load()
        }
        fn apply(&self, op: Op, limits: &Limits) -> Applied {
            let applied = self.inner.apply(op, limits);
            if matches!(op, Op::Cancel { .. }) && self.cancels.fetch_add(1, Ordering::SeqCst) == 0 {
                let other = self.inner.apply(Op::Admit, limits);
                *self.other.lock().unwrap() = Some(other.outcome);
            }
            applied
        }
    }

    struct PanicOnce(AtomicBool);

    impl Listener for PanicOnce {
        fn before_call(&self, _: &CircuitBreaker) {
            if !self.0.swap(true, Ordering::SeqCst) {
                panic!("before_call listener");
            }
        }
    }

    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn frees_the_trial_place_once_only() {
        let storage = Arc::new(Interleaved::default());
        let cb = CircuitBreaker::builder("async-before-call-panic")
            .storage(Arc::clone(&storage))
            .listener(PanicOnce(AtomicBool::new(false)))
            .build();
        cb.half_open();

        let ran = AtomicBool::new(false);
        let mut call = Box::pin(cb.call_async(async {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, &str>(())
        }));
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let payload = catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(&mut cx))).unwrap_err();
        assert_eq!(panic_text(&*payload), "before_call listener");
        drop(call);
        assert!(!ran.load(Ordering::SeqCst));

        // The panicking call's place was freed and the other caller took it ...
        let other = storage.other.lock().unwrap().take();
        assert!(
            matches!(other, Some(Outcome::Admitted { trial: true, .. })),
            "{other:?}"
        );
        // ... and keeps it: one trial at a time.
        assert_eq!(storage.cancels.load(Ordering::SeqCst), 1);
        let r = cb.call(|| Ok::<_, &str>(()));
        assert_eq!(
            r.unwrap_err().breaker_error().unwrap().reason(),
            Reason::TrialInProgress
        );
    }
}

/// Applies every op at once (a [`LockedStorage`]), but the future of a
/// success never completes: a caller dropped while its result is on its way.
#[derive(Default)]
struct SlowSuccess(LockedStorage);

impl Storage for SlowSuccess {
    fn load(&self) -> Snapshot {
        self.0.load()
    }
    fn apply(&self, op: Op, limits: &Limits) -> Applied {
        self.0.apply(op, limits)
    }
    fn apply_async(&self, op: Op, limits: Limits) -> ApplyFuture<'_> {
        let applied = self.apply(op, &limits);
        let slow = matches!(op, Op::Success { .. });
        Box::pin(async move {
            if slow {
                pending::<()>().await;
            }
            applied
        })
    }
}

// A trial's future dropped while its success was being recorded used to
// send a cancel after it: with the circuit still half-open (one success
// of two), that cancel freed the place of the next trial, admitted under
// the same generation, and a third call ran alongside it.
#[tokio::test]
async fn a_trial_dropped_after_its_result_does_not_free_the_next_trial() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("dropped-after-result")
        .success_threshold(2)
        .reset_timeout(Duration::from_secs(1))
        .clock(clock.clone())
        .storage(SlowSuccess::default())
        .build();
    cb.open();
    clock.advance(Duration::from_secs(1));

    let mut first = Box::pin(cb.call_async(async { Ok::<_, ()>(1) }));
    assert!(poll_once(&mut first).await.is_pending()); // its success is recorded
    assert_eq!(
        (cb.current_state(), cb.success_counter()),
        (State::HalfOpen, 1)
    );

    let mut second = Box::pin(cb.call_async(pending::<Result<(), ()>>()));
    assert!(poll_once(&mut second).await.is_pending()); // the next trial runs
    assert!(cb.snapshot().trial);

    drop(first);
    assert!(cb.snapshot().trial, "the running trial lost its place");
    let third = cb.call(|| Ok::<_, ()>(3)).unwrap_err();
    let Error::Open(rejected) = third else {
        panic!("a third call ran alongside the trial: {third:?}");
    };
    assert!(rejected
        .to_string()
        .contains(Reason::TrialInProgress.as_str()));
}
