//! Slow calls (API.md, "Trip policies"): `slow_call_duration`,
//! `slow_call_rate`, the window's `slow_calls`, the listeners' `slow_call`
//! and `call_duration`; and `fail_if` under a rate policy. Time is a
//! `ManualClock` the guarded functions advance: nothing sleeps.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::{
    CircuitBreaker, CircuitBreakerBuilder, ConfigError, Error, Listener, Number, Reason, State,
};
use common::breakers::clocked_builder;
use common::{Backend, BACKENDS};

const LIMIT: Duration = Duration::from_secs(2);

/// A breaker whose calls are slow past 2 s, with a slow-call rate of
/// `rate` over the last `window` calls, deciding from `min_calls`.
fn slow_policy(
    name: &'static str,
    backend: Backend,
    rate: f64,
    window: u32,
    min_calls: u32,
) -> (CircuitBreaker, ManualClock) {
    let (builder, clock) = clocked_builder(name, 5, 1);
    let builder = builder
        .slow_call_duration(LIMIT)
        .slow_call_rate(rate)
        .window_calls(window)
        .min_calls(min_calls);
    (backend.storage(builder).build(), clock)
}

/// A call that succeeds after `took` on `clock`.
fn succeed_after(
    cb: &CircuitBreaker,
    clock: &ManualClock,
    took: Duration,
) -> Result<u32, Error<&'static str>> {
    cb.call(|| {
        clock.advance(took);
        Ok(7)
    })
}

/// A call that fails after `took` on `clock`.
fn fail_after(
    cb: &CircuitBreaker,
    clock: &ManualClock,
    took: Duration,
) -> Result<u32, Error<&'static str>> {
    cb.call(|| {
        clock.advance(took);
        Err("boom")
    })
}

const FAST: Duration = Duration::from_millis(10);
const SLOW: Duration = Duration::from_secs(3);

#[test]
fn slow_successes_and_slow_failures_are_counted_as_slow() {
    for backend in BACKENDS {
        let (cb, clock) = slow_policy("slow-counted", backend, 1.0, 100, 100);
        let _ = succeed_after(&cb, &clock, SLOW);
        let _ = fail_after(&cb, &clock, SLOW);
        let _ = succeed_after(&cb, &clock, FAST);
        let _ = fail_after(&cb, &clock, FAST);
        // Exactly the duration is not longer than it: not slow.
        let _ = succeed_after(&cb, &clock, LIMIT);
        let stats = cb.window();
        assert_eq!(
            (stats.calls, stats.failures, stats.slow_calls),
            (5, 2, 2),
            "{backend:?}: {stats:?}"
        );
        assert_eq!(cb.current_state(), State::Closed);
    }
}

#[test]
fn the_slow_call_rate_trips_exactly_at_its_threshold() {
    for backend in BACKENDS {
        let (cb, clock) = slow_policy("slow-at-threshold", backend, 0.5, 4, 4);
        let _ = succeed_after(&cb, &clock, FAST);
        let _ = succeed_after(&cb, &clock, FAST);
        let _ = succeed_after(&cb, &clock, SLOW);
        assert_eq!(cb.window().slow_call_rate, None, "3 calls: below min_calls");
        assert_eq!(cb.current_state(), State::Closed);
        // 2 slow of 4: exactly 0.5.
        let tripping = succeed_after(&cb, &clock, SLOW);
        assert_eq!(
            tripping.unwrap(),
            7,
            "{backend:?}: a slow success that trips is returned as Ok"
        );
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
        assert_eq!(cb.window().slow_call_rate, Some(0.5));
        match succeed_after(&cb, &clock, FAST) {
            Err(Error::Open(e)) => assert_eq!(e.state(), State::Open),
            other => panic!("{backend:?}: expected a rejection, got {other:?}"),
        }
    }
}

#[test]
fn below_the_threshold_nothing_trips() {
    let (cb, clock) = slow_policy("slow-below", Backend::Memory, 0.5, 4, 4);
    for took in [FAST, FAST, FAST, SLOW, FAST, SLOW] {
        let _ = succeed_after(&cb, &clock, took);
    }
    // The last 4: FAST, SLOW, FAST, SLOW is 0.5, but the window held
    // FAST SLOW FAST SLOW only at the last call: it trips there.
    assert_eq!(cb.current_state(), State::Open);
    let (cb, clock) = slow_policy("slow-below-2", Backend::Memory, 0.75, 4, 4);
    for took in [FAST, SLOW, FAST, SLOW, FAST, SLOW] {
        let _ = succeed_after(&cb, &clock, took);
    }
    assert_eq!(cb.current_state(), State::Closed, "never 3 slow of 4");
    assert_eq!(cb.window().slow_call_rate, Some(0.5));
}

