//! The rate-policy keys of the attribute (`failure_rate`, `window_calls`,
//! `window_time`, `min_calls`) reach the declared breaker, the breaker trips
//! on the rate, and two attributes naming one breaker must agree on them.
//! (A test binary of its own: its declarations are this process's registry.)

use std::panic::catch_unwind;
use std::sync::OnceLock;
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::registry::{self, RegistryError};
use breaker::storage::WindowShape;
use breaker::{circuit_breaker, CircuitBreakerError, State};

#[derive(Debug, PartialEq)]
enum Down {
    Failed,
    Rejected,
}

impl From<CircuitBreakerError> for Down {
    fn from(_: CircuitBreakerError) -> Self {
        Down::Rejected
    }
}

fn outcome(fail: bool) -> Result<u32, Down> {
    match fail {
        true => Err(Down::Failed),
        false => Ok(1),
    }
}

#[circuit_breaker(
    name = "rate-calls",
    failure_rate = 0.5,
    window_calls = 10,
    min_calls = 4
)]
fn by_calls(fail: bool) -> Result<u32, Down> {
    outcome(fail)
}

fn test_clock() -> ManualClock {
    static CLOCK: OnceLock<ManualClock> = OnceLock::new();
    CLOCK.get_or_init(ManualClock::new).clone()
}

#[circuit_breaker(
    name = "rate-time",
    failure_rate = 0.25,
    window_time = "10s",
    min_calls = 20,
    clock = test_clock
)]
fn by_time(fail: bool) -> Result<u32, Down> {
    outcome(fail)
}

// Settings that agree merge: the rate on one, the window on the other.
#[circuit_breaker(name = "rate-shared", failure_rate = 0.5)]
fn shared_rate() -> Result<u32, Down> {
    Ok(1)
}

#[circuit_breaker(name = "rate-shared", window_calls = 20, min_calls = 5)]
fn shared_window() -> Result<u32, Down> {
    Ok(2)
}

// Settings that disagree fail their name alone.
#[circuit_breaker(name = "rate-conflict", failure_rate = 0.5)]
fn rate_a() -> Result<u32, Down> {
    Ok(1)
}

#[circuit_breaker(name = "rate-conflict", failure_rate = 0.75)]
fn rate_b() -> Result<u32, Down> {
    Ok(2)
}

#[circuit_breaker(name = "window-conflict", failure_rate = 0.5, window_calls = 50)]
fn window_a() -> Result<u32, Down> {
    Ok(1)
}

#[circuit_breaker(name = "window-conflict", window_time = "1m")]
fn window_b() -> Result<u32, Down> {
    Ok(2)
}

#[circuit_breaker(name = "min-calls-conflict", failure_rate = 0.5, min_calls = 5)]
fn min_calls_a() -> Result<u32, Down> {
    Ok(1)
}

#[circuit_breaker(name = "min-calls-conflict", min_calls = 6)]
fn min_calls_b() -> Result<u32, Down> {
    Ok(2)
}

#[test]
fn the_rate_keys_configure_the_declared_breaker() {
    let cb = registry::get("rate-calls");
    assert_eq!(cb.failure_rate(), Some(0.5));
    assert_eq!(cb.window_shape(), WindowShape::Calls(10));
    assert_eq!(cb.min_calls(), 4);
    let cb = registry::get("rate-time");
    assert_eq!(cb.failure_rate(), Some(0.25));
    assert_eq!(
        cb.window_shape(),
        WindowShape::Time(Duration::from_secs(10))
    );
    assert_eq!(cb.min_calls(), 20);
}

#[test]
fn agreeing_declarations_merge_their_rate_keys() {
    assert_eq!((shared_rate(), shared_window()), (Ok(1), Ok(2)));
    let cb = registry::get("rate-shared");
    assert_eq!(cb.failure_rate(), Some(0.5));
    assert_eq!(cb.window_shape(), WindowShape::Calls(20));
    assert_eq!(cb.min_calls(), 5);
}

#[test]
fn a_declared_breaker_opens_on_the_failure_rate() {
    let cb = registry::get("rate-calls");
    // Never two failures in a row: a consecutive count would stay at 1.
    assert_eq!(by_calls(false), Ok(1));
    assert_eq!(by_calls(true), Err(Down::Failed));
    assert_eq!(by_calls(false), Ok(1));
    assert_eq!(cb.current_state(), State::Closed);
    // 2 failures in 4 calls: the failure that makes the rate hold trips it
    // and, with `throw_new_error_on_trip` on, returns the breaker's error.
    assert_eq!(by_calls(true), Err(Down::Rejected));
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(by_calls(false), Err(Down::Rejected), "rejected");
}

