//! Trip policies beyond the consecutive one's: several half-open trials at
//! once and a backoff of the open period (API.md, "Trip policies"), on
//! both the lock-free memory storage and a storage that applies `step`
//! under a lock. Time is a `ManualClock`: nothing here sleeps.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use breaker::{Backoff, CircuitBreaker, ConfigError, Error, Number, Reason, State};
use common::breakers::{clocked_builder, fail, succeed, MINUTE};
use common::recorder::{Log, Recorder};
use common::{Backend, BACKENDS};

const SECOND: Duration = Duration::from_secs(1);

fn rejected_because<T: std::fmt::Debug>(r: Result<T, Error<&'static str>>) -> Reason {
    match r {
        Err(Error::Open(e)) => e.reason(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// A half-open breaker admitting `calls` trials at once, closing after
/// `successes`.
fn half_open(backend: Backend, calls: u32, successes: u32) -> CircuitBreaker {
    let (builder, _) = clocked_builder("policies-half-open", 1, successes);
    let cb = backend.storage(builder.half_open_calls(calls)).build();
    cb.half_open();
    cb
}

#[test]
fn half_open_admits_up_to_half_open_calls_trials_at_once() {
    for backend in BACKENDS {
        let cb = half_open(backend, 3, 10);
        // Three trials run at once (nested: each is still running when the
        // next one asks); the fourth is rejected while they run.
        let outer = cb.call(|| {
            cb.call(|| {
                cb.call(|| {
                    let fourth = rejected_because(succeed(&cb));
                    assert_eq!(fourth, Reason::TrialInProgress, "{backend:?}");
                    Ok::<_, &str>(3)
                })
                .map_err(|_| "third")
            })
            .map_err(|_| "second")
        });
        assert!(outer.is_ok(), "{backend:?}: {outer:?}");
        assert_eq!(cb.success_counter(), 3, "{backend:?}");
        assert_eq!(cb.current_state(), State::HalfOpen);
        // Every place is free again.
        assert_eq!(cb.snapshot().running_trials(), 0, "{backend:?}");
    }
}

#[test]
fn success_threshold_may_exceed_half_open_calls() {
    for backend in BACKENDS {
        let cb = half_open(backend, 2, 5);
        for n in 1..5 {
            succeed(&cb).unwrap();
            assert_eq!(
                (cb.current_state(), cb.success_counter()),
                (State::HalfOpen, n),
                "{backend:?}"
            );
        }
        succeed(&cb).unwrap();
        assert_eq!(cb.current_state(), State::Closed, "{backend:?}");
        assert_eq!(cb.success_counter(), 0);
    }
}

#[test]
fn any_trial_failure_opens_the_circuit_again_and_the_others_results_are_ignored() {
    for backend in BACKENDS {
        let cb = half_open(backend, 3, 3);
        let events = Log::default();
        cb.add_listener(Arc::new(Recorder::new(&events)));
        let outer = cb.call(|| {
            // A second trial fails while the first runs: open again.
            assert!(matches!(fail(&cb), Err(Error::Tripped(..))), "{backend:?}");
            Ok::<_, &str>(1)
        });
        // The first trial's success belonged to the half-open period.
        assert_eq!(outer.unwrap(), 1);
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
        assert_eq!(cb.success_counter(), 0);
        let changes: Vec<String> = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with("state_change"))
            .cloned()
            .collect();
        assert_eq!(changes.len(), 1, "{backend:?}: {changes:?}");
    }
}

#[tokio::test]
async fn a_cancelled_trial_frees_its_place_and_counts_as_nothing() {
    for backend in BACKENDS {
        let cb = half_open(backend, 2, 2);
        let never = std::future::pending::<Result<u32, &str>>();
        let mut first = Box::pin(cb.call_async(never));
        let mut second = Box::pin(cb.call_async(std::future::pending::<Result<u32, &str>>()));
        // Both admitted (polled once each), a third rejected.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert_eq!(cb.snapshot().running_trials(), 2, "{backend:?}");
        assert_eq!(rejected_because(succeed(&cb)), Reason::TrialInProgress);
        // Dropping one frees one place: one more trial runs, and succeeds.
        drop(first);
        assert_eq!(cb.snapshot().running_trials(), 1, "{backend:?}");
        succeed(&cb).unwrap();
        assert_eq!(
            (cb.current_state(), cb.success_counter()),
            (State::HalfOpen, 1),
            "{backend:?}"
        );
        drop(second);
        assert_eq!(cb.snapshot().running_trials(), 0, "{backend:?}");
        succeed(&cb).unwrap();
        assert_eq!(cb.current_state(), State::Closed, "{backend:?}");
    }
}

use std::future::Future;

#[test]
fn several_trials_keep_no_failure_count_and_a_trial_failure_opens_with_one() {
    // The consecutive policy's one trial keeps it (pybreaker's count).
    let (builder, clock) = clocked_builder("policies-fail-counter", 2, 1);
    let cb = builder.build();
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    clock.advance(MINUTE);
    cb.call(|| {
        assert_eq!(cb.fail_counter(), 2);
        Err::<(), _>("still down")
    })
    .unwrap_err();
    assert_eq!(cb.fail_counter(), 3);

    // Two trials at once do not keep it.
    let (builder, clock) = clocked_builder("policies-fail-counter-2", 2, 1);
    let cb = builder.half_open_calls(2).build();
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    clock.advance(MINUTE);
    cb.call(|| {
        assert_eq!(cb.fail_counter(), 2); // one trial: kept
        fail(&cb).unwrap_err(); // a second one, failing
        Ok::<_, &str>(())
    })
    .unwrap();
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Open, 1));
}

