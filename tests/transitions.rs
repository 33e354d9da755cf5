//! The state machine seen through the public API: every transition, the
//! counters after each step, `opened_at` and `retry_after`, which
//! `breaker::Error` variant comes back, error messages, manual control,
//! setters and invalid settings. Time comes from a `ManualClock`: no test
//! sleeps.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::error::Error as StdError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use breaker::clock::ManualClock;
use breaker::{CircuitBreaker, CircuitBreakerError, ConfigError, Error, Reason, State};
use common::breakers::{breaker, fail, succeed, MINUTE};
use common::panics::panic_text;

/// Where `ManualClock::new()` stands: 10^9 s after the Unix epoch.
const T0: Duration = Duration::from_secs(1_000_000_000);
/// Fails until the circuit opens, checking that only the last failure trips.
fn trip(cb: &CircuitBreaker) {
    assert_eq!(cb.current_state(), State::Closed);
    let remaining = cb.fail_max() - cb.fail_counter();
    for _ in 1..remaining {
        assert!(matches!(fail(cb), Err(Error::Inner("boom"))));
    }
    assert!(matches!(fail(cb), Err(Error::Tripped(_, "boom"))));
    assert_eq!(cb.current_state(), State::Open);
}

fn at(since_epoch: Duration) -> Option<SystemTime> {
    Some(UNIX_EPOCH + since_epoch)
}

fn rejection<T: std::fmt::Debug, E: std::fmt::Debug>(
    r: Result<T, Error<E>>,
) -> CircuitBreakerError {
    match r {
        Err(Error::Open(e)) => e,
        other => panic!("expected Error::Open, got {other:?}"),
    }
}

fn tripped<T: std::fmt::Debug, E: std::fmt::Debug>(
    r: Result<T, Error<E>>,
) -> (CircuitBreakerError, E) {
    match r {
        Err(Error::Tripped(cbe, e)) => (cbe, e),
        other => panic!("expected Error::Tripped, got {other:?}"),
    }
}

// ---- defaults ----

#[test]
fn new_breaker_has_pybreaker_defaults_and_starts_closed() {
    let cb = CircuitBreaker::new("defaults");
    assert_eq!(cb.name(), "defaults");
    assert_eq!(cb.fail_max(), 5);
    assert_eq!(cb.reset_timeout(), MINUTE);
    assert_eq!(cb.success_threshold(), 1);
    assert!(cb.throw_new_error_on_trip());
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(cb.success_counter(), 0);
    assert_eq!(cb.opened_at(), None);
    // Default fail_max: four failures leave it closed, the fifth opens it.
    for _ in 0..4 {
        assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    }
    assert_eq!(cb.current_state(), State::Closed);
    assert!(matches!(fail(&cb), Err(Error::Tripped(_, "boom"))));
    assert_eq!(cb.current_state(), State::Open);
}

#[test]
fn builder_settings_are_kept() {
    let cb = CircuitBreaker::builder(String::from("owned-name"))
        .fail_max(9)
        .reset_timeout(Duration::from_millis(1_500))
        .success_threshold(4)
        .throw_new_error_on_trip(false)
        .build();
    assert_eq!(cb.name(), "owned-name");
    assert_eq!(cb.fail_max(), 9);
    assert_eq!(cb.reset_timeout(), Duration::from_millis(1_500));
    assert_eq!(cb.success_threshold(), 4);
    assert!(!cb.throw_new_error_on_trip());
}

// ---- closed ----

#[test]
fn closed_counts_failures_and_opens_at_fail_max() {
    let (cb, _clock) = breaker("closed-to-open", 3, 1);
    assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 1));
    assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 2));
    assert_eq!(cb.opened_at(), None);

    let (cbe, inner) = tripped(fail(&cb));
    assert_eq!(inner, "boom");
    assert_eq!(cbe.name(), "closed-to-open");
    assert_eq!(cbe.state(), State::Open);
    assert_eq!(cbe.reason(), Reason::FailureThreshold);
    assert_eq!(cbe.retry_after(), Some(MINUTE));

    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 3);
    assert_eq!(cb.success_counter(), 0);
    assert_eq!(cb.opened_at(), at(T0));
}

#[test]
fn a_success_in_closed_resets_the_fail_counter() {
    let (cb, _clock) = breaker("closed-success-resets", 3, 1);
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(succeed(&cb).unwrap(), 7);
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(cb.success_counter(), 0);
    // Consecutive failures count from zero again: two more do not open it.
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 2);
    assert!(fail(&cb).unwrap_err().is_tripped());
    assert_eq!(cb.current_state(), State::Open);
}

#[test]
fn fail_max_one_opens_on_the_first_failure() {
    let (cb, _clock) = breaker("fail-max-one", 1, 1);
    let (cbe, _) = tripped(fail(&cb));
    assert_eq!(cbe.reason(), Reason::FailureThreshold);
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 1);
}

// ---- open ----

