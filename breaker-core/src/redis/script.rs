//! The Lua script that applies one operation atomically on the server: its
//! arguments, its invocation (EVALSHA, and EVAL when the server does not have
//! it cached), and its reply.

use std::time::Duration;

use ::redis::{Cmd, ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};

use super::codec::{decode_stored, Stored};
use super::hub::Conn;
use crate::state::{Limits, Op, Outcome, Reason, State};

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

    /// Runs the script on `key`: one round trip with EVALSHA, a second with
    /// EVAL only when the server answers NOSCRIPT (after a restart or a
    /// `SCRIPT FLUSH`), which also caches it again.
    pub(crate) async fn run(
        &self,
        conn: &mut Conn,
        key: &str,
        argv: &[Vec<u8>],
    ) -> RedisResult<Value> {
        let mut evalsha = Cmd::new();
        evalsha
            .arg("EVALSHA")
            .arg(&self.sha)
            .arg(1)
            .arg(key)
            .arg(argv);
        match conn.query(&evalsha).await {
            Err(e) if is_noscript(&e) => {
                let mut eval = Cmd::new();
                eval.arg("EVAL").arg(SOURCE).arg(1).arg(key).arg(argv);
                conn.query(&eval).await
            }
            other => other,
        }
    }
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
pub(crate) fn argv(
    request: Request,
    limits: &Limits,
    shape: &Shape,
    channel: &str,
    origin: &str,
    name: &str,
) -> Vec<Vec<u8>> {
    let (op, generation, trial, target) = match request {
        Request::Read => ("read", 0, false, State::Closed),
        Request::Init(state) => ("init", 0, false, state),
        Request::Apply(op) => match op {
            Op::Admit => ("admit", 0, false, State::Closed),
            Op::Success { generation, trial } => ("success", generation, trial, State::Closed),
            Op::Failure { generation, trial } => ("failure", generation, trial, State::Closed),
            Op::Cancel { generation } => ("cancel", generation, false, State::Closed),
            // Never sent: `check_policy` refuses the rate policies on Redis
            // (the script's port of them is issue 15's); a read changes
            // nothing.
            Op::Trip { .. } => ("read", 0, false, State::Closed),
            Op::Force(state) => ("force", 0, false, state),
            Op::Reset => ("reset", 0, false, State::Closed),
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
    out[3] = target.as_str().as_bytes().to_vec();
    out.push(channel.as_bytes().to_vec());
    out.push(origin.as_bytes().to_vec());
    out.push(name.as_bytes().to_vec());
    out
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
    let [status, before, after, code, a, b, now, missing] = items.as_slice() else {
        return None;
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
    Some(match code {
        1 => Reason::TimeoutNotElapsed,
        2 => Reason::TrialInProgress,
        3 => Reason::FailureThreshold,
        4 => Reason::TrialFailed,
        _ => return None,
    })
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
        );
        let text: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect();
        assert_eq!(
            text,
            ["failure", "9", "1", "closed", "5", "2", "101", "1000", "1202", "ch", "o", "db"]
        );
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