/// A breaker that opens on its first failure, with `backoff`, on a manual
/// clock; a reset timeout of 10 s.
fn backed_off(backend: Backend, backoff: Backoff) -> (CircuitBreaker, breaker::clock::ManualClock) {
    let (builder, clock) = clocked_builder("policies-backoff", 1, 1);
    let cb = backend
        .storage(builder.reset_timeout(10 * SECOND).backoff(backoff))
        .build();
    (cb, clock)
}

/// Opens `cb` from closed, then fails `n` trials in a row; the open period
/// each opening had (as `retry_after` reports it right after).
fn periods(cb: &CircuitBreaker, clock: &breaker::clock::ManualClock, n: usize) -> Vec<Duration> {
    let mut seen = Vec::new();
    let tripped = fail(cb).unwrap_err();
    let Error::Tripped(e, _) = &tripped else {
        panic!("expected the trip, got {tripped:?}");
    };
    let mut period = cb.retry_after().unwrap();
    assert_eq!(e.retry_after(), Some(period));
    seen.push(period);
    for _ in 0..n {
        // One millisecond early: still rejected.
        clock.advance(period - Duration::from_millis(1));
        assert_eq!(rejected_because(succeed(cb)), Reason::TimeoutNotElapsed);
        clock.advance(Duration::from_millis(1));
        let again = fail(cb).unwrap_err(); // the trial fails
        let Error::Tripped(e, _) = &again else {
            panic!("expected a re-opening, got {again:?}");
        };
        period = cb.retry_after().unwrap();
        assert_eq!(e.retry_after(), Some(period));
        seen.push(period);
    }
    seen
}

#[test]
fn an_exponential_backoff_grows_with_each_reopening_up_to_its_cap() {
    for backend in BACKENDS {
        let (cb, clock) = backed_off(backend, Backoff::exponential(3.0, 200 * SECOND));
        let secs: Vec<u64> = periods(&cb, &clock, 5)
            .iter()
            .map(Duration::as_secs)
            .collect();
        assert_eq!(secs, [10, 30, 90, 200, 200, 200], "{backend:?}");
    }
}

#[test]
fn the_constant_backoff_keeps_every_period_at_the_reset_timeout() {
    for backend in BACKENDS {
        let (cb, clock) = backed_off(backend, Backoff::constant());
        let all = periods(&cb, &clock, 4);
        assert!(
            all.iter().all(|p| *p == 10 * SECOND),
            "{backend:?}: {all:?}"
        );
    }
}

#[test]
fn closing_resets_the_backoff() {
    for backend in BACKENDS {
        let (cb, clock) = backed_off(backend, Backoff::exponential(2.0, 600 * SECOND));
        assert_eq!(periods(&cb, &clock, 2).last(), Some(&(40 * SECOND)));
        // A trial success closes: the next opening starts from the reset
        // timeout again.
        clock.advance(40 * SECOND);
        succeed(&cb).unwrap();
        assert_eq!(cb.current_state(), State::Closed, "{backend:?}");
        assert_eq!(periods(&cb, &clock, 1), [10 * SECOND, 20 * SECOND]);
        // So do `close()` and `reset()`.
        for close in [CircuitBreaker::close, CircuitBreaker::reset] {
            close(&cb);
            fail(&cb).unwrap_err();
            assert_eq!(cb.retry_after(), Some(10 * SECOND), "{backend:?}");
        }
        // Opening by hand while open counts as a re-opening.
        cb.open();
        assert_eq!(cb.retry_after(), Some(20 * SECOND), "{backend:?}");
    }
}