#[test]
fn open_rejects_without_running_until_the_reset_timeout_has_passed() {
    let (cb, clock) = breaker("open-rejects", 2, 1);
    trip(&cb);

    let ran = Cell::new(false);
    let attempt = || {
        cb.call(|| {
            ran.set(true);
            Ok::<_, &str>(())
        })
    };

    let cbe = rejection(attempt());
    assert!(!ran.get());
    assert_eq!(cbe.name(), "open-rejects");
    assert_eq!(cbe.state(), State::Open);
    assert_eq!(cbe.reason(), Reason::TimeoutNotElapsed);
    assert_eq!(cbe.retry_after(), Some(MINUTE));

    clock.advance(Duration::from_secs(59));
    assert_eq!(
        rejection(attempt()).retry_after(),
        Some(Duration::from_secs(1))
    );
    clock.advance(Duration::from_millis(999));
    assert_eq!(
        rejection(attempt()).retry_after(),
        Some(Duration::from_millis(1))
    );
    clock.advance(Duration::from_nanos(999_999));
    assert_eq!(
        rejection(attempt()).retry_after(),
        Some(Duration::from_nanos(1))
    );
    assert!(!ran.get());

    // Rejections count as nothing.
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(cb.success_counter(), 0);
    assert_eq!(cb.opened_at(), at(T0));
    assert_eq!(cb.current_state(), State::Open);
}

#[test]
fn no_background_timer_moves_an_open_circuit() {
    let (cb, clock) = breaker("no-timer", 1, 1);
    trip(&cb);
    clock.advance(MINUTE * 10);
    // The timeout has long passed, but nothing happened without a call.
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.retry_after(), Some(Duration::ZERO));
    assert_eq!(cb.opened_at(), at(T0));
}

#[test]
fn first_call_after_the_timeout_runs_as_trial_and_its_success_closes() {
    let (cb, clock) = breaker("open-to-half-open", 2, 1);
    trip(&cb);
    clock.advance(MINUTE);

    let seen = Cell::new(None);
    let result = cb.call(|| {
        seen.set(Some((
            cb.current_state(),
            cb.fail_counter(),
            cb.opened_at(),
        )));
        Ok::<_, &str>("ran")
    });
    assert_eq!(result.unwrap(), "ran");
    // It ran as the trial, in half-open, counters kept from closed.
    assert_eq!(seen.get(), Some((State::HalfOpen, 2, at(T0))));

    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(cb.success_counter(), 0);
    assert_eq!(cb.opened_at(), None);
    assert_eq!(cb.retry_after(), None);
}

#[test]
fn half_open_rejects_other_calls_while_the_trial_runs() {
    let (cb, clock) = breaker("trial-in-flight", 1, 1);
    trip(&cb);
    clock.advance(MINUTE);

    let inner_ran = Cell::new(false);
    let nested = Cell::new(None);
    let outer = cb.call(|| {
        let r = cb.call(|| {
            inner_ran.set(true);
            Ok::<_, &str>(())
        });
        nested.set(Some(rejection(r)));
        Ok::<_, &str>(1)
    });
    assert_eq!(outer.unwrap(), 1);
    assert!(!inner_ran.get());

    let cbe = nested.take().unwrap();
    assert_eq!(cbe.name(), "trial-in-flight");
    assert_eq!(cbe.state(), State::HalfOpen);
    assert_eq!(cbe.reason(), Reason::TrialInProgress);
    assert_eq!(cbe.retry_after(), None);
    assert_eq!(
        cbe.to_string(),
        "circuit breaker 'trial-in-flight' is half-open: half-open trial in progress"
    );
    // The rejected call did not count; the trial's success closed the circuit.
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
}

#[test]
fn after_a_trial_finishes_the_next_call_is_the_next_trial() {
    let (cb, clock) = breaker("trial-place-freed", 1, 2);
    trip(&cb);
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::HalfOpen);
    // The first trial is over: the next call is admitted as a trial, and a
    // call nested inside it is rejected again.
    let nested = Cell::new(None);
    cb.call(|| {
        nested.set(Some(rejection(succeed(&cb)).reason()));
        Ok::<_, &str>(())
    })
    .unwrap();
    assert_eq!(nested.get(), Some(Reason::TrialInProgress));
    assert_eq!(cb.current_state(), State::Closed);
}

// ---- half-open ----

#[test]
fn success_threshold_three_needs_three_trial_successes() {
    let (cb, clock) = breaker("threshold-three", 2, 3);
    trip(&cb);
    clock.advance(MINUTE);

    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.success_counter(), 1);
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(cb.opened_at(), at(T0));

    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.success_counter(), 2);
    assert_eq!(cb.fail_counter(), 2);

    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.success_counter(), 0);
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(cb.opened_at(), None);
}

