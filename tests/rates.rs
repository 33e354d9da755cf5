//! The failure-rate policy (API.md, "Trip policies"): the count and time
//! windows, `min_calls`, the threshold, the consecutive condition beside
//! it, the window emptied on entering closed, `window()`, the setters and
//! their errors, and eight threads on one breaker. Both the lock-free
//! memory storage and a storage applying `step` under a lock; time is a
//! `ManualClock`: nothing here sleeps.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::storage::WindowShape;
use breaker::{CircuitBreaker, CircuitBreakerBuilder, ConfigError, Error, Number, Reason, State};
use common::breakers::{fail, succeed, MINUTE};
use common::recorder::{Log, Recorder};
use common::{Backend, BACKENDS};

const SECOND: Duration = Duration::from_secs(1);

/// A builder with a failure rate of `rate` on a fresh `ManualClock` (no
/// `fail_max`: the rate alone).
fn rated(backend: Backend, rate: f64) -> (CircuitBreakerBuilder, ManualClock) {
    let clock = ManualClock::new();
    let builder = CircuitBreaker::builder("rates")
        .failure_rate(rate)
        .reset_timeout(MINUTE)
        .clock(clock.clone());
    (backend.storage(builder), clock)
}

fn tripped_because(r: Result<u32, Error<&'static str>>) -> Reason {
    match r {
        Err(Error::Tripped(e, "boom")) => e.reason(),
        other => panic!("expected the trip, got {other:?}"),
    }
}

fn counts(cb: &CircuitBreaker) -> (u64, u64) {
    let w = cb.window();
    (w.calls, w.failures)
}

#[test]
fn the_count_window_drops_its_oldest_call_first() {
    for backend in BACKENDS {
        let (builder, _) = rated(backend, 0.5);
        let cb = builder.window_calls(4).min_calls(4).build();
        let _ = fail(&cb);
        let _ = succeed(&cb);
        let _ = succeed(&cb);
        let _ = succeed(&cb);
        assert_eq!(counts(&cb), (4, 1), "{backend:?}");
        let _ = succeed(&cb); // the failure leaves
        assert_eq!(counts(&cb), (4, 0), "{backend:?}");
        let _ = fail(&cb);
        assert_eq!(cb.current_state(), State::Closed, "{backend:?}: 1 of 4");
        // 2 of the last 4 (success, success, failure, failure).
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureRate);
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
    }
}

#[test]
fn the_time_window_expires_its_buckets() {
    for backend in BACKENDS {
        let (builder, clock) = rated(backend, 0.5);
        let cb = builder.window_time(10 * SECOND).min_calls(2).build();
        let _ = fail(&cb); // at 0, in bucket [0, 1 s)
        clock.advance(Duration::from_millis(8_900));
        // Still held 8.9 s later (every call of the last 9/10 of the span).
        assert_eq!(counts(&cb), (1, 1), "{backend:?}");
        let _ = succeed(&cb); // at 8.9 s
        assert_eq!(counts(&cb), (2, 1), "{backend:?}");
        clock.advance(Duration::from_millis(1_100)); // 10 s: the first bucket is out
        assert_eq!(counts(&cb), (1, 0), "{backend:?}");
        // So this failure is 1 of 2, not 2 of 3: 0.5 holds.
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureRate);
        cb.close();
        // A whole span later, nothing is left.
        let _ = fail(&cb);
        clock.advance(10 * SECOND);
        assert_eq!(counts(&cb), (0, 0), "{backend:?}");
    }
}

#[test]
fn nothing_trips_below_min_calls() {
    for backend in BACKENDS {
        let (builder, _) = rated(backend, 0.5);
        let cb = builder.min_calls(5).build();
        for _ in 0..4 {
            assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
        }
        assert_eq!(cb.window().failure_rate, None, "{backend:?}");
        assert_eq!(cb.current_state(), State::Closed, "{backend:?}");
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureRate);
    }
}

