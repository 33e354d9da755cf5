//! The stored form of one breaker's state: a single string, read by a pure
//! decoder that never panics.
//!
//! ```text
//! v1 <state> <generation> <fail_counter> <success_counter> <trial_until_ms> <opened_at_ms> <seq>
//! v1 open 7 5 0 0 1732350000123 1732349990000412
//! v2 <the same seven fields> <trials> <reopens>
//! v2 half-open 8 0 0 1732350061000 1732350000123 1732349990000413 3 2
//! ```
//!
//! - `state` is `closed`, `open` or `half-open`;
//! - every number is decimal, 1 to 16 digits and at most 2^53 - 1 (the
//!   largest integer a Lua number holds exactly), the generation below 2^48;
//! - `trial_until_ms` is when the half-open trial's lease runs out on the
//!   server's clock (0: no trial runs), `opened_at_ms` when the circuit last
//!   opened (0: unknown);
//! - `seq` grows by one on every write, so readers can order what they see.
//!   A key that is missing starts at the server's time in microseconds, which
//!   keeps it growing across a key's expiry or a server restart;
//! - `v2` adds the policies beyond the consecutive one's: `trials`, the
//!   half-open trials running at once (then `trial_until_ms` is when their
//!   lease runs out: a lease period after the last trial was admitted or
//!   finished), and `reopens`, the consecutive re-openings a growing backoff
//!   counts. A value is written as `v2` only when one of them says more than
//!   `v1` can (more than one trial, or a re-opening counted), so a breaker
//!   on the default policy only ever writes `v1`.
//!
//! The Lua script parses the same format with the same checks
//! (`state.lua`, `parse`); a value either side rejects makes the breaker
//! decide from its fallback state.

use std::fmt;

use crate::state::{
    Snapshot, State, MAX_FAIL_MAX, MAX_HALF_OPEN_CALLS, MAX_REOPENS, MAX_SUCCESS_THRESHOLD,
};

/// Generations stored in Redis wrap at 2^48 (see [`Snapshot::generation`]).
pub(crate) const GEN_MOD: u64 = 1 << 48;
/// The largest integer a Lua number (an `f64`) holds exactly.
pub(crate) const MAX_EXACT: u64 = (1 << 53) - 1;
const MAX_DIGITS: usize = 16;
const VERSION: &str = "v1";
const VERSION_2: &str = "v2";

/// One breaker's state as Redis stores it: a [`Snapshot`] with times in
/// milliseconds of the server's clock, the trial's lease and a write sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Stored {
    pub(crate) state: State,
    pub(crate) generation: u64,
    pub(crate) fail_counter: u32,
    pub(crate) success_counter: u32,
    /// Server time (ms) at which the trial's lease runs out; 0 when none runs.
    pub(crate) trial_until_ms: u64,
    /// Server time (ms) at which the circuit last opened; 0 when unknown.
    pub(crate) opened_at_ms: u64,
    /// Write sequence: grows by one on every write.
    pub(crate) seq: u64,
    /// Half-open trials running (0 when `trial_until_ms` is 0).
    pub(crate) trials: u16,
    /// Consecutive re-openings a growing backoff counts.
    pub(crate) reopens: u16,
}

impl Stored {
    /// A closed breaker with zero counters, as a missing key reads.
    #[cfg(test)]
    pub(crate) const fn initial(generation: u64, seq: u64) -> Self {
        Stored {
            state: State::Closed,
            generation,
            fail_counter: 0,
            success_counter: 0,
            trial_until_ms: 0,
            opened_at_ms: 0,
            seq,
            trials: 0,
            reopens: 0,
        }
    }

    /// The snapshot in the server's frame: `opened_at` on the server's clock
    /// and `trial` set while a lease is recorded (whether or not it has run
    /// out).
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            generation: self.generation,
            fail_counter: self.fail_counter,
            success_counter: self.success_counter,
            trial: self.trial_until_ms != 0,
            trials: self.trials,
            reopens: self.reopens,
            opened_at: (self.opened_at_ms != 0)
                .then(|| std::time::Duration::from_millis(self.opened_at_ms)),
        }
    }
}

/// Why a stored value was rejected: the breaker then decides from its
/// fallback state until the value is repaired (by any manual transition,
/// such as `reset()`, or by deleting the key).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt breaker state in Redis: {reason}")]
pub struct DecodeError {
    reason: &'static str,
}

impl DecodeError {
    fn new(reason: &'static str) -> Self {
        DecodeError { reason }
    }