#[test]
fn a_trial_failure_opens_again_and_increments_the_fail_counter() {
    let (cb, clock) = breaker("half-open-to-open", 2, 1);
    trip(&cb);
    assert_eq!(cb.fail_counter(), 2);
    clock.advance(Duration::from_secs(61));

    let (cbe, inner) = tripped(fail(&cb));
    assert_eq!(inner, "boom");
    assert_eq!(cbe.state(), State::Open);
    assert_eq!(cbe.reason(), Reason::TrialFailed);
    assert_eq!(cbe.retry_after(), Some(MINUTE));
    assert_eq!(
        cbe.to_string(),
        "circuit breaker 'half-open-to-open' is open: trial call failed, next trial in 60s"
    );

    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 3);
    assert_eq!(cb.success_counter(), 0);
    // Reopened now: the timeout runs from the trial's failure.
    assert_eq!(cb.opened_at(), at(T0 + Duration::from_secs(61)));
    assert_eq!(rejection(succeed(&cb)).retry_after(), Some(MINUTE));
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
}

#[test]
fn a_trial_failure_after_some_trial_successes_resets_the_success_counter() {
    let (cb, clock) = breaker("partial-recovery", 1, 3);
    trip(&cb);
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    succeed(&cb).unwrap();
    assert_eq!(cb.success_counter(), 2);
    assert_eq!(cb.fail_counter(), 1);

    let (cbe, _) = tripped(fail(&cb));
    assert_eq!(cbe.reason(), Reason::TrialFailed);
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.success_counter(), 0);
    assert_eq!(cb.fail_counter(), 2);

    // The next recovery starts counting from zero.
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.success_counter(), 2);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

// ---- opened_at and retry_after ----

#[test]
fn opened_at_comes_from_the_injected_clock_rounded_up_to_the_millisecond() {
    let clock = ManualClock::starting_at(T0 + Duration::from_nanos(1_234_500));
    let cb = CircuitBreaker::builder("rounding")
        .fail_max(1)
        .reset_timeout(MINUTE)
        .clock(clock.clone())
        .build();
    fail(&cb).unwrap_err();
    assert_eq!(cb.opened_at(), at(T0 + Duration::from_millis(2)));

    // The trial may start only once reset_timeout has passed since opened_at;
    // what a caller is told never exceeds the open period.
    let cbe = rejection(succeed(&cb));
    assert_eq!(cbe.retry_after(), Some(MINUTE));
    assert_eq!(cb.retry_after(), Some(MINUTE));
    assert_eq!(
        cbe.to_string(),
        "circuit breaker 'rounding' is open: timeout not elapsed yet, next trial in 60s"
    );
    clock.advance(MINUTE);
    let cbe = rejection(succeed(&cb));
    assert_eq!(cbe.retry_after(), Some(Duration::from_nanos(765_500)));
    assert!(cbe.to_string().ends_with(", next trial in 1ms"), "{cbe}");
    clock.advance(Duration::from_nanos(765_499));
    assert_eq!(
        rejection(succeed(&cb)).retry_after(),
        Some(Duration::from_nanos(1))
    );
    clock.advance(Duration::from_nanos(1));
    assert_eq!(succeed(&cb).unwrap(), 7);
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn the_tripped_errors_retry_after_never_exceeds_the_open_period() {
    // Off a millisecond boundary the circuit opens at the next millisecond,
    // so the trial is never early. The tripped error's retry_after never
    // exceeds the open period: a caller that waits it may be told, once,
    // to wait the rest of that millisecond.
    let clock = ManualClock::starting_at(T0 + Duration::from_nanos(1_234_500));
    let cb = CircuitBreaker::builder("tripped-retry-after")
        .fail_max(1)
        .reset_timeout(MINUTE)
        .clock(clock.clone())
        .build();
    let (cbe, _) = tripped(fail(&cb));
    let wait = cbe.retry_after().unwrap();
    assert_eq!(wait, MINUTE);
    clock.advance(wait);
    let rest = rejection(succeed(&cb)).retry_after().unwrap();
    assert_eq!(rest, Duration::from_nanos(765_500));
    clock.advance(rest);
    assert_eq!(succeed(&cb).unwrap(), 7);
}

#[test]
fn retry_after_never_exceeds_the_open_period_on_the_system_clock() {
    // Tripped and asked at once: the opening time's round-up to the
    // millisecond and the coarse clock's lag used to show through (60.0007 s
    // for a 60 s period). The memory storage decides rejections on the
    // coarse clock, a custom storage from a snapshot on the precise one.
    for storage in ["memory", "custom"] {
        let builder = CircuitBreaker::builder("retry-after-clamp")
            .fail_max(1)
            .reset_timeout(MINUTE);
        let cb = match storage {
            "memory" => builder.build(),
            _ => builder.storage(common::LockedStorage::default()).build(),
        };
        let (tripped_error, _) = tripped(fail(&cb));
        assert!(tripped_error.retry_after().unwrap() <= MINUTE, "{storage}");
        let rejected = rejection(succeed(&cb));
        assert!(rejected.retry_after().unwrap() <= MINUTE, "{storage}");
        assert!(cb.retry_after().unwrap() <= MINUTE, "{storage}");
    }
}

#[test]
fn rejections_report_the_exact_time_left() {
    let (cb, clock) = breaker("exact-retry-after", 1, 1);
    cb.set_reset_timeout(Duration::from_secs(30));
    fail(&cb).unwrap_err();
    clock.advance(Duration::from_millis(12_345));
    let cbe = rejection(succeed(&cb));
    assert_eq!(cbe.retry_after(), Some(Duration::from_millis(17_655)));
    assert_eq!(cb.retry_after(), Some(Duration::from_millis(17_655)));
    assert_eq!(
        cbe.to_string(),
        "circuit breaker 'exact-retry-after' is open: timeout not elapsed yet, next trial in 17.655s"
    );
}

// ---- which Error variant ----

#[test]
fn throw_new_error_on_trip_false_returns_inner_on_the_tripping_failure() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("no-throw")
        .fail_max(2)
        .reset_timeout(MINUTE)
        .throw_new_error_on_trip(false)
        .clock(clock.clone())
        .build();
    assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    // This failure opens the circuit, and still comes back as Inner.
    assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    assert_eq!(cb.current_state(), State::Open);
    assert!(rejection(succeed(&cb)).retry_after().is_some());

    // So does a failed trial.
    clock.advance(MINUTE);
    assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 3);

    // Switched on at run time, the next trip is reported.
    cb.set_throw_new_error_on_trip(true);
    assert!(cb.throw_new_error_on_trip());
    clock.advance(MINUTE);
    let (cbe, _) = tripped(fail(&cb));
    assert_eq!(cbe.reason(), Reason::TrialFailed);
}