#[test]
fn min_calls_holds_off_a_window_of_slow_calls() {
    for backend in BACKENDS {
        let (cb, clock) = slow_policy("slow-min-calls", backend, 0.5, 100, 5);
        for _ in 0..4 {
            assert!(succeed_after(&cb, &clock, SLOW).is_ok());
        }
        assert_eq!(
            cb.current_state(),
            State::Closed,
            "{backend:?}: 4 of min_calls 5"
        );
        assert_eq!(cb.window().slow_calls, 4);
        assert_eq!(cb.window().slow_call_rate, None);
        let _ = succeed_after(&cb, &clock, SLOW);
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
    }
}

#[test]
fn a_slow_failure_that_trips_returns_tripped_with_the_slow_call_rate() {
    for backend in BACKENDS {
        let (cb, clock) = slow_policy("slow-failure-trips", backend, 1.0, 2, 2);
        let _ = fail_after(&cb, &clock, SLOW);
        match fail_after(&cb, &clock, SLOW) {
            Err(Error::Tripped(e, "boom")) => assert_eq!(e.reason(), Reason::SlowCallRate),
            other => panic!("{backend:?}: expected Tripped, got {other:?}"),
        }
    }
}

#[test]
fn the_slow_call_rate_turns_the_consecutive_condition_off_unless_fail_max_is_set() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("slow-no-consecutive")
        .clock(clock.clone())
        .slow_call_duration(LIMIT)
        .slow_call_rate(0.9)
        .build();
    for _ in 0..10 {
        let _ = fail_after(&cb, &clock, FAST);
    }
    assert_eq!(
        cb.current_state(),
        State::Closed,
        "the default fail_max 5 is off"
    );
    let (builder, clock) = clocked_builder("slow-and-consecutive", 3, 1);
    let cb = builder
        .fail_max(3)
        .slow_call_duration(LIMIT)
        .slow_call_rate(0.9)
        .build();
    for _ in 0..3 {
        let _ = fail_after(&cb, &clock, FAST);
    }
    assert_eq!(cb.current_state(), State::Open, "fail_max set: both on");
}

#[test]
fn entering_closed_empties_the_slow_calls_too() {
    let (cb, clock) = slow_policy("slow-emptied", Backend::Memory, 1.0, 10, 10);
    let _ = succeed_after(&cb, &clock, SLOW);
    assert_eq!(cb.window().slow_calls, 1);
    cb.reset();
    assert_eq!(cb.window().slow_calls, 0);
}

#[test]
fn a_half_open_trial_is_timed_but_not_recorded_in_the_window() {
    let (cb, clock) = slow_policy("slow-trial", Backend::Memory, 1.0, 10, 1);
    cb.half_open();
    assert_eq!(succeed_after(&cb, &clock, SLOW).unwrap(), 7);
    assert_eq!(
        cb.current_state(),
        State::Closed,
        "a slow trial success is a success"
    );
    assert_eq!(cb.window().calls, 0);
}

#[test]
fn async_calls_are_timed_from_their_first_poll() {
    let (cb, clock) = slow_policy("slow-async", Backend::Memory, 0.5, 2, 2);
    let run = |took: Duration| {
        let clock = clock.clone();
        block_on(cb.call_async(async move {
            clock.advance(took);
            Ok::<_, &str>(1)
        }))
    };
    assert_eq!(run(SLOW).unwrap(), 1);
    assert_eq!(cb.window().slow_calls, 1);
    assert_eq!(
        run(FAST).unwrap(),
        1,
        "the slow-call rate reached on a fast call does not trip"
    );
    assert_eq!(cb.current_state(), State::Closed);
    let failed = block_on(cb.call_async({
        let clock = clock.clone();
        async move {
            clock.advance(SLOW);
            Err::<u32, _>("boom")
        }
    }));
    assert!(
        matches!(failed, Err(Error::Tripped(_, "boom"))),
        "{failed:?}"
    );
    assert_eq!(cb.current_state(), State::Open);
}

// ---- listeners ----

struct Durations {
    wants: bool,
    log: Arc<Mutex<Vec<String>>>,
}