    /// What was wrong with the value, in a few words.
    pub fn reason(&self) -> &str {
        self.reason
    }
}

/// Decodes a breaker's state as [`RedisStorage`](super::RedisStorage) stores
/// it in Redis.
///
/// A pure function of its input: it never panics, whatever the bytes, and
/// accepts exactly what the storage's Lua script accepts. The snapshot's
/// `opened_at` is on the Redis server's clock and `trial` says whether a
/// trial lease is recorded.
///
/// ```
/// use breaker::redis::decode;
/// use breaker::State;
///
/// let snap = decode(b"v1 open 7 5 0 0 1732350000123 42").unwrap();
/// assert_eq!((snap.state, snap.generation, snap.fail_counter), (State::Open, 7, 5));
/// assert!(decode(b"v1 open 7 5 0 0 0 42").is_err()); // open, but no opening time
/// assert!(decode(b"\xff garbage").is_err());
/// ```
///
/// # Errors
/// [`DecodeError`] for anything that is not a well-formed, consistent value.
pub fn decode(raw: &[u8]) -> Result<Snapshot, DecodeError> {
    decode_stored(raw).map(|s| s.snapshot())
}

/// [`decode`], keeping every stored field.
pub(crate) fn decode_stored(raw: &[u8]) -> Result<Stored, DecodeError> {
    let mut fields = raw.split(|&b| b == b' ');
    let mut next = || fields.next().ok_or(DecodeError::new("too few fields"));
    let version = next()?;
    let v2 = if version == VERSION.as_bytes() {
        false
    } else if version == VERSION_2.as_bytes() {
        true
    } else {
        return Err(DecodeError::new("unknown format version"));
    };
    let state = match next()? {
        b"closed" => State::Closed,
        b"open" => State::Open,
        b"half-open" => State::HalfOpen,
        _ => return Err(DecodeError::new("unknown state")),
    };
    let mut numbers = [0u64; 8];
    let count = if v2 { 8 } else { 6 };
    for slot in &mut numbers[..count] {
        *slot = number(next()?)?;
    }
    if fields.next().is_some() {
        return Err(DecodeError::new("too many fields"));
    }
    let [generation, fail_counter, success_counter, trial_until_ms, opened_at_ms, seq, trials, reopens] =
        numbers;
    let trials = if v2 {
        trials
    } else {
        u64::from(trial_until_ms != 0)
    };
    let trials = u16::try_from(trials)
        .ok()
        .filter(|&n| u32::from(n) <= MAX_HALF_OPEN_CALLS && (n != 0) == (trial_until_ms != 0))
        .ok_or(DecodeError::new("trials out of range or without a lease"))?;
    let reopens = u16::try_from(reopens)
        .ok()
        .filter(|&n| u32::from(n) <= MAX_REOPENS)
        .ok_or(DecodeError::new("re-openings out of range"))?;
    if generation >= GEN_MOD {
        return Err(DecodeError::new("generation out of range"));
    }
    let fail_counter = u32::try_from(fail_counter)
        .ok()
        .filter(|&n| n <= MAX_FAIL_MAX)
        .ok_or(DecodeError::new("fail counter out of range"))?;
    let success_counter = u32::try_from(success_counter)
        .ok()
        .filter(|&n| n <= MAX_SUCCESS_THRESHOLD)
        .ok_or(DecodeError::new("success counter out of range"))?;
    let consistent = match state {
        State::Closed => {
            success_counter == 0 && trial_until_ms == 0 && opened_at_ms == 0 && reopens == 0
        }
        State::Open => success_counter == 0 && trial_until_ms == 0 && opened_at_ms != 0,
        State::HalfOpen => true,
    };
    if !consistent {
        return Err(DecodeError::new("fields inconsistent with the state"));
    }
    Ok(Stored {
        state,
        generation,
        fail_counter,
        success_counter,
        trial_until_ms,
        opened_at_ms,
        seq,
        trials,
        reopens,
    })
}

/// A decimal of 1 to 16 ASCII digits, at most [`MAX_EXACT`].
fn number(field: &[u8]) -> Result<u64, DecodeError> {
    if field.is_empty() || field.len() > MAX_DIGITS || !field.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::new("malformed number"));
    }
    let n = field
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    if n > MAX_EXACT {
        return Err(DecodeError::new("number too large"));
    }
    Ok(n)
}