#[test]
fn set_throw_new_error_on_trip_false_applies_to_the_next_trip() {
    let (cb, _clock) = breaker("no-throw-later", 1, 1);
    cb.set_throw_new_error_on_trip(false);
    assert!(!cb.throw_new_error_on_trip());
    assert!(matches!(fail(&cb), Err(Error::Inner("boom"))));
    assert_eq!(cb.current_state(), State::Open);
}

#[test]
fn each_outcome_comes_back_as_its_variant() {
    let (cb, _clock) = breaker("variants", 2, 1);
    let inner = fail(&cb).unwrap_err();
    assert!(matches!(inner, Error::Inner("boom")));
    assert!(!inner.is_open() && !inner.is_tripped());
    assert!(inner.breaker_error().is_none());

    let tripping = fail(&cb).unwrap_err();
    assert!(tripping.is_tripped() && !tripping.is_open());
    assert_eq!(
        tripping.breaker_error().unwrap().reason(),
        Reason::FailureThreshold
    );

    let open = succeed(&cb).unwrap_err();
    assert!(open.is_open() && !open.is_tripped());
    assert_eq!(
        open.breaker_error().unwrap().reason(),
        Reason::TimeoutNotElapsed
    );
    assert!(open.inner().is_none());
}

// ---- messages and the error types ----

#[test]
fn circuit_breaker_error_messages_name_the_breaker_state_and_reason() {
    let (cb, _clock) = breaker("messages", 1, 1);
    let tripping = fail(&cb).unwrap_err();
    assert_eq!(
        tripping.breaker_error().unwrap().to_string(),
        "circuit breaker 'messages' is open: failures threshold reached, next trial in 60s"
    );
    assert_eq!(
        tripping.to_string(),
        "circuit breaker 'messages' is open: failures threshold reached, next trial in 60s (after: boom)"
    );
    let open = succeed(&cb).unwrap_err();
    assert_eq!(
        open.to_string(),
        "circuit breaker 'messages' is open: timeout not elapsed yet, next trial in 60s"
    );
    assert_eq!(open.to_string(), open.breaker_error().unwrap().to_string());
}

#[test]
fn reasons_have_their_documented_text() {
    assert_eq!(
        Reason::TimeoutNotElapsed.to_string(),
        "timeout not elapsed yet"
    );
    assert_eq!(
        Reason::FailureThreshold.to_string(),
        "failures threshold reached"
    );
    assert_eq!(Reason::TrialFailed.to_string(), "trial call failed");
    assert_eq!(
        Reason::TrialInProgress.to_string(),
        "half-open trial in progress"
    );
}

#[test]
fn circuit_breaker_error_is_a_cloneable_thread_safe_error() {
    fn assert_traits<T: StdError + Send + Sync + Clone + 'static>() {}
    assert_traits::<CircuitBreakerError>();

    let (cb, _clock) = breaker("cloned", 1, 1);
    fail(&cb).unwrap_err();
    let cbe = rejection(succeed(&cb));
    let copy = cbe.clone();
    drop(cb);
    assert_eq!(copy.name(), "cloned");
    assert_eq!(copy.state(), State::Open);
    assert_eq!(copy.reason(), Reason::TimeoutNotElapsed);
    assert_eq!(copy.retry_after(), Some(MINUTE));
    assert_eq!(copy.to_string(), cbe.to_string());
    assert!(copy.source().is_none());
    // Usable as a boxed error across threads.
    let boxed: Box<dyn StdError + Send + Sync> = Box::new(copy);
    let text = std::thread::spawn(move || boxed.to_string())
        .join()
        .unwrap();
    assert!(text.starts_with("circuit breaker 'cloned' is open"));
}