impl Listener for Durations {
    fn success(&self, _: &CircuitBreaker) {
        self.log.lock().unwrap().push("success".into());
    }
    fn failure(&self, _: &CircuitBreaker, _: &breaker::Failure<'_>) {
        self.log.lock().unwrap().push("failure".into());
    }
    fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
        self.log.lock().unwrap().push(format!("{old}->{new}"));
    }
    fn slow_call(&self, _: &CircuitBreaker, elapsed: Duration) {
        self.log.lock().unwrap().push(format!("slow {elapsed:?}"));
    }
    fn call_duration(&self, _: &CircuitBreaker, elapsed: Duration) {
        self.log.lock().unwrap().push(format!("took {elapsed:?}"));
    }
    fn wants_durations(&self) -> bool {
        self.wants
    }
}

fn durations(wants: bool) -> (Durations, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    (
        Durations {
            wants,
            log: log.clone(),
        },
        log,
    )
}

fn take(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn listeners_hear_slow_calls_after_the_result_and_its_transition() {
    let (listener, log) = durations(false);
    let (cb, clock) = {
        let (builder, clock) = clocked_builder("slow-listeners", 5, 1);
        let cb = builder
            .slow_call_duration(LIMIT)
            .slow_call_rate(1.0)
            .window_calls(1)
            .min_calls(1)
            .listener(listener)
            .build();
        (cb, clock)
    };
    let _ = succeed_after(&cb, &clock, SLOW);
    assert_eq!(
        take(&log),
        ["success", "closed->open", "slow 3s", "took 3s"]
    );
}

#[test]
fn a_listener_that_wants_durations_hears_every_completed_call() {
    for backend in BACKENDS {
        let (listener, log) = durations(true);
        let (builder, clock) = clocked_builder("slow-durations", 5, 1);
        let cb = backend.storage(builder.listener(listener)).build();
        let _ = succeed_after(&cb, &clock, FAST);
        let _ = fail_after(&cb, &clock, SLOW);
        assert_eq!(
            take(&log),
            ["success", "took 10ms", "failure", "took 3s"],
            "{backend:?}"
        );
        cb.open();
        let _ = take(&log);
        let _ = succeed_after(&cb, &clock, FAST); // rejected: not timed
        assert_eq!(take(&log), Vec::<String>::new());
    }
}

#[test]
fn durations_are_timed_only_while_someone_wants_them() {
    let (quiet, log) = durations(false);
    let (builder, clock) = clocked_builder("slow-durations-wanted", 5, 1);
    let cb = builder.listener(quiet).build();
    let _ = succeed_after(&cb, &clock, FAST);
    assert_eq!(take(&log), ["success"], "nothing times the call");
    // A listener that wants them turns timing on, for every listener.
    let (wanting, _) = durations(true);
    let wanting: Arc<dyn Listener> = Arc::new(wanting);
    cb.add_listener(wanting.clone());
    let _ = succeed_after(&cb, &clock, FAST);
    assert_eq!(take(&log), ["success", "took 10ms"]);
    assert!(cb.remove_listener(&wanting));
    let _ = succeed_after(&cb, &clock, FAST);
    assert_eq!(take(&log), ["success"]);
    // A slow-call duration set at run time turns it on too.
    cb.set_slow_call_duration(LIMIT).unwrap();
    let _ = succeed_after(&cb, &clock, SLOW);
    assert_eq!(take(&log), ["success", "slow 3s", "took 3s"]);
}

// ---- fail_if under a rate policy ----

#[test]
fn fail_if_counts_toward_the_failure_rate_and_the_tripping_value_is_returned() {
    for backend in BACKENDS {
        let (builder, _) = clocked_builder("slow-fail-if-rate", 5, 1);
        let cb = backend
            .storage(
                builder
                    .failure_rate(0.5)
                    .window_calls(4)
                    .min_calls(4)
                    .fail_if(|status: &u16| *status >= 500),
            )
            .build();
        for status in [200, 503, 200] {
            assert_eq!(cb.call(|| Ok::<u16, ()>(status)).unwrap(), status);
        }
        assert_eq!(cb.window().failures, 1, "{backend:?}");
        assert_eq!(cb.call(|| Ok::<u16, ()>(502)).unwrap(), 502, "{backend:?}");
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
        assert_eq!(cb.window().failures, 2);
    }
}

// ---- settings ----

#[test]
fn every_bad_value_is_a_typed_error() {
    let build = |b: CircuitBreakerBuilder| b.try_build().map(|_| ()).unwrap_err();
    let b = || CircuitBreaker::builder("slow-errors");
    assert_eq!(
        build(b().slow_call_duration(Duration::ZERO)),
        ConfigError::SlowCallDuration {
            value: Duration::ZERO
        }
    );
    for rate in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
        assert_eq!(
            build(b().slow_call_duration(LIMIT).slow_call_rate(rate)),
            ConfigError::SlowCallRate {
                value: Number::from(rate)
            },
            "{rate}"
        );
    }
    assert_eq!(
        build(b().slow_call_rate(0.5)),
        ConfigError::SlowCallRateWithoutDuration
    );
    let err = build(b().slow_call_duration(LIMIT).slow_call_rate(2.0));
    assert_eq!(
        err.to_string(),
        "slow_call_rate must be above 0 and at most 1, got 2"
    );
    assert_eq!(
        build(b().slow_call_duration(Duration::ZERO)).to_string(),
        "slow_call_duration must be above zero, got 0ns"
    );
}

