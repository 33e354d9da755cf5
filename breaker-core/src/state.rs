//! The three states, a breaker's snapshot, and the pure transition function.
//!
//! Everything here is free of I/O and of shared memory: [`step`] takes a
//! [`Snapshot`] and an [`Op`] and returns the next snapshot and what happened.
//! Every [`Storage`](crate::Storage) applies exactly this function atomically,
//! so the in-memory storage, a remote one and the reference model in the tests
//! all agree on the semantics.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The state of a circuit breaker.
///
/// ```
/// use breaker::State;
///
/// assert_eq!(State::HalfOpen.to_string(), "half-open");
/// assert_eq!("open".parse::<State>().unwrap(), State::Open);
/// assert!("ajar".parse::<State>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Calls run; failures are counted.
    Closed,
    /// Calls are rejected without running until the reset timeout has passed.
    Open,
    /// Trial calls run one at a time; enough successes close the circuit, a
    /// failure opens it again.
    HalfOpen,
}

impl State {
    /// All three states, in the order `closed`, `open`, `half-open`.
    pub const ALL: [State; 3] = [State::Closed, State::Open, State::HalfOpen];

    /// The lowercase name: `closed`, `open` or `half-open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The error of parsing a [`State`] from a string that names none.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown state '{input}', valid states: closed, open, half-open")]
pub struct ParseStateError {
    input: String,
}

impl ParseStateError {
    /// The text that was not a state.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl FromStr for State {
    type Err = ParseStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "closed" => Ok(State::Closed),
            "open" => Ok(State::Open),
            "half-open" => Ok(State::HalfOpen),
            _ => Err(ParseStateError {
                input: s.to_owned(),
            }),
        }
    }
}

/// Everything a storage keeps about one breaker, as of one moment.
///
/// `generation` grows by one on every change of state and on every manual
/// `open()`, `close()`, `half_open()` or `reset()`; results of calls admitted
/// under an older generation are ignored. A storage may keep fewer bits of it
/// than 64 (the memory storage keeps 37) as long as it compares generations
/// the way [`step`] does: for equality only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// The current state.
    pub state: State,
    /// Bumped on every change of state and every manual transition.
    pub generation: u64,
    /// Consecutive failures (closed), kept through open and half-open.
    pub fail_counter: u32,
    /// Trial successes in half-open.
    pub success_counter: u32,
    /// Whether a half-open trial call is running now.
    pub trial: bool,
    /// When the circuit last opened, as time since the Unix epoch, if it is
    /// open or half-open and that time is known.
    pub opened_at: Option<Duration>,
}

impl Snapshot {
    /// A closed breaker with zero counters: how every breaker starts.
    pub const INITIAL: Snapshot = Snapshot {
        state: State::Closed,
        generation: 0,
        fail_counter: 0,
        success_counter: 0,
        trial: false,
        opened_at: None,
    };

    /// Time until a call may run as a trial, if the circuit is open.
    ///
    /// `Some(Duration::ZERO)` means the next call will be admitted as a trial.
    pub fn retry_after(&self, reset_timeout: Duration, now: Duration) -> Option<Duration> {
        if self.state != State::Open {
            return None;
        }
        Some(match self.opened_at {
            Some(at) => at.saturating_add(reset_timeout).saturating_sub(now),
            None => reset_timeout,
        })
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::INITIAL
    }
}

/// The settings a transition depends on, and the current time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Consecutive failures that open the circuit.
    pub fail_max: u32,
    /// Trial successes that close it.
    pub success_threshold: u32,
    /// How long it stays open before a trial.
    pub reset_timeout: Duration,
    /// The current time, as time since the Unix epoch.
    pub now: Duration,
}

/// An operation on a breaker's state; [`step`] says what each one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Ask to run a call: always admitted in closed; admitted as the trial in
    /// open once the reset timeout has passed (moving to half-open) and in
    /// half-open when no trial runs; rejected otherwise.
    Admit,
    /// A call admitted under `generation` succeeded (or failed with an
    /// excluded error).
    Success {
        /// The generation the call was admitted under.
        generation: u64,
        /// Whether it ran as the half-open trial.
        trial: bool,
    },
    /// A call admitted under `generation` failed.
    Failure {
        /// The generation the call was admitted under.
        generation: u64,
        /// Whether it ran as the half-open trial.
        trial: bool,
    },
    /// The trial admitted under `generation` was cancelled: it frees its place
    /// and counts as neither success nor failure.
    Cancel {
        /// The generation the trial was admitted under.
        generation: u64,
    },
    /// A manual transition into this state (entered anew even if already in it).
    Force(State),
    /// Closed with both counters zero.
    Reset,
}

/// Why a call was rejected or why a failure opened the circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Open, and the reset timeout has not elapsed yet.
    TimeoutNotElapsed,
    /// Half-open, and a trial call is running.
    TrialInProgress,
    /// The failure brought the counter to `fail_max`.
    FailureThreshold,
    /// The half-open trial call failed.
    TrialFailed,
}