#[test]
fn state_displays_and_parses_its_three_names() {
    let names = [
        (State::Closed, "closed"),
        (State::Open, "open"),
        (State::HalfOpen, "half-open"),
    ];
    for (state, name) in names {
        assert_eq!(state.to_string(), name);
        assert_eq!(name.parse::<State>().unwrap(), state);
    }
    // Display honours width and alignment.
    assert_eq!(format!("[{:>9}]", State::Open), "[     open]");
    assert_eq!(format!("[{:<6}]", State::Closed), "[closed]");
}

#[test]
fn state_parse_error_lists_the_valid_states() {
    let err = "foo".parse::<State>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown state 'foo', valid states: closed, open, half-open"
    );
    assert_eq!(err.input(), "foo");
    for bad in [
        "",
        "Open",
        "CLOSED",
        "half_open",
        "halfopen",
        " open",
        "open ",
    ] {
        let err = bad.parse::<State>().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unknown state '{bad}', valid states: closed, open, half-open")
        );
    }
}

#[test]
fn state_is_copy_eq_hash_debug() {
    fn assert_traits<T: Copy + Eq + std::hash::Hash + std::fmt::Debug>() {}
    assert_traits::<State>();
    let set: HashSet<State> = [State::Closed, State::Open, State::HalfOpen, State::Open]
        .into_iter()
        .collect();
    assert_eq!(set.len(), 3);
    assert_eq!(format!("{:?}", State::HalfOpen), "HalfOpen");
    let s = State::Open;
    let t = s; // Copy: both usable.
    assert_eq!(s, t);
}

#[derive(Debug, PartialEq)]
struct Cause;

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk on fire")
    }
}

impl StdError for Cause {}

#[derive(Debug, PartialEq)]
struct QueryFailed(Cause);

impl std::fmt::Display for QueryFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("query failed")
    }
}

impl StdError for QueryFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn error_into_inner_is_open_display_and_source() {
    fn assert_error<T: StdError + Send + Sync + 'static>() {}
    assert_error::<Error<QueryFailed>>();

    let (cb, _clock) = breaker("error-api", 2, 1);
    let q = || cb.call(|| Err::<(), _>(QueryFailed(Cause)));

    // Inner: displays as the error itself; transparent, so its source is the
    // error's own source.
    let inner = q().unwrap_err();
    assert!(!inner.is_open());
    assert_eq!(inner.to_string(), "query failed");
    assert_eq!(inner.source().unwrap().to_string(), "disk on fire");
    assert!(inner.source().unwrap().downcast_ref::<Cause>().is_some());
    assert_eq!(inner.into_inner(), Some(QueryFailed(Cause)));

    // Tripped: the breaker's message, with the error as its source.
    let tripping = q().unwrap_err();
    assert!(!tripping.is_open());
    assert_eq!(
        tripping.to_string(),
        "circuit breaker 'error-api' is open: failures threshold reached, next trial in 60s (after: query failed)"
    );
    let source = tripping.source().unwrap();
    assert_eq!(
        source.downcast_ref::<QueryFailed>(),
        Some(&QueryFailed(Cause))
    );
    assert_eq!(source.source().unwrap().to_string(), "disk on fire");
    assert_eq!(tripping.into_inner(), Some(QueryFailed(Cause)));

    // Open: the call did not run, no inner error, no source.
    let open = q().unwrap_err();
    assert!(open.is_open());
    assert!(open.source().is_none());
    assert_eq!(
        open.to_string(),
        "circuit breaker 'error-api' is open: timeout not elapsed yet, next trial in 60s"
    );
    assert_eq!(open.into_inner(), None);
}

#[test]
fn error_debug_shows_the_variant() {
    let (cb, _clock) = breaker("error-debug", 1, 1);
    let tripped = format!("{:?}", fail(&cb).unwrap_err());
    assert!(
        tripped.starts_with("Tripped(CircuitBreakerError {"),
        "{tripped}"
    );
    assert!(tripped.contains("name: \"error-debug\""), "{tripped}");
    assert!(tripped.ends_with(", \"boom\")"), "{tripped}");
    let open = format!("{:?}", succeed(&cb).unwrap_err());
    assert!(open.starts_with("Open(CircuitBreakerError {"), "{open}");
    assert!(open.contains("reason: TimeoutNotElapsed"), "{open}");
    cb.reset();
    assert_eq!(
        format!("{:?}", fail(&cb).unwrap_err()),
        "Tripped(CircuitBreakerError { name: \"error-debug\", state: Open, \
         reason: FailureThreshold, retry_after: Some(60s) }, \"boom\")"
    );
}