#[test]
fn setters_change_the_policy_or_nothing() {
    let cb = CircuitBreaker::new("slow-setters");
    assert_eq!(cb.slow_call_duration(), None);
    assert_eq!(cb.slow_call_rate(), None);
    assert_eq!(
        cb.set_slow_call_rate(0.5),
        Err(ConfigError::SlowCallRateWithoutDuration)
    );
    assert_eq!(
        cb.set_slow_call_duration(Duration::ZERO),
        Err(ConfigError::SlowCallDuration {
            value: Duration::ZERO
        })
    );
    assert_eq!(cb.slow_call_duration(), None);
    cb.set_slow_call_duration(LIMIT).unwrap();
    assert_eq!(
        cb.set_slow_call_rate(f64::NAN),
        Err(ConfigError::SlowCallRate {
            value: Number::from(f64::NAN)
        })
    );
    assert_eq!(cb.slow_call_rate(), None);
    cb.set_slow_call_rate(0.25).unwrap();
    assert_eq!(
        (cb.slow_call_duration(), cb.slow_call_rate()),
        (Some(LIMIT), Some(0.25))
    );
    // The window started with the rate.
    let _ = cb.call(|| Ok::<_, ()>(()));
    assert_eq!(cb.window().calls, 1);
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

// ---- which reading of the clock times a call ----

/// A clock whose coarse reading moves on its own, lagging by up to 10 ms.
#[derive(Clone)]
struct TwoReadings {
    precise: ManualClock,
    coarse: ManualClock,
}

impl breaker::clock::Clock for TwoReadings {
    fn now(&self) -> Duration {
        self.precise.now()
    }
    fn now_coarse(&self) -> Duration {
        self.coarse.now()
    }
    fn coarse_lag(&self) -> Duration {
        Duration::from_millis(10)
    }
}

/// A call that takes 3 s on the precise reading and 1 s on the coarse one.
fn call_on_two_readings(cb: &CircuitBreaker, clock: &TwoReadings) {
    let _ = cb.call(|| {
        clock.precise.advance(Duration::from_secs(3));
        clock.coarse.advance(Duration::from_secs(1));
        Ok::<_, ()>(())
    });
}

#[test]
fn a_long_slow_call_duration_is_timed_on_the_coarse_reading_unless_durations_are_wanted() {
    let clock = TwoReadings {
        precise: ManualClock::new(),
        coarse: ManualClock::new(),
    };
    let (quiet, log) = durations(false);
    // 2 s is at least 100 times the 10 ms lag: the coarse reading (1 s).
    let cb = CircuitBreaker::builder("slow-coarse")
        .slow_call_duration(LIMIT)
        .clock(clock.clone())
        .listener(quiet)
        .build();
    call_on_two_readings(&cb, &clock);
    assert_eq!(take(&log), ["success", "took 1s"]);
    // A listener that wants durations: the precise reading (3 s, slow).
    let (wanting, _) = durations(true);
    cb.add_listener(Arc::new(wanting));
    call_on_two_readings(&cb, &clock);
    assert_eq!(take(&log), ["success", "slow 3s", "took 3s"]);
    // 500 ms is below 100 times the lag: the precise reading.
    let (quiet, log) = durations(false);
    let short = CircuitBreaker::builder("slow-precise")
        .slow_call_duration(Duration::from_millis(500))
        .clock(clock.clone())
        .listener(quiet)
        .build();
    call_on_two_readings(&short, &clock);
    assert_eq!(take(&log), ["success", "slow 3s", "took 3s"]);
}