#[test]
fn a_rate_exactly_at_the_threshold_trips_and_just_below_does_not() {
    for backend in BACKENDS {
        // 3 of 10 is exactly 0.3 (and 0.3 is not exact in binary).
        let (builder, _) = rated(backend, 0.3);
        let cb = builder.window_calls(10).min_calls(10).build();
        for _ in 0..8 {
            let _ = succeed(&cb);
        }
        let _ = fail(&cb);
        assert!(matches!(fail(&cb), Err(Error::Inner(_))), "{backend:?}");
        assert_eq!(cb.window().failure_rate, Some(0.2));
        // The window now drops a success: 3 of 10.
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureRate);

        let (builder, _) = rated(backend, 0.31);
        let cb = builder.window_calls(10).min_calls(10).build();
        for _ in 0..7 {
            let _ = succeed(&cb);
        }
        for _ in 0..3 {
            let _ = fail(&cb);
        }
        assert_eq!(cb.current_state(), State::Closed, "{backend:?}: 0.3 < 0.31");
    }
}

#[test]
fn a_rate_alone_turns_the_consecutive_condition_off() {
    for backend in BACKENDS {
        let (builder, _) = rated(backend, 1.0);
        let cb = builder.min_calls(20).build();
        for _ in 0..19 {
            let _ = fail(&cb); // far beyond the default fail_max of 5
        }
        assert_eq!(cb.current_state(), State::Closed, "{backend:?}");
        assert_eq!(cb.fail_counter(), 0, "{backend:?}: the word counts nothing");
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureRate);
        assert_eq!(cb.fail_counter(), 0);
    }
}

#[test]
fn with_fail_max_set_either_condition_opens_the_circuit() {
    for backend in BACKENDS {
        // Consecutive first.
        let (builder, _) = rated(backend, 0.9);
        let cb = builder.fail_max(3).min_calls(2).build();
        let _ = fail(&cb);
        let _ = succeed(&cb);
        let _ = fail(&cb);
        let _ = fail(&cb);
        assert_eq!(cb.fail_counter(), 2, "{backend:?}");
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureThreshold);

        // The rate first: never 3 in a row, half of the calls.
        let (builder, _) = rated(backend, 0.5);
        let cb = builder.fail_max(3).min_calls(4).build();
        let _ = succeed(&cb);
        let _ = fail(&cb);
        let _ = succeed(&cb);
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureRate);
    }
}

#[test]
fn entering_closed_empties_the_window() {
    for backend in BACKENDS {
        let (builder, clock) = rated(backend, 0.5);
        let cb = builder.min_calls(4).build();
        let _ = succeed(&cb);
        let _ = fail(&cb);
        cb.close();
        assert_eq!(counts(&cb), (0, 0), "{backend:?}: close()");
        let _ = fail(&cb);
        cb.reset();
        assert_eq!(counts(&cb), (0, 0), "{backend:?}: reset()");

        // A trip, then a trial that closes it: the window that opened it is
        // kept while open, the trial is not recorded, and closing empties it.
        for _ in 0..2 {
            let _ = succeed(&cb);
            let _ = fail(&cb);
        }
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
        assert_eq!(counts(&cb), (4, 2), "{backend:?}");
        clock.advance(MINUTE);
        assert_eq!(succeed(&cb).unwrap(), 7);
        assert_eq!(cb.current_state(), State::Closed, "{backend:?}");
        assert_eq!(
            counts(&cb),
            (0, 0),
            "{backend:?}: the trial is not recorded"
        );

        // A failed trial follows the trial rules and is not recorded either.
        cb.half_open();
        assert!(
            matches!(fail(&cb), Err(Error::Tripped(e, _)) if e.reason() == Reason::TrialFailed)
        );
        assert_eq!(counts(&cb), (0, 0), "{backend:?}");
    }
}

#[test]
fn a_result_from_before_a_close_is_not_recorded_in_the_new_window() {
    for backend in BACKENDS {
        let (builder, _) = rated(backend, 0.5);
        let cb = builder.min_calls(1).build();
        let late = cb.call(|| {
            cb.close(); // while this call runs
            Err::<(), _>("boom")
        });
        assert!(
            matches!(late, Err(Error::Inner(_))),
            "{backend:?}: {late:?}"
        );
        assert_eq!(counts(&cb), (0, 0), "{backend:?}");
        assert_eq!(cb.current_state(), State::Closed);
    }
}