impl Reason {
    /// A short lowercase description, used in error messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::TimeoutNotElapsed => "timeout not elapsed yet",
            Reason::TrialInProgress => "half-open trial in progress",
            Reason::FailureThreshold => "failures threshold reached",
            Reason::TrialFailed => "trial call failed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an [`Op`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call may run; report its result with this generation.
    Admitted {
        /// The generation to report the result under.
        generation: u64,
        /// Whether it runs as the half-open trial.
        trial: bool,
    },
    /// The call may not run.
    Rejected {
        /// Why not.
        reason: Reason,
    },
    /// The result was counted; `tripped` says whether this failure opened the
    /// circuit, and why.
    Counted {
        /// `Some` if this result opened the circuit.
        tripped: Option<Reason>,
    },
    /// The result belonged to an older generation and was ignored.
    Stale,
    /// A manual transition or cancellation was applied.
    Done,
}

/// The largest `fail_max` any storage must support.
pub const MAX_FAIL_MAX: u32 = (1 << 16) - 1;
/// The largest `success_threshold` any storage must support.
pub const MAX_SUCCESS_THRESHOLD: u32 = (1 << 8) - 1;

/// Applies `op` to `snap`: the whole state machine in one pure function.
///
/// Storages apply it atomically (compare-and-swap, a transaction, a script);
/// when the returned snapshot equals the input nothing needs writing.
///
/// `opened_at` is rounded up to the next millisecond so that a storage with
/// millisecond precision never starts a trial early.
///
/// ```
/// use breaker::storage::{step, Limits, Op, Outcome, Snapshot};
/// use breaker::State;
/// use std::time::Duration;
///
/// let limits = Limits {
///     fail_max: 1,
///     success_threshold: 1,
///     reset_timeout: Duration::from_secs(60),
///     now: Duration::from_secs(1_000),
/// };
/// let s0 = Snapshot::INITIAL;
/// let (s1, out) = step(&s0, Op::Failure { generation: 0, trial: false }, &limits);
/// assert_eq!(s1.state, State::Open);
/// assert!(matches!(out, Outcome::Counted { tripped: Some(_) }));
/// ```
pub fn step(snap: &Snapshot, op: Op, limits: &Limits) -> (Snapshot, Outcome) {
    let mut next = *snap;
    let outcome = match op {
        Op::Admit => match snap.state {
            State::Closed => Outcome::Admitted {
                generation: snap.generation,
                trial: false,
            },
            State::Open => {
                if snap.retry_after(limits.reset_timeout, limits.now) == Some(Duration::ZERO) {
                    next = enter(snap, State::HalfOpen, limits);
                    next.trial = true;
                    Outcome::Admitted {
                        generation: next.generation,
                        trial: true,
                    }
                } else {
                    Outcome::Rejected {
                        reason: Reason::TimeoutNotElapsed,
                    }
                }
            }
            State::HalfOpen if snap.trial => Outcome::Rejected {
                reason: Reason::TrialInProgress,
            },
            State::HalfOpen => {
                next.trial = true;
                Outcome::Admitted {
                    generation: snap.generation,
                    trial: true,
                }
            }
        },
        Op::Success { generation, .. } | Op::Failure { generation, .. }
            if generation != snap.generation =>
        {
            Outcome::Stale
        }
        Op::Success { trial, .. } => match snap.state {
            State::Closed => {
                next.fail_counter = 0;
                Outcome::Counted { tripped: None }
            }
            State::HalfOpen if trial => {
                next.trial = false;
                next.success_counter = snap.success_counter.saturating_add(1);
                if next.success_counter >= limits.success_threshold {
                    next = enter(snap, State::Closed, limits);
                }
                Outcome::Counted { tripped: None }
            }
            // A non-trial call cannot be admitted under an open or half-open
            // generation; nothing to count.
            _ => Outcome::Stale,
        },
        Op::Failure { trial, .. } => match snap.state {
            State::Closed => {
                next.fail_counter = snap.fail_counter.saturating_add(1).min(MAX_FAIL_MAX);
                if next.fail_counter >= limits.fail_max {
                    let counter = next.fail_counter;
                    next = enter(snap, State::Open, limits);
                    next.fail_counter = counter;
                    Outcome::Counted {
                        tripped: Some(Reason::FailureThreshold),
                    }
                } else {
                    Outcome::Counted { tripped: None }
                }
            }
            State::HalfOpen if trial => {
                next = enter(snap, State::Open, limits);
                next.fail_counter = snap.fail_counter.saturating_add(1).min(MAX_FAIL_MAX);
                Outcome::Counted {
                    tripped: Some(Reason::TrialFailed),
                }
            }
            _ => Outcome::Stale,
        },
        Op::Cancel { generation } => {
            if generation == snap.generation && snap.state == State::HalfOpen && snap.trial {
                next.trial = false;
                Outcome::Done
            } else {
                Outcome::Stale
            }
        }
        Op::Force(state) => {
            next = enter(snap, state, limits);
            Outcome::Done
        }
        Op::Reset => {
            next = enter(snap, State::Closed, limits);
            Outcome::Done
        }
    };
    (next, outcome)
}

/// The snapshot after entering `state` from `snap`: a new generation, counters
/// reset as entering that state requires, no trial running.
fn enter(snap: &Snapshot, state: State, limits: &Limits) -> Snapshot {
    Snapshot {
        state,
        generation: snap.generation.wrapping_add(1),
        fail_counter: if state == State::Closed {
            0
        } else {
            snap.fail_counter
        },
        success_counter: 0,
        trial: false,
        opened_at: match state {
            State::Closed => None,
            State::Open => Some(ceil_millis(limits.now)),
            State::HalfOpen => snap.opened_at,
        },
    }
}

/// Rounds up to a whole number of milliseconds.
pub(crate) fn ceil_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}
