//! The Lua script that applies one operation atomically on the server: its
//! arguments, its invocation (EVALSHA, and EVAL when the server does not have
//! it cached), and its reply.

use std::time::Duration;

use ::redis::{Cmd, ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};

use super::codec::{decode_stored, Stored};
use super::hub::Conn;
use crate::state::{Limits, Op, Outcome, Policy, Reason, State, Totals, WindowShape};

/// The script's source: a port of [`step`](crate::state::step).
pub(crate) const SOURCE: &str = include_str!("state.lua");

/// Longest time the script is given (100 years in ms): keeps every argument
/// an exact Lua number and every TTL acceptable to Redis.
const MAX_MS: u64 = 100 * 365 * 24 * 3_600 * 1_000;

/// The script and its SHA-1, computed once.
pub(crate) struct Script {
    sha: String,
}

impl Script {
    pub(crate) fn new() -> Self {
        Script {
            sha: ::redis::Script::new(SOURCE).get_hash().to_owned(),
        }
    }

    /// Runs the script on the breaker whose state is at `key` (and its
    /// window beside it): one round trip with EVALSHA, a second with EVAL
    /// only when the server answers NOSCRIPT (after a restart or a
    /// `SCRIPT FLUSH`), which also caches it again.
    pub(crate) async fn run(
        &self,
        conn: &mut Conn,
        key: &str,
        argv: &[Vec<u8>],
    ) -> RedisResult<Value> {
        let window = window_key(key);
        let mut evalsha = Cmd::new();
        evalsha
            .arg("EVALSHA")
            .arg(&self.sha)
            .arg(2)
            .arg(key)
            .arg(&window)
            .arg(argv);
        match conn.query(&evalsha).await {
            Err(e) if is_noscript(&e) => {
                let mut eval = Cmd::new();
                eval.arg("EVAL")
                    .arg(SOURCE)
                    .arg(2)
                    .arg(key)
                    .arg(&window)
                    .arg(argv);
                conn.query(&eval).await
            }
            other => other,
        }
    }
}

/// The key of the rate policies' window beside the state at `state_key`
/// (`{namespace:name}:window`: the same hash tag, so the same cluster slot).
pub(crate) fn window_key(state_key: &str) -> String {
    let base = state_key.strip_suffix(":state").unwrap_or(state_key);
    format!("{base}:window")
}

fn is_noscript(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
        || e.code().is_some_and(|c| c == "NOSCRIPT")
}

/// What the script is asked to do.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Request {
    /// Apply an operation.
    Apply(Op),
    /// Read the state (no write).
    Read,
    /// Read the state, first creating a missing key in this state.
    Init(State),
    /// Add successes a process counted under a closed generation to the
    /// window.
    Flush {
        /// The closed generation they were counted under.
        generation: u64,
    },
}

/// [`Limits`] owned, policy included: what a request carries to the task
/// that sends it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OwnedLimits {
    fail_max: u32,
    success_threshold: u32,
    reset_timeout: Duration,
    now: Duration,
    policy: Policy,
}

impl OwnedLimits {
    pub(crate) fn of(limits: &Limits<'_>) -> Self {
        OwnedLimits {
            fail_max: limits.fail_max,
            success_threshold: limits.success_threshold,
            reset_timeout: limits.reset_timeout,
            now: limits.now,
            policy: *limits.policy,
        }
    }

    pub(crate) fn limits(&self) -> Limits<'_> {
        Limits {
            fail_max: self.fail_max,
            success_threshold: self.success_threshold,
            reset_timeout: self.reset_timeout,
            now: self.now,
            policy: &self.policy,
        }
    }
}

/// Settings that shape the script's writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// The trial lease; `None`: the reset timeout, at least a second.
    pub(crate) trial_lease: Option<Duration>,
    /// The key TTL; raised to cover two reset timeouts and a lease.
    pub(crate) key_ttl: Duration,
}