#[test]
fn excluded_errors_are_successes_and_rejections_are_not_recorded() {
    #[derive(Debug, thiserror::Error)]
    #[error("not found")]
    struct NotFound;
    for backend in BACKENDS {
        let (builder, _) = rated(backend, 0.5);
        let cb = builder.exclude::<NotFound>().min_calls(2).build();
        let _ = cb.call(|| Err::<(), _>(NotFound));
        assert_eq!(counts(&cb), (1, 0), "{backend:?}");
        let _ = fail(&cb); // 1 of 2
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
        assert!(succeed(&cb).unwrap_err().is_open());
        assert_eq!(
            counts(&cb),
            (2, 1),
            "{backend:?}: the rejection is not recorded"
        );
    }
}

#[tokio::test]
async fn a_cancelled_call_is_not_recorded() {
    for backend in BACKENDS {
        let (builder, _) = rated(backend, 0.5);
        let cb = builder.build();
        let pending = cb.call_async(std::future::pending::<Result<(), &str>>());
        let mut pending = Box::pin(pending);
        let waker = std::task::Waker::noop();
        let polled = pending
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        assert!(polled.is_pending());
        drop(pending);
        assert_eq!(counts(&cb), (0, 0), "{backend:?}");
        let _ = cb.call_async(async { Err::<(), _>("boom") }).await;
        let _ = cb.call_async(async { Ok::<_, &str>(()) }).await;
        assert_eq!(counts(&cb), (2, 1), "{backend:?}: async calls are recorded");
    }
}

#[test]
fn window_reports_its_figures() {
    let (builder, _) = rated(Backend::Memory, 0.9);
    let cb = builder.window_calls(5).min_calls(3).build();
    let empty = cb.window();
    assert_eq!(
        (empty.calls, empty.failure_rate, empty.slow_call_rate),
        (0, None, None)
    );
    let _ = succeed(&cb);
    let _ = fail(&cb);
    assert_eq!(cb.window().failure_rate, None); // 2 calls < min_calls
    let _ = succeed(&cb);
    let _ = succeed(&cb);
    let w = cb.window();
    assert_eq!((w.calls, w.failures, w.slow_calls), (4, 1, 0));
    assert_eq!((w.failure_rate, w.slow_call_rate), (Some(0.25), Some(0.0)));
    // A count window smaller than min_calls decides once it is full.
    let (builder, _) = rated(Backend::Memory, 0.5);
    let small = builder.window_calls(2).min_calls(10).build();
    let _ = succeed(&small);
    assert_eq!(small.window().failure_rate, None);
    assert_eq!(tripped_because(fail(&small)), Reason::FailureRate);
    // The consecutive policy keeps no window.
    let plain = CircuitBreaker::new("rates-plain");
    let _ = fail(&plain);
    assert_eq!(plain.window(), breaker::WindowStats::default());
}

#[test]
fn the_setters_change_the_policy_at_run_time() {
    for backend in BACKENDS {
        let clock = ManualClock::new();
        let cb = backend
            .storage(CircuitBreaker::builder("rates-set").clock(clock.clone()))
            .build();
        // Turned on at run time: fail_max was not set, so the rate alone.
        cb.set_min_calls(2).unwrap();
        cb.set_failure_rate(0.5).unwrap();
        for _ in 0..4 {
            let _ = succeed(&cb);
        }
        let _ = fail(&cb);
        assert_eq!(counts(&cb), (5, 1), "{backend:?}");
        // A new shape: a new, empty window.
        cb.set_window_calls(3).unwrap();
        assert_eq!(cb.window_shape(), WindowShape::Calls(3));
        assert_eq!(counts(&cb), (0, 0), "{backend:?}");
        let _ = succeed(&cb);
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureRate);
        cb.close();
        // The same shape again keeps the window.
        let _ = succeed(&cb);
        cb.set_window_calls(3).unwrap();
        assert_eq!(counts(&cb), (1, 0), "{backend:?}");
        // A time window.
        cb.set_window_time(10 * SECOND).unwrap();
        assert_eq!(cb.window_shape(), WindowShape::Time(10 * SECOND));
        assert_eq!(counts(&cb), (0, 0));
        let _ = fail(&cb);
        clock.advance(10 * SECOND);
        assert_eq!(counts(&cb), (0, 0), "{backend:?}");
        // set_fail_max turns the consecutive condition on beside the rate.
        cb.set_min_calls(100).unwrap();
        cb.set_fail_max(2).unwrap();
        let _ = fail(&cb);
        assert_eq!(tripped_because(fail(&cb)), Reason::FailureThreshold);
    }
}

