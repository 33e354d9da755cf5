//! The JSON the router answers: a breaker's row (`GET /breakers`), and
//! errors as `{"error": ".."}` with their status.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::breaker::CircuitBreaker;
use crate::state::{State, WindowShape};

/// One breaker, in the shape API.md fixes, plus `processes` on a fleet.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) fail_counter: u32,
    pub(crate) fail_max: Option<u32>,
    pub(crate) success_counter: u32,
    pub(crate) success_threshold: Option<u32>,
    pub(crate) reset_timeout_ms: Option<u64>,
    pub(crate) retry_after_ms: Option<u64>,
    pub(crate) opened_at_ms: Option<u64>,
    /// The window of a rate policy ([`window_json`]); `null` without one.
    pub(crate) window: Option<serde_json::Value>,
    /// Live processes of the fleet that use it (fleet mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) processes: Option<u64>,
}

impl Row {
    pub(crate) fn of(cb: &CircuitBreaker) -> Row {
        let snap = cb.snapshot();
        let open_or_trial = snap.state != State::Closed;
        Row {
            name: cb.name().to_owned(),
            state: snap.state.to_string(),
            fail_counter: snap.fail_counter,
            fail_max: Some(cb.fail_max()),
            success_counter: snap.success_counter,
            success_threshold: Some(cb.success_threshold()),
            reset_timeout_ms: Some(cb.reset_timeout().as_millis() as u64),
            retry_after_ms: if snap.state == State::Open {
                cb.retry_after().map(|d| d.as_millis() as u64)
            } else {
                None
            },
            opened_at_ms: snap
                .opened_at
                .filter(|_| open_or_trial)
                .map(|d| d.as_millis() as u64),
            window: window_json(cb),
            processes: None,
        }
    }
}

/// A rate policy's window as `{"calls", "failures", "slow_calls",
/// "failure_rate", "slow_call_rate", "failure_rate_threshold",
/// "slow_call_rate_threshold", "min_calls"}` plus `"window_calls"` or
/// `"window_time_ms"` (rates `null` below `min_calls`, thresholds `null`
/// when that condition is off); `None` when no rate condition is on.
fn window_json(cb: &CircuitBreaker) -> Option<serde_json::Value> {
    let rate = cb.policy().rate;
    if !rate.is_on() {
        return None;
    }
    let stats = cb.window();
    let mut json = serde_json::json!({
        "calls": stats.calls,
        "failures": stats.failures,
        "slow_calls": stats.slow_calls,
        "failure_rate": stats.failure_rate,
        "slow_call_rate": stats.slow_call_rate,
        "failure_rate_threshold": rate.failure_rate,
        "slow_call_rate_threshold": rate.slow_call_rate,
        "min_calls": rate.min_calls,
    });
    let (key, size) = match rate.window {
        WindowShape::Calls(n) => ("window_calls", u64::from(n)),
        WindowShape::Time(span) => ("window_time_ms", span.as_millis() as u64),
    };
    json[key] = size.into();
    Some(json)
}

/// `value` as a JSON answer.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot serialise the answer",
        ),
    }
}

/// `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    #[derive(Serialize)]
    struct Said<'a> {
        error: &'a str,
    }
    let body = serde_json::to_vec(&Said { error: message }).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The 404 for a name no breaker has.
pub(crate) fn unknown_breaker(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("no circuit breaker named '{name}'"),
    )
}