#[test]
fn error_map_inner_keeps_the_variant() {
    let (cb, _clock) = breaker("map-inner", 2, 1);
    let inner = fail(&cb).unwrap_err().map_inner(str::len);
    assert!(matches!(inner, Error::Inner(4)));
    let tripping = fail(&cb).unwrap_err().map_inner(str::len);
    assert!(matches!(tripping, Error::Tripped(_, 4)));
    let open = succeed(&cb).unwrap_err().map_inner(str::len);
    assert!(open.is_open());
}

// ---- manual control ----

#[test]
fn open_keeps_the_fail_counter_and_stamps_opened_at() {
    let (cb, clock) = breaker("manual-open", 5, 1);
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    clock.advance(Duration::from_secs(5));
    cb.open();
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(cb.success_counter(), 0);
    assert_eq!(cb.opened_at(), at(T0 + Duration::from_secs(5)));
    let cbe = rejection(succeed(&cb));
    assert_eq!(cbe.reason(), Reason::TimeoutNotElapsed);
    assert_eq!(cbe.retry_after(), Some(MINUTE));
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn open_while_open_enters_open_anew() {
    let (cb, clock) = breaker("reopen", 1, 1);
    trip(&cb);
    clock.advance(Duration::from_secs(30));
    cb.open();
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.opened_at(), at(T0 + Duration::from_secs(30)));
    assert_eq!(rejection(succeed(&cb)).retry_after(), Some(MINUTE));
    assert_eq!(cb.fail_counter(), 1);
}

#[test]
fn half_open_makes_the_next_call_a_trial() {
    let (cb, _clock) = breaker("manual-half-open", 3, 1);
    fail(&cb).unwrap_err();
    cb.half_open();
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.fail_counter(), 1);
    assert_eq!(cb.success_counter(), 0);
    // The next call is the trial: one nested inside it is rejected, and its
    // failure opens the circuit, counting one more failure.
    let nested = Cell::new(None);
    let r = cb.call(|| {
        nested.set(Some(rejection(succeed(&cb)).reason()));
        Err::<(), _>("boom")
    });
    assert_eq!(nested.get(), Some(Reason::TrialInProgress));
    let (cbe, _) = tripped(r);
    assert_eq!(cbe.reason(), Reason::TrialFailed);
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 2);
}

#[test]
fn entering_open_or_half_open_resets_only_the_success_counter() {
    let (cb, clock) = breaker("manual-counters", 2, 3);
    trip(&cb);
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!((cb.success_counter(), cb.fail_counter()), (1, 2));

    cb.half_open(); // entered anew: success_counter back to zero
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!((cb.success_counter(), cb.fail_counter()), (0, 2));

    succeed(&cb).unwrap();
    assert_eq!((cb.success_counter(), cb.fail_counter()), (1, 2));
    cb.open();
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!((cb.success_counter(), cb.fail_counter()), (0, 2));
}

#[test]
fn close_and_reset_zero_both_counters() {
    let (cb, clock) = breaker("manual-close", 2, 3);
    trip(&cb);
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!((cb.success_counter(), cb.fail_counter()), (1, 2));
    cb.close();
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!((cb.success_counter(), cb.fail_counter()), (0, 0));
    assert_eq!(cb.opened_at(), None);

    fail(&cb).unwrap_err();
    assert_eq!(cb.fail_counter(), 1);
    cb.close(); // closed to closed: still resets
    assert_eq!(cb.fail_counter(), 0);

    trip(&cb);
    cb.reset();
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!((cb.success_counter(), cb.fail_counter()), (0, 0));
    assert_eq!(cb.opened_at(), None);
    // Fully closed again: fail_max failures are needed to open it.
    assert!(matches!(fail(&cb), Err(Error::Inner(_))));
    assert!(matches!(fail(&cb), Err(Error::Tripped(..))));

    cb.half_open();
    cb.reset();
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
}

// ---- results of calls admitted before a manual transition ----

#[test]
fn a_failure_admitted_before_reset_is_ignored() {
    let (cb, _clock) = breaker("stale-failure", 1, 1);
    let r = cb.call(|| {
        cb.reset();
        Err::<(), _>("boom")
    });
    // Without the reset this failure would have tripped the circuit.
    assert!(matches!(r, Err(Error::Inner("boom"))));
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
}

#[test]
fn a_success_admitted_before_reset_does_not_touch_the_new_counters() {
    let (cb, _clock) = breaker("stale-success", 3, 1);
    fail(&cb).unwrap_err();
    let r = cb.call(|| {
        cb.close();
        fail(&cb).unwrap_err(); // admitted after the transition: counts
        Ok::<_, &str>(1)
    });
    assert_eq!(r.unwrap(), 1);
    // The outer success belongs to the old generation: it must not reset the
    // failure counted after the close.
    assert_eq!(cb.fail_counter(), 1);
}