#[test]
fn bad_rate_settings_are_typed_errors() {
    let build = |b: CircuitBreakerBuilder| b.try_build().unwrap_err();
    let b = || CircuitBreaker::builder("rates-bad");
    for rate in [0.0, -0.5, 1.000_001, f64::NAN, f64::INFINITY] {
        let expected = ConfigError::FailureRate {
            value: Number::from(rate),
        };
        assert_eq!(build(b().failure_rate(rate)), expected);
        assert_eq!(
            CircuitBreaker::new("rates-bad").set_failure_rate(rate),
            Err(expected)
        );
    }
    assert_eq!(
        build(b().failure_rate(0.5).window_calls(0)),
        ConfigError::WindowCalls { value: 0 }
    );
    assert_eq!(
        build(b().window_calls(32_769)),
        ConfigError::WindowCalls { value: 32_769 }
    );
    let short = Duration::from_millis(9);
    assert_eq!(
        build(b().window_time(short)),
        ConfigError::WindowTime { value: short }
    );
    assert_eq!(build(b().min_calls(0)), ConfigError::MinCalls { value: 0 });
    assert_eq!(
        build(b().failure_rate(f64::NAN)).to_string(),
        "failure_rate must be above 0 and at most 1, got NaN"
    );
    assert_eq!(
        ConfigError::WindowCalls { value: 0 }.to_string(),
        "window_calls must be between 1 and 32768, got 0"
    );
    assert_eq!(
        ConfigError::WindowTime { value: short }.to_string(),
        "window_time must be at least 10ms, got 9ms"
    );
    assert_eq!(
        ConfigError::MinCalls { value: 0 }.to_string(),
        "min_calls must be at least 1, got 0"
    );
    // The setters change nothing on a bad value.
    let cb = b().failure_rate(0.5).window_calls(7).min_calls(3).build();
    assert_eq!(
        cb.set_window_calls(0),
        Err(ConfigError::WindowCalls { value: 0 })
    );
    assert_eq!(
        cb.set_window_time(Duration::ZERO),
        Err(ConfigError::WindowTime {
            value: Duration::ZERO
        })
    );
    assert_eq!(cb.set_min_calls(0), Err(ConfigError::MinCalls { value: 0 }));
    assert_eq!(
        cb.set_failure_rate(2.0).unwrap_err().to_string(),
        "failure_rate must be above 0 and at most 1, got 2"
    );
    assert_eq!(
        (cb.window_shape(), cb.min_calls(), cb.failure_rate()),
        (WindowShape::Calls(7), 3, Some(0.5))
    );
    // And the trip reasons say why.
    assert_eq!(
        Reason::FailureRate.to_string(),
        "failure rate threshold reached"
    );
    assert_eq!(
        Reason::SlowCallRate.to_string(),
        "slow call rate threshold reached"
    );
}