/// The script's arguments (`ARGV`) for `request`.
///
/// `successes`: those the process counted under the op's generation since
/// its last report (the rate policies' window), sent before the op is
/// applied.
#[allow(clippy::too_many_arguments)]
pub(crate) fn argv(
    request: Request,
    limits: &Limits,
    shape: &Shape,
    channel: &str,
    origin: &str,
    name: &str,
    successes: u64,
) -> Vec<Vec<u8>> {
    let closed = State::Closed.as_str();
    let slow = matches!(request, Request::Apply(Op::SlowCall { .. }));
    let (op, generation, trial, target) = match request {
        Request::Read => ("read", 0, false, closed),
        Request::Init(state) => ("init", 0, false, state.as_str()),
        Request::Flush { generation } => ("flush", generation, false, closed),
        Request::Apply(op) => match op {
            Op::Admit => ("admit", 0, false, closed),
            Op::Success { generation, trial } => ("success", generation, trial, closed),
            Op::Failure { generation, trial } => ("failure", generation, trial, closed),
            Op::SlowCall { generation, failed } => {
                let op = if failed { "failure" } else { "success" };
                (op, generation, false, closed)
            }
            Op::Trip { generation, reason } => ("trip", generation, false, reason_code(reason)),
            Op::Cancel { generation } => ("cancel", generation, false, closed),
            Op::Force(state) => ("force", 0, false, state.as_str()),
            Op::Reset => ("reset", 0, false, closed),
        },
    };
    let reset = ceil_ms(limits.reset_timeout);
    let lease = shape
        .trial_lease
        .map_or_else(|| reset.max(1_000), ceil_ms)
        .max(1);
    let ttl = ceil_ms(shape.key_ttl)
        .max(reset.saturating_mul(2).saturating_add(lease))
        .clamp(1, MAX_MS);
    let backoff = &limits.policy.backoff;
    // A growing backoff keeps the key through its longest open period.
    let max_ms = backoff.max().map_or(0, |max| ceil_ms(max).max(1));
    let ttl = ttl
        .max(max_ms.saturating_mul(2).saturating_add(lease))
        .min(MAX_MS);
    let numbers = [
        generation.min(u64::MAX >> 1),
        u64::from(trial),
        0,
        u64::from(limits.fail_max),
        u64::from(limits.success_threshold),
        reset,
        lease,
        ttl,
    ];
    let mut out: Vec<Vec<u8>> = numbers.iter().map(|n| n.to_string().into_bytes()).collect();
    out.insert(0, op.as_bytes().to_vec());
    out[3] = target.as_bytes().to_vec();
    out.push(channel.as_bytes().to_vec());
    out.push(origin.as_bytes().to_vec());
    out.push(name.as_bytes().to_vec());
    // The policy: trials at once, and the backoff (`{}` prints the shortest
    // text that parses back to the same f64, as Lua's `tonumber` does).
    out.push(
        limits
            .policy
            .half_open_calls
            .max(1)
            .to_string()
            .into_bytes(),
    );
    out.push(u8::from(backoff.max().is_some()).to_string().into_bytes());
    out.push(format!("{}", backoff.factor()).into_bytes());
    out.push(max_ms.to_string().into_bytes());
    out.push(format!("{}", backoff.jitter_fraction()).into_bytes());
    // The rate policies: a time window on the server (`check_policy`
    // refuses a count window).
    let rate = &limits.policy.rate;
    let rate_on = rate.is_on() && matches!(rate.window, WindowShape::Time(_));
    let span = match rate.window {
        WindowShape::Time(span) => ceil_ms(span),
        WindowShape::Calls(_) => 0,
    };
    let threshold = |t: Option<f64>| t.map_or_else(String::new, |t| format!("{t}"));
    out.push(u8::from(rate_on).to_string().into_bytes());
    out.push(threshold(rate.failure_rate).into_bytes());
    out.push(threshold(rate.slow_call_rate).into_bytes());
    out.push(span.to_string().into_bytes());
    out.push(rate.deciding_calls().to_string().into_bytes());
    out.push(u8::from(rate.consecutive_on()).to_string().into_bytes());
    out.push(successes.to_string().into_bytes());
    out.push(u8::from(slow).to_string().into_bytes());
    out
}

/// Every reason, in the script's numbering (1 first): `reason_code` and
/// `reason` both read it, so the two directions cannot disagree.
const REASONS: [Reason; 6] = [
    Reason::TimeoutNotElapsed,
    Reason::TrialInProgress,
    Reason::FailureThreshold,
    Reason::TrialFailed,
    Reason::FailureRate,
    Reason::SlowCallRate,
];

/// A trip reason as the script numbers it.
fn reason_code(reason: Reason) -> &'static str {
    const CODES: [&str; REASONS.len()] = ["1", "2", "3", "4", "5", "6"];
    CODES[REASONS.iter().position(|&r| r == reason).unwrap_or(0)]
}

/// Milliseconds, rounded up (never early), at most [`MAX_MS`].
fn ceil_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .min(MAX_MS)
}

/// The script's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The operation was applied (or the state read).
    Done {
        before: Stored,
        after: Stored,
        /// `None` for a read.
        outcome: Option<Outcome>,
        /// The server's clock, in microseconds since the Unix epoch.
        now_us: u64,
        /// The key did not exist: `before` is a closed state the script
        /// made up, numbered with the server's time.
        missing: bool,
        /// The fleet's window after the op, when a rate condition is on
        /// and the op read or changed it.
        window: Option<Totals>,
    },
    /// The stored value is not a valid state (or not a string).
    Corrupt,
}