#[test]
fn a_success_admitted_before_open_does_not_close() {
    let (cb, _clock) = breaker("stale-open", 3, 1);
    let r = cb.call(|| {
        cb.open();
        Ok::<_, &str>(5)
    });
    assert_eq!(r.unwrap(), 5);
    assert_eq!(cb.current_state(), State::Open);
    assert!(succeed(&cb).unwrap_err().is_open());
}

#[test]
fn a_failure_admitted_before_open_is_not_counted() {
    let (cb, _clock) = breaker("stale-open-failure", 3, 1);
    fail(&cb).unwrap_err();
    let r = cb.call(|| {
        cb.open();
        Err::<(), _>("boom")
    });
    assert!(matches!(r, Err(Error::Inner("boom"))));
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 1);
}

#[test]
fn a_trial_result_after_a_manual_transition_is_ignored() {
    let (cb, clock) = breaker("stale-trial", 1, 1);
    trip(&cb);
    clock.advance(MINUTE);
    // The trial closes the circuit by hand, then fails: the circuit stays closed.
    let r = cb.call(|| {
        cb.close();
        Err::<(), _>("boom")
    });
    assert!(matches!(r, Err(Error::Inner("boom"))));
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);

    trip(&cb);
    clock.advance(MINUTE);
    // The trial opens the circuit by hand, then succeeds: it stays open.
    cb.call(|| {
        cb.open();
        Ok::<_, &str>(())
    })
    .unwrap();
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.opened_at(), at(T0 + MINUTE * 2));

    clock.advance(MINUTE);
    // The trial re-enters half-open by hand, then succeeds: it is no longer the
    // trial, so the circuit stays half-open and the next call is a trial.
    cb.call(|| {
        cb.half_open();
        Ok::<_, &str>(())
    })
    .unwrap();
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.success_counter(), 0);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

// ---- setters ----

#[test]
fn set_fail_max_applies_from_the_next_failure() {
    let (cb, _clock) = breaker("set-fail-max", 5, 1);
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    cb.set_fail_max(3).unwrap();
    assert_eq!(cb.fail_max(), 3);
    assert!(fail(&cb).unwrap_err().is_tripped());
    assert_eq!(cb.fail_counter(), 3);

    // Lowered below the current count, the next failure opens.
    cb.reset();
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    cb.set_fail_max(1).unwrap();
    assert!(fail(&cb).unwrap_err().is_tripped());
    assert_eq!(cb.current_state(), State::Open);

    // Raised, more failures are needed.
    cb.reset();
    cb.set_fail_max(4).unwrap();
    for _ in 0..3 {
        assert!(matches!(fail(&cb), Err(Error::Inner(_))));
    }
    assert!(fail(&cb).unwrap_err().is_tripped());
}

#[test]
fn set_fail_max_rejects_out_of_range_values_and_changes_nothing() {
    let (cb, _clock) = breaker("set-fail-max-bad", 2, 1);
    assert_eq!(cb.set_fail_max(0), Err(ConfigError::FailMax { value: 0 }));
    assert_eq!(cb.fail_max(), 2);
    assert_eq!(
        cb.set_fail_max(65_536),
        Err(ConfigError::FailMax { value: 65_536 })
    );
    assert_eq!(cb.fail_max(), 2);
    assert_eq!(
        cb.set_fail_max(0).unwrap_err().to_string(),
        "fail_max must be between 1 and 65535, got 0"
    );
    // Behaviour unchanged: still two failures to open.
    assert!(matches!(fail(&cb), Err(Error::Inner(_))));
    assert!(fail(&cb).unwrap_err().is_tripped());
    // The largest value is accepted.
    cb.set_fail_max(65_535).unwrap();
    assert_eq!(cb.fail_max(), 65_535);
}

#[test]
fn set_success_threshold_applies_to_the_next_trial() {
    let (cb, clock) = breaker("set-threshold", 1, 1);
    cb.set_success_threshold(2).unwrap();
    assert_eq!(cb.success_threshold(), 2);
    trip(&cb);
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.success_counter(), 1);
    // Lowered to what has been counted: the next trial success closes.
    cb.set_success_threshold(1).unwrap();
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn set_success_threshold_rejects_out_of_range_values_and_changes_nothing() {
    let (cb, clock) = breaker("set-threshold-bad", 1, 2);
    assert_eq!(
        cb.set_success_threshold(0),
        Err(ConfigError::SuccessThreshold { value: 0 })
    );
    assert_eq!(
        cb.set_success_threshold(256),
        Err(ConfigError::SuccessThreshold { value: 256 })
    );
    assert_eq!(
        cb.set_success_threshold(0).unwrap_err().to_string(),
        "success_threshold must be between 1 and 255, got 0"
    );
    assert_eq!(cb.success_threshold(), 2);
    trip(&cb);
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::HalfOpen);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn set_reset_timeout_times_the_next_trial_of_an_open_circuit() {
    let (cb, clock) = breaker("set-reset-timeout", 1, 1);
    trip(&cb);
    cb.set_reset_timeout(Duration::from_secs(10));
    assert_eq!(cb.reset_timeout(), Duration::from_secs(10));
    assert_eq!(
        rejection(succeed(&cb)).retry_after(),
        Some(Duration::from_secs(10))
    );
    clock.advance(Duration::from_secs(10));
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);

    // Lengthened: the same circuit now waits longer.
    cb.set_reset_timeout(Duration::from_secs(120));
    let (cbe, _) = tripped(fail(&cb));
    assert_eq!(cbe.retry_after(), Some(Duration::from_secs(120)));
    clock.advance(MINUTE);
    assert_eq!(rejection(succeed(&cb)).retry_after(), Some(MINUTE));
}