#[test]
fn jitter_spreads_each_period_within_its_bounds() {
    for backend in BACKENDS {
        let (cb, clock) = backed_off(
            backend,
            Backoff::exponential(2.0, 1_000 * SECOND).jitter(0.25),
        );
        let (mut low, mut high) = (f64::MAX, f64::MIN);
        for _ in 0..200 {
            cb.close();
            for (k, period) in periods(&cb, &clock, 2).into_iter().enumerate() {
                let nominal = 10.0 * f64::from(1 << k);
                let ratio = period.as_secs_f64() / nominal;
                // Rounded up to the millisecond.
                assert!(
                    (0.75..=1.25 + 0.001 / nominal).contains(&ratio),
                    "{backend:?}: {ratio} at k = {k}"
                );
                low = low.min(ratio);
                high = high.max(ratio);
            }
            clock.advance(1_000 * SECOND);
        }
        // Spread over the range, not stuck at one value.
        assert!(low < 0.8 && high > 1.2, "{backend:?}: {low}..{high}");
    }
}

#[test]
fn the_backoff_is_changed_at_run_time_from_the_next_opening() {
    let (cb, clock) = backed_off(Backend::Memory, Backoff::constant());
    fail(&cb).unwrap_err();
    cb.set_backoff(Backoff::exponential(2.0, 600 * SECOND))
        .unwrap();
    assert_eq!(cb.retry_after(), Some(10 * SECOND));
    clock.advance(10 * SECOND);
    fail(&cb).unwrap_err();
    assert_eq!(cb.retry_after(), Some(20 * SECOND));
    assert_eq!(
        cb.set_backoff(Backoff::exponential(2.0, SECOND)),
        Err(ConfigError::BackoffMax {
            max: SECOND,
            reset_timeout: 10 * SECOND
        })
    );
    assert_eq!(cb.backoff(), Backoff::exponential(2.0, 600 * SECOND));
}

#[test]
fn bad_policy_settings_are_typed_errors() {
    let build = |f: fn(breaker::CircuitBreakerBuilder) -> breaker::CircuitBreakerBuilder| {
        f(CircuitBreaker::builder("policies-bad")).try_build().err()
    };
    let hour = Duration::from_secs(3_600);
    assert_eq!(
        build(|b| b.half_open_calls(0)),
        Some(ConfigError::HalfOpenCalls { value: 0 })
    );
    assert_eq!(
        build(|b| b.half_open_calls(256)),
        Some(ConfigError::HalfOpenCalls { value: 256 })
    );
    assert_eq!(build(|b| b.half_open_calls(255)), None);
    for factor in [0.99, f64::NAN, f64::INFINITY, -1.0] {
        let err = CircuitBreaker::builder("policies-bad")
            .backoff(Backoff::exponential(factor, hour))
            .try_build()
            .err();
        assert_eq!(
            err,
            Some(ConfigError::BackoffFactor {
                value: Number::from(factor)
            })
        );
    }
    assert_eq!(
        build(|b| b.backoff(Backoff::exponential(1.0, MINUTE))),
        None
    );
    assert_eq!(
        build(|b| b.backoff(Backoff::exponential(2.0, Duration::from_secs(59)))),
        Some(ConfigError::BackoffMax {
            max: Duration::from_secs(59),
            reset_timeout: MINUTE
        })
    );
    for jitter in [1.0, -0.1, f64::NAN] {
        let err = CircuitBreaker::builder("policies-bad")
            .backoff(Backoff::constant().jitter(jitter))
            .try_build()
            .err();
        assert_eq!(
            err,
            Some(ConfigError::Jitter {
                value: Number::from(jitter)
            })
        );
    }
    assert_eq!(build(|b| b.backoff(Backoff::constant().jitter(0.0))), None);
    assert_eq!(
        build(|b| b.backoff(Backoff::constant().jitter(0.999))),
        None
    );
    // The messages name the setting and the value.
    let err = build(|b| b.half_open_calls(0)).unwrap();
    assert_eq!(
        err.to_string(),
        "half_open_calls must be between 1 and 255, got 0"
    );
    let err = build(|b| b.backoff(Backoff::constant().jitter(1.0))).unwrap();
    assert_eq!(
        err.to_string(),
        "jitter must be at least 0 and below 1, got 1"
    );
    // A setter leaves the setting as it was.
    let cb = CircuitBreaker::builder("policies-bad")
        .half_open_calls(2)
        .build();
    assert!(cb.set_half_open_calls(0).is_err());
    assert_eq!(cb.half_open_calls(), 2);
}