/// Eight threads call one breaker: at quiescence the window counts every
/// call exactly once, and each trip is made by exactly one failure.
#[test]
fn eight_threads_are_counted_exactly_and_trip_once() {
    const THREADS: usize = 8;
    const CALLS: usize = 2_000;
    for backend in BACKENDS {
        // Counted exactly: a rate that never holds, a window larger than
        // all the calls.
        let (builder, _) = rated(backend, 1.0);
        let cb = Arc::new(builder.window_calls(32_768).build());
        let start = Arc::new(Barrier::new(THREADS));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (cb, start) = (Arc::clone(&cb), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    for i in 0..CALLS {
                        let _ = if (i + t) % 4 == 0 {
                            fail(&cb)
                        } else {
                            succeed(&cb)
                        };
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let w = cb.window();
        assert_eq!(
            (w.calls, w.failures),
            ((THREADS * CALLS) as u64, (THREADS * CALLS / 4) as u64),
            "{backend:?}"
        );

        // One trip per trip: every thread fails at once, 50 times over.
        let (builder, _) = rated(backend, 0.5);
        let cb = Arc::new(builder.min_calls(THREADS as u32).build());
        let events = Log::default();
        cb.add_listener(Arc::new(Recorder::new(&events)));
        for round in 0..50 {
            cb.close();
            let start = Arc::new(Barrier::new(THREADS));
            let tripped = Arc::new(AtomicUsize::new(0));
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (cb, start, tripped) =
                        (Arc::clone(&cb), Arc::clone(&start), Arc::clone(&tripped));
                    thread::spawn(move || {
                        start.wait();
                        for _ in 0..4 {
                            if let Err(Error::Tripped(e, _)) = fail(&cb) {
                                assert_eq!(e.reason(), Reason::FailureRate);
                                tripped.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            assert_eq!(
                tripped.load(Ordering::SeqCst),
                1,
                "{backend:?} round {round}"
            );
            assert_eq!(cb.current_state(), State::Open);
        }
        let log = events.lock().unwrap();
        let trips = log
            .iter()
            .filter(|e| e.as_str() == "state_change closed->open")
            .count();
        assert_eq!(trips, 50, "{backend:?}");
    }
}

#[cfg(feature = "redis")]
#[test]
fn a_redis_breaker_takes_a_failure_rate_over_a_time_window_only() {
    use breaker::RedisStorage;
    // The fleet's window is kept on the server in time buckets; the last N
    // calls of a fleet are not defined (tests/storage/redis/policies.rs
    // runs the policy on a server).
    let redis = RedisStorage::builder("redis://127.0.0.1:1/")
        .build()
        .unwrap();
    let err = CircuitBreaker::builder("rates-redis")
        .failure_rate(0.5)
        .storage(redis.clone())
        .try_build()
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::Unsupported { storage: "RedisStorage", setting } if setting.contains("window_time")),
        "{err}"
    );
    let cb = CircuitBreaker::builder("rates-redis")
        .storage(redis)
        .try_build()
        .unwrap();
    assert!(matches!(
        cb.set_failure_rate(0.5),
        Err(ConfigError::Unsupported { .. })
    ));
    assert_eq!(cb.failure_rate(), None);
    // With a time window it is taken.
    cb.set_window_time(Duration::from_secs(10)).unwrap();
    cb.set_failure_rate(0.5).unwrap();
    assert_eq!(cb.failure_rate(), Some(0.5));
    cb.set_min_calls(3).unwrap();
    // Back to a count window: refused, and the time window stays.
    assert!(cb.set_window_calls(10).is_err());
}

/// A keyed group evicts only idle breakers: under the rate alone the word
/// counts no failure, so "idle" asks the window too.
#[test]
fn a_keyed_breaker_with_a_failure_in_its_window_is_never_evicted() {
    let clock = ManualClock::new();
    let group_clock = clock.clone();
    let hosts = breaker::keyed::KeyedBreakers::<String>::builder("rates-hosts", move |b| {
        b.failure_rate(0.5).min_calls(20).clock(group_clock.clone())
    })
    .max_keys(2)
    .build();
    let _ = hosts.get("failing").call(|| Err::<(), _>("refused"));
    assert_eq!(hosts.get("failing").fail_counter(), 0);
    clock.advance(Duration::from_millis(5));
    for i in 0..50 {
        let _ = hosts.get(&format!("fresh-{i}")).call(|| Ok::<_, &str>(()));
        clock.advance(Duration::from_millis(1));
    }
    assert!(hosts.keys().contains(&"failing".to_owned()));
    assert_eq!(hosts.get("failing").window().failures, 1);
}

/// The README's "Choosing a policy": a dependency failing 30 % of calls
/// (at random, a fixed seed per run), called 10 and 1,000 times a second.
/// The median time each policy takes to open over 101 runs, printed (with
/// `--nocapture`) and checked against what the README says.
#[test]
fn choosing_a_policy_on_a_dependency_failing_30_percent_of_calls() {
    type Make = fn(ManualClock) -> CircuitBreaker;
    let policies: [(&str, Make); 4] = [
        ("fail_max(5)", |clock| {
            CircuitBreaker::builder("choose").clock(clock).build()
        }),
        ("failure_rate(0.25), window_calls(100)", |clock| {
            CircuitBreaker::builder("choose")
                .failure_rate(0.25)
                .clock(clock)
                .build()
        }),
        (
            "failure_rate(0.25), window_time(60 s), min_calls(20)",
            |clock| {
                CircuitBreaker::builder("choose")
                    .failure_rate(0.25)
                    .window_time(MINUTE)
                    .min_calls(20)
                    .clock(clock)
                    .build()
            },
        ),
        ("failure_rate(0.5), window_calls(100)", |clock| {
            CircuitBreaker::builder("choose")
                .failure_rate(0.5)
                .clock(clock)
                .build()
        }),
    ];
    /// Seconds until the circuit opened, if it did within 5,000 calls.
    fn time_to_open(
        cb: &CircuitBreaker,
        clock: &ManualClock,
        per_second: u64,
        seed: u64,
    ) -> Option<f64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let gap = Duration::from_nanos(1_000_000_000 / per_second);
        for call in 1..=5_000u64 {
            // xorshift64: a failure with probability 0.3.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let failed = x % 1_000 < 300;
            let _ = cb.call(|| if failed { Err("down") } else { Ok(()) });
            if cb.current_state() == State::Open {
                return Some(call as f64 / per_second as f64);
            }
            clock.advance(gap);
        }
        None
    }
    let mut medians = Vec::new();
    for (name, make) in policies {
        for per_second in [10, 1_000] {
            let mut times: Vec<f64> = (0..101)
                .map(|seed| {
                    let clock = ManualClock::new();
                    let cb = make(clock.clone());
                    time_to_open(&cb, &clock, per_second, seed).unwrap_or(f64::INFINITY)
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let median = times[50];
            println!("{name} at {per_second}/s: median {median:.3} s to open");
            medians.push(median);
        }
    }
    // fail_max(5): a run of 5 failures comes about every 590 calls.
    assert!((20.0..=120.0).contains(&medians[0]), "{medians:?}");
    assert!((0.2..=1.2).contains(&medians[1]), "{medians:?}");
    // A failure rate of 0.25 opens within the first tens of calls.
    assert!(medians[2] <= 5.0 && medians[3] <= 0.05, "{medians:?}");
    assert!(medians[4] <= 5.0 && medians[5] <= 0.05, "{medians:?}");
    // A failure rate of 0.5 stays closed.
    assert!(
        medians[6].is_infinite() && medians[7].is_infinite(),
        "{medians:?}"
    );
}

/// A call in flight when a rate policy is turned on is counted in the new
/// window when it completes, a success as a failure is (the reference
/// model's rule; a success once read the policy only at its start).
#[test]
fn a_call_in_flight_when_a_rate_policy_is_turned_on_is_counted() {
    let cb = CircuitBreaker::builder("rates-in-flight")
        .fail_max(5)
        .build();
    cb.call(|| {
        cb.set_failure_rate(0.25).unwrap();
        Ok::<_, &str>(())
    })
    .unwrap();
    let window = cb.window();
    assert_eq!((window.calls, window.failures), (1, 0));
    let _ = cb.call(|| {
        cb.set_min_calls(50).unwrap();
        Err::<(), _>("down")
    });
    let window = cb.window();
    assert_eq!((window.calls, window.failures), (2, 1));
}