// ---- invalid settings ----

#[test]
fn try_build_reports_invalid_settings() {
    let err = CircuitBreaker::builder("bad")
        .fail_max(0)
        .try_build()
        .unwrap_err();
    assert_eq!(err, ConfigError::FailMax { value: 0 });
    assert_eq!(
        err.to_string(),
        "fail_max must be between 1 and 65535, got 0"
    );

    let err = CircuitBreaker::builder("bad")
        .success_threshold(0)
        .try_build()
        .unwrap_err();
    assert_eq!(err, ConfigError::SuccessThreshold { value: 0 });
    assert_eq!(
        err.to_string(),
        "success_threshold must be between 1 and 255, got 0"
    );

    assert_eq!(
        CircuitBreaker::builder("bad")
            .fail_max(1 << 16)
            .try_build()
            .unwrap_err(),
        ConfigError::FailMax { value: 1 << 16 }
    );
    assert_eq!(
        CircuitBreaker::builder("bad")
            .success_threshold(1 << 8)
            .try_build()
            .unwrap_err(),
        ConfigError::SuccessThreshold { value: 1 << 8 }
    );

    let ok = CircuitBreaker::builder("limits")
        .fail_max((1 << 16) - 1)
        .success_threshold((1 << 8) - 1)
        .try_build()
        .unwrap();
    assert_eq!(ok.fail_max(), (1 << 16) - 1);
    assert_eq!(ok.success_threshold(), (1 << 8) - 1);
}

#[test]
#[should_panic(expected = "fail_max must be between 1 and 65535, got 0")]
fn build_panics_on_fail_max_zero() {
    let _ = CircuitBreaker::builder("bad").fail_max(0).build();
}

#[test]
#[should_panic(expected = "success_threshold must be between 1 and 255, got 0")]
fn build_panics_on_success_threshold_zero() {
    let _ = CircuitBreaker::builder("bad").success_threshold(0).build();
}

#[test]
fn build_panics_with_the_message_of_try_builds_error() {
    let expected = CircuitBreaker::builder("bad")
        .fail_max(0)
        .try_build()
        .unwrap_err()
        .to_string();
    let panic = catch_unwind(|| CircuitBreaker::builder("bad").fail_max(0).build()).unwrap_err();
    assert_eq!(panic_text(&*panic), expected);
}

// ---- panics in the guarded function ----

fn panicking(cb: &CircuitBreaker, msg: &'static str) -> Box<dyn std::any::Any + Send> {
    catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| -> Result<(), &'static str> { panic!("{}", msg) })
    }))
    .expect_err("the guarded function's panic must reach the caller")
}

#[test]
fn a_panic_counts_as_a_failure_and_continues() {
    let (cb, _clock) = breaker("panics", 2, 1);
    succeed(&cb).unwrap();
    let payload = panicking(&cb, "kaboom");
    assert_eq!(panic_text(&*payload), "kaboom");
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 1);

    // The second one reaches fail_max: the circuit opens, the panic continues.
    let payload = panicking(&cb, "again");
    assert_eq!(panic_text(&*payload), "again");
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(rejection(succeed(&cb)).reason(), Reason::TimeoutNotElapsed);
}

#[test]
fn a_panicking_trial_opens_the_circuit_again() {
    let (cb, clock) = breaker("panicking-trial", 1, 1);
    trip(&cb);
    clock.advance(MINUTE);
    let payload = panicking(&cb, "trial panicked");
    assert_eq!(panic_text(&*payload), "trial panicked");
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(cb.opened_at(), at(T0 + MINUTE));
    // The trial place was not left taken: after the timeout a new trial runs.
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn a_panic_with_a_non_string_payload_is_a_failure_too() {
    let (cb, _clock) = breaker("panic-any", 1, 1);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| -> Result<(), &'static str> { std::panic::panic_any(42_u8) })
    }))
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<u8>(), Some(&42));
    assert_eq!(cb.current_state(), State::Open);
}