#[test]
fn half_open_calls_changed_at_run_time_admit_more_trials() {
    let cb = half_open(Backend::Memory, 1, 5);
    cb.call(|| {
        assert_eq!(rejected_because(succeed(&cb)), Reason::TrialInProgress);
        cb.set_half_open_calls(2).unwrap();
        succeed(&cb).unwrap(); // now a second place
        Ok::<_, &str>(())
    })
    .unwrap();
    assert_eq!(cb.success_counter(), 2);
}

/// Eight threads race for three trial places, round after round: never
/// more than three trials run at once, every trial's success is counted
/// once (exact at quiescence), and every place is given back.
#[test]
fn eight_threads_never_run_more_trials_than_there_are_places() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 100;
    const CALLS: usize = 5;
    for backend in BACKENDS {
        // A threshold no round reaches: every admitted call is a trial.
        let (builder, _) = clocked_builder("policies-race", 1, 255);
        let cb = Arc::new(backend.storage(builder.half_open_calls(3)).build());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        for _ in 0..ROUNDS {
            cb.half_open();
            let ran = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(Barrier::new(THREADS));
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (cb, running, most, ran, start) = (
                        Arc::clone(&cb),
                        Arc::clone(&running),
                        Arc::clone(&most),
                        Arc::clone(&ran),
                        Arc::clone(&start),
                    );
                    thread::spawn(move || {
                        start.wait();
                        for _ in 0..CALLS {
                            let _ = cb.call(|| {
                                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(now, Ordering::SeqCst);
                                ran.fetch_add(1, Ordering::SeqCst);
                                thread::yield_now();
                                running.fetch_sub(1, Ordering::SeqCst);
                                Ok::<_, &str>(())
                            });
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            let snap = cb.snapshot();
            assert_eq!(snap.state, State::HalfOpen, "{backend:?}");
            assert_eq!(snap.running_trials(), 0, "{backend:?}: {snap:?}");
            assert_eq!(
                snap.success_counter as usize,
                ran.load(Ordering::SeqCst),
                "{backend:?}: a trial success lost or counted twice"
            );
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&most),
            "{backend:?}: {most} trials at once"
        );
    }
}

/// Eight threads fail trials at once: the circuit re-opens once per
/// half-open period, and listeners hear each transition once.
#[test]
fn concurrent_trial_failures_reopen_the_circuit_once() {
    const THREADS: usize = 8;
    for backend in BACKENDS {
        let (builder, _) = clocked_builder("policies-reopen", 1, 255);
        let cb = Arc::new(backend.storage(builder.half_open_calls(8)).build());
        let events = Log::default();
        cb.add_listener(Arc::new(Recorder::new(&events)));
        for _ in 0..50 {
            cb.half_open();
            let start = Arc::new(Barrier::new(THREADS));
            let tripped = Arc::new(AtomicUsize::new(0));
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (cb, start, tripped) =
                        (Arc::clone(&cb), Arc::clone(&start), Arc::clone(&tripped));
                    thread::spawn(move || {
                        start.wait();
                        if let Err(Error::Tripped(..)) = fail(&cb) {
                            tripped.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            assert_eq!(tripped.load(Ordering::SeqCst), 1, "{backend:?}");
            assert_eq!(cb.current_state(), State::Open);
        }
        let log = events.lock().unwrap();
        let reopenings = log
            .iter()
            .filter(|e| e.as_str() == "state_change half-open->open")
            .count();
        assert_eq!(reopenings, 50, "{backend:?}");
    }
}

#[cfg(feature = "redis")]
#[test]
fn a_redis_breaker_takes_several_trials_and_a_backoff() {
    use breaker::RedisStorage;
    // Nothing listens there; the storage is built all the same (it starts
    // on its fallback state): the script applies both policies
    // (tests/storage/redis/policies.rs runs them on a server).
    let redis = RedisStorage::builder("redis://127.0.0.1:1/")
        .build()
        .unwrap();
    let cb = CircuitBreaker::builder("policies-redis")
        .half_open_calls(2)
        .backoff(Backoff::exponential(2.0, Duration::from_secs(600)).jitter(0.1))
        .storage(redis)
        .try_build()
        .unwrap();
    assert_eq!(cb.half_open_calls(), 2);
    cb.set_half_open_calls(3).unwrap();
    assert_eq!(cb.half_open_calls(), 3);
}