/// The stored form of `s` (what the Lua script writes): `v1` unless the
/// trials or re-openings need `v2`.
pub(crate) fn encode(s: &Stored) -> String {
    let v1 = format!(
        "{} {} {} {} {} {} {}",
        s.state.as_str(),
        s.generation,
        s.fail_counter,
        s.success_counter,
        s.trial_until_ms,
        s.opened_at_ms,
        s.seq
    );
    if s.trials > 1 || s.reopens > 0 {
        format!("{VERSION_2} {v1} {} {}", s.trials, s.reopens)
    } else {
        format!("{VERSION} {v1}")
    }
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stored {
        Stored {
            state: State::HalfOpen,
            generation: GEN_MOD - 1,
            fail_counter: MAX_FAIL_MAX,
            success_counter: MAX_SUCCESS_THRESHOLD,
            trial_until_ms: 1_732_350_000_999,
            opened_at_ms: 1_732_350_000_123,
            seq: MAX_EXACT,
            trials: 1,
            reopens: 0,
        }
    }

    #[test]
    fn round_trips_every_field() {
        let s = sample();
        assert_eq!(decode_stored(encode(&s).as_bytes()), Ok(s));
        let closed = Stored::initial(3, 17);
        assert_eq!(decode_stored(encode(&closed).as_bytes()), Ok(closed));
        let policies = Stored {
            trials: 255,
            reopens: 255,
            ..s
        };
        assert!(encode(&policies).starts_with("v2 half-open "));
        assert_eq!(decode_stored(encode(&policies).as_bytes()), Ok(policies));
        let reopened = Stored {
            state: State::Open,
            success_counter: 0,
            trial_until_ms: 0,
            trials: 0,
            reopens: 3,
            ..s
        };
        assert_eq!(decode_stored(encode(&reopened).as_bytes()), Ok(reopened));
    }

    #[test]
    fn the_default_policy_writes_v1() {
        assert!(encode(&sample()).starts_with("v1 "));
        assert!(encode(&Stored::initial(3, 17)).starts_with("v1 "));
    }

    #[test]
    fn rejects_malformed_values() {
        let bad: &[&[u8]] = &[
            b"",
            b"v1",
            b"v3 closed 0 0 0 0 0 1",
            b"v2 closed 0 0 0 0 0 1",
            b"v2 closed 0 0 0 0 0 1 0",
            b"v2 closed 0 0 0 0 0 1 0 0 0",
            b"v2 closed 0 0 0 0 0 1 0 1",
            b"v2 half-open 0 0 0 0 5 1 2 0",
            b"v2 half-open 0 0 0 9 5 1 0 0",
            b"v2 half-open 0 0 0 9 5 1 256 0",
            b"v2 open 0 0 0 0 5 1 0 256",
            b"v2 open 0 0 0 9 5 1 1 0",
            b"v1 ajar 0 0 0 0 0 1",
            b"v1 closed 0 0 0 0 0",
            b"v1 closed 0 0 0 0 0 1 9",
            b"v1 closed 0 0 0 0 0 1 ",
            b"v1  closed 0 0 0 0 0 1",
            b"v1 closed 0 0 0 0 0 1\n",
            b"v1 closed -1 0 0 0 0 1",
            b"v1 closed +1 0 0 0 0 1",
            b"v1 closed 1e3 0 0 0 0 1",
            b"v1 closed 0 0 0 0 0 99999999999999999",
            b"v1 closed 0 0 0 0 0 9007199254740992",
            b"v1 closed 281474976710656 0 0 0 0 1",
            b"v1 closed 0 1048576 0 0 0 1",
            b"v1 half-open 0 0 65536 0 0 1",
            b"v1 closed 0 0 1 0 0 1",
            b"v1 closed 0 0 0 5 0 1",
            b"v1 closed 0 0 0 0 5 1",
            b"v1 open 0 0 0 0 0 1",
            b"v1 open 0 0 0 9 5 1",
            b"\xff\xfe\x00",
            "v1 closed 0 0 0 0 0 \u{661}".as_bytes(),
        ];
        for raw in bad {
            assert!(
                decode_stored(raw).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn accepts_the_limits() {
        assert!(decode_stored(b"v1 closed 0 0 0 0 0 9007199254740991").is_ok());
        assert!(decode_stored(b"v1 closed 0000000000000007 0 0 0 0 1").is_ok());
        assert!(decode_stored(b"v1 half-open 5 3 2 0 0 1").is_ok());
        assert!(decode_stored(b"v2 half-open 5 0 2 9 4 1 255 255").is_ok());
        assert!(decode_stored(b"v2 open 5 1 0 0 4 1 0 7").is_ok());
    }
}