#[test]
fn a_declared_time_window_forgets_calls_on_its_clock() {
    let cb = registry::get("rate-time");
    let clock = test_clock();
    // 19 calls, 4 failed: below min_calls, not decided.
    for _ in 0..15 {
        assert_eq!(by_time(false), Ok(1));
    }
    for _ in 0..4 {
        assert_eq!(by_time(true), Err(Down::Failed));
    }
    assert_eq!(cb.window().calls, 19);
    // Ten seconds on, the window has forgotten them: one more failure would
    // have made 5 of 20 (the rate) without the expiry.
    clock.advance(Duration::from_secs(10));
    assert_eq!(by_time(true), Err(Down::Failed));
    assert_eq!((cb.window().calls, cb.window().failures), (1, 1));
    assert_eq!(cb.current_state(), State::Closed);
    // 20 calls in the window, 5 failed: 0.25 trips it on the last one.
    for _ in 0..15 {
        assert_eq!(by_time(false), Ok(1));
    }
    for _ in 0..3 {
        assert_eq!(by_time(true), Err(Down::Failed));
    }
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(by_time(true), Err(Down::Rejected));
    assert_eq!(cb.current_state(), State::Open);
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn declarations_that_disagree_on_a_rate_key_fail_their_name_alone() {
    for (name, call, message) in [
        (
            "rate-conflict",
            rate_a as fn() -> Result<u32, Down>,
            "conflicting settings for circuit breaker 'rate-conflict': failure_rate = 0.5 on \
             rates::rate_a but failure_rate = 0.75 on rates::rate_b",
        ),
        (
            "window-conflict",
            window_b,
            "conflicting settings for circuit breaker 'window-conflict': window = window_calls \
             = 50 on rates::window_a but window = window_time = 60s on rates::window_b",
        ),
        (
            "min-calls-conflict",
            min_calls_b,
            "conflicting settings for circuit breaker 'min-calls-conflict': min_calls = 5 on \
             rates::min_calls_a but min_calls = 6 on rates::min_calls_b",
        ),
    ] {
        assert_eq!(panic_text(&*catch_unwind(call).unwrap_err()), message);
        assert!(registry::try_get(name).is_none());
    }
    let names: Vec<String> = registry::declaration_errors()
        .into_iter()
        .map(|e| match e {
            RegistryError::Declaration { name, .. } => name,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "min-calls-conflict",
            "rate-conflict",
            "slow-conflict",
            "window-conflict"
        ]
    );
    // The others of each pair fail the same way.
    for call in [rate_b as fn() -> Result<u32, Down>, window_a, min_calls_a] {
        assert!(catch_unwind(call).is_err());
    }
}

// Slow calls: a call that took longer than `slow_call_duration` is slow;
// `slow_call_rate` opens the circuit on their share of the window.
fn slow_clock() -> ManualClock {
    static CLOCK: OnceLock<ManualClock> = OnceLock::new();
    CLOCK.get_or_init(ManualClock::new).clone()
}

#[circuit_breaker(
    name = "slow-calls",
    slow_call_duration = "2s",
    slow_call_rate = 0.5,
    window_calls = 10,
    min_calls = 4,
    clock = slow_clock
)]
fn maybe_slow(slow: bool) -> Result<u32, Down> {
    if slow {
        slow_clock().advance(Duration::from_secs(3));
    }
    Ok(1)
}

#[circuit_breaker(name = "slow-conflict", slow_call_duration = "2s")]
fn slow_a() -> Result<u32, Down> {
    Ok(1)
}

#[circuit_breaker(name = "slow-conflict", slow_call_duration = "3s")]
fn slow_b() -> Result<u32, Down> {
    Ok(2)
}

#[test]
fn the_slow_call_keys_configure_the_declared_breaker() {
    let cb = registry::get("slow-calls");
    assert_eq!(cb.slow_call_duration(), Some(Duration::from_secs(2)));
    assert_eq!(cb.slow_call_rate(), Some(0.5));
}

#[test]
fn a_declared_breaker_opens_on_the_slow_call_rate() {
    let cb = registry::get("slow-calls");
    assert_eq!(maybe_slow(false), Ok(1));
    assert_eq!(maybe_slow(true), Ok(1));
    assert_eq!(maybe_slow(false), Ok(1));
    assert_eq!(cb.current_state(), State::Closed);
    // 2 slow calls in 4: the slow call that makes the rate hold opens the
    // circuit, and its value is still returned.
    assert_eq!(maybe_slow(true), Ok(1));
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(maybe_slow(false), Err(Down::Rejected), "rejected");
}

#[test]
fn declarations_that_disagree_on_a_slow_key_fail_their_name_alone() {
    assert_eq!(
        panic_text(&*catch_unwind(slow_a).unwrap_err()),
        "conflicting settings for circuit breaker 'slow-conflict': slow_call_duration = 2s on \
         rates::slow_a but slow_call_duration = 3s on rates::slow_b"
    );
    assert!(catch_unwind(slow_b).is_err());
}