/// Reads the script's reply; anything unexpected counts as corrupt.
pub(crate) fn parse_reply(value: &Value) -> Reply {
    parse(value).unwrap_or(Reply::Corrupt)
}

fn parse(value: &Value) -> Option<Reply> {
    let Value::Array(items) = value else {
        return None;
    };
    let (head, tail) = items.split_at(items.len().min(8));
    let [status, before, after, code, a, b, now, missing] = head else {
        return None;
    };
    let window = match tail {
        [] => None,
        [calls, failures, slow] => {
            let count = |v: &Value| u64::try_from(int(v)?).ok();
            let totals = Totals {
                calls: count(calls)?,
                failures: count(failures)?,
                slow: count(slow)?,
            };
            (totals.calls > 0).then_some(totals)
        }
        _ => return None,
    };
    if bytes(status)? != b"ok" {
        return None;
    }
    let before = decode_stored(bytes(before)?).ok()?;
    let after = decode_stored(bytes(after)?).ok()?;
    let (code, a, b) = (int(code)?, int(a)?, int(b)?);
    let now_us = u64::try_from(int(now)?).ok()?;
    let missing = int(missing)? == 1;
    let outcome = match code {
        0 => None,
        1 => Some(Outcome::Admitted {
            generation: u64::try_from(a).ok()?,
            trial: b == 1,
        }),
        2 => Some(Outcome::Rejected { reason: reason(a)? }),
        3 => Some(Outcome::Counted {
            tripped: match a {
                0 => None,
                r => Some(reason(r)?),
            },
        }),
        4 => Some(Outcome::Stale),
        5 => Some(Outcome::Done),
        _ => return None,
    };
    Some(Reply::Done {
        before,
        after,
        outcome,
        now_us,
        missing,
        window,
    })
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn reason(code: i64) -> Option<Reason> {
    let index = usize::try_from(code).ok()?.checked_sub(1)?;
    REASONS.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_up_and_cover_the_open_period() {
        let limits = Limits {
            fail_max: 5,
            success_threshold: 2,
            reset_timeout: Duration::from_micros(100_500),
            now: Duration::ZERO,
            ..Limits::DEFAULT
        };
        let shape = Shape {
            trial_lease: None,
            key_ttl: Duration::from_millis(10),
        };
        let args = argv(
            Request::Apply(Op::Failure {
                generation: 9,
                trial: true,
            }),
            &limits,
            &shape,
            "ch",
            "o",
            "db",
            7,
        );
        let text: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect();
        assert_eq!(
            text,
            [
                "failure", "9", "1", "closed", "5", "2", "101", "1000", "1202", "ch", "o", "db",
                "1", "0", "1", "0", "0", "0", "", "", "0", "10", "1", "7", "0"
            ]
        );
    }

    #[test]
    fn a_slow_call_is_its_success_or_failure_with_the_slow_flag() {
        let shape = Shape {
            trial_lease: None,
            key_ttl: Duration::from_secs(60),
        };
        let args = |op| {
            let args = argv(
                Request::Apply(op),
                &Limits::DEFAULT,
                &shape,
                "ch",
                "o",
                "db",
                3,
            );
            let text = |i: usize| String::from_utf8(args[i].clone()).unwrap();
            (text(0), text(1), text(2), text(23), text(24))
        };
        let slow = |failed| Op::SlowCall {
            generation: 4,
            failed,
        };
        let owned = |s: &str| s.to_owned();
        assert_eq!(
            args(slow(false)),
            (
                owned("success"),
                owned("4"),
                owned("0"),
                owned("3"),
                owned("1")
            )
        );
        assert_eq!(
            args(slow(true)),
            (
                owned("failure"),
                owned("4"),
                owned("0"),
                owned("3"),
                owned("1")
            )
        );
        let fast = Op::Success {
            generation: 4,
            trial: false,
        };
        assert_eq!(args(fast).4, "0");
    }

    #[test]
    fn a_malformed_reply_is_corrupt() {
        assert_eq!(parse_reply(&Value::Nil), Reply::Corrupt);
        let corrupt = Value::Array(vec![
            Value::BulkString(b"corrupt".to_vec()),
            Value::BulkString(b"junk".to_vec()),
            Value::BulkString(Vec::new()),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Int(1),
        ]);
        assert_eq!(parse_reply(&corrupt), Reply::Corrupt);
    }
}
