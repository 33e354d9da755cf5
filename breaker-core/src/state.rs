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

pub use crate::window::Totals;

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
    /// Up to `half_open_calls` trial calls run at once (one by default);
    /// enough successes close the circuit, a failure opens it again.
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
    /// Consecutive failures (closed), kept through open and half-open; a
    /// trial failure adds one. Half-open with more than one trial running,
    /// or entered after a re-opening the backoff counts (`reopens > 0`),
    /// does not keep it: [`step`] sets it to 0 there (the trials' own
    /// count takes its place), so a trial failure then opens the circuit
    /// with 1. The consecutive policy's defaults never get there.
    pub fail_counter: u32,
    /// Trial successes in half-open.
    pub success_counter: u32,
    /// Whether a half-open trial call is running now (`trials > 0`).
    pub trial: bool,
    /// How many half-open trial calls are running now (at most
    /// [`Policy::half_open_calls`]). A storage that keeps only `trial` may
    /// leave it 0: [`step`] counts a set `trial` as one trial.
    pub trials: u16,
    /// Consecutive re-openings without a close in between, which a growing
    /// [`Backoff`] lengthens the open period with: 0 when opened from
    /// closed, one more for each opening from open or half-open (up to
    /// [`MAX_REOPENS`]); kept through half-open, 0 in closed and always 0
    /// under a constant backoff.
    pub reopens: u16,
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
        trials: 0,
        reopens: 0,
        opened_at: None,
    };

    /// Time until a call may run as a trial, if the circuit is open, given
    /// the open period in force (the reset timeout, or what
    /// [`Limits::open_period`] says under a growing backoff).
    ///
    /// `Some(Duration::ZERO)` means the next call will be admitted as a trial.
    pub fn retry_after(&self, open_period: Duration, now: Duration) -> Option<Duration> {
        if self.state != State::Open {
            return None;
        }
        Some(match self.opened_at {
            Some(at) => at.saturating_add(open_period).saturating_sub(now),
            None => open_period,
        })
    }

    /// Half-open trials running: `trials`, or 1 when a storage that keeps
    /// only the flag set `trial`.
    ///
    /// ```
    /// use breaker::storage::Snapshot;
    ///
    /// let flag_only = Snapshot { trial: true, ..Snapshot::INITIAL };
    /// assert_eq!(flag_only.running_trials(), 1);
    /// ```
    pub fn running_trials(&self) -> u32 {
        u32::from(self.trials).max(u32::from(self.trial))
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::INITIAL
    }
}

/// The settings a transition depends on, and the current time.
///
/// The trip policy beyond the consecutive one's is held by reference, so
/// that the consecutive policy's path copies no more than it did before
/// there were others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits<'a> {
    /// Consecutive failures that open the circuit.
    pub fail_max: u32,
    /// Trial successes that close it.
    pub success_threshold: u32,
    /// How long it stays open before a trial (before a growing backoff
    /// lengthens it).
    pub reset_timeout: Duration,
    /// The current time, as time since the Unix epoch.
    pub now: Duration,
    /// Half-open trials at once and the backoff ([`Policy::DEFAULT`]: one
    /// trial, a constant open period).
    pub policy: &'a Policy,
}

impl Limits<'_> {
    /// The consecutive policy's defaults (`fail_max` 5, `success_threshold`
    /// 1, `reset_timeout` 60 s, [`Policy::DEFAULT`]) at time zero: a start
    /// for struct update syntax.
    ///
    /// ```
    /// use breaker::storage::Limits;
    /// use std::time::Duration;
    ///
    /// let limits = Limits { fail_max: 3, now: Duration::from_secs(5), ..Limits::DEFAULT };
    /// assert_eq!(limits.policy.half_open_calls, 1);
    /// ```
    pub const DEFAULT: Limits<'static> = Limits {
        fail_max: 5,
        success_threshold: 1,
        reset_timeout: Duration::from_secs(60),
        now: Duration::ZERO,
        policy: &Policy::DEFAULT,
    };

    /// How long the circuit in `snap` stays open: the reset timeout, grown
    /// by the backoff for `snap.reopens` and spread by its jitter (drawn
    /// from the generation, so every reader and every storage sees the same
    /// period for the same opening).
    ///
    /// ```
    /// use breaker::storage::{Backoff, Limits, Policy, Snapshot};
    /// use breaker::State;
    /// use std::time::Duration;
    ///
    /// let policy = Policy {
    ///     backoff: Backoff::exponential(2.0, Duration::from_secs(60)),
    ///     ..Policy::DEFAULT
    /// };
    /// let limits = Limits { reset_timeout: Duration::from_secs(10), policy: &policy, ..Limits::DEFAULT };
    /// let open = |reopens| Snapshot { state: State::Open, reopens, ..Snapshot::INITIAL };
    /// assert_eq!(limits.open_period(&open(0)), Duration::from_secs(10));
    /// assert_eq!(limits.open_period(&open(2)), Duration::from_secs(40));
    /// assert_eq!(limits.open_period(&open(3)), Duration::from_secs(60)); // the cap
    /// ```
    #[inline]
    pub fn open_period(&self, snap: &Snapshot) -> Duration {
        if self.policy.backoff.is_constant() {
            return self.reset_timeout;
        }
        self.policy
            .backoff
            .period(self.reset_timeout, u32::from(snap.reopens), snap.generation)
    }
}

/// The parts of a trip policy that [`step`] applies beyond the consecutive
/// one's: how many trials half-open admits at once, and how the open
/// period grows.
///
/// ```
/// use breaker::storage::{Backoff, Policy};
///
/// assert_eq!(Policy::DEFAULT.half_open_calls, 1);
/// assert!(Policy::DEFAULT.backoff.is_constant());
/// assert!(Policy::DEFAULT.is_default());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Trial calls admitted at once in half-open (1 to
    /// [`MAX_HALF_OPEN_CALLS`]; 0 is taken as 1).
    pub half_open_calls: u32,
    /// How the open period grows with consecutive re-openings.
    pub backoff: Backoff,
    /// The rate conditions over a sliding window ([`RatePolicy::DEFAULT`]:
    /// none, the consecutive condition alone).
    pub rate: RatePolicy,
}

impl Policy {
    /// One trial at a time, a constant open period and no rate condition:
    /// pybreaker's.
    pub const DEFAULT: Policy = Policy {
        half_open_calls: 1,
        backoff: Backoff::constant(),
        rate: RatePolicy::DEFAULT,
    };

    /// Whether this is [`Policy::DEFAULT`].
    pub fn is_default(&self) -> bool {
        *self == Policy::DEFAULT
    }

    /// Whether [`step`] applies this policy as it applies
    /// [`Policy::DEFAULT`]: one trial, a constant open period, and no rate
    /// condition on (a window shape or `min_calls` set with no rate to
    /// apply them to changes nothing).
    pub fn acts_as_default(&self) -> bool {
        self.half_open_calls <= 1 && self.backoff.is_constant() && !self.rate.is_on()
    }
}

/// Which calls a rate policy's sliding window holds.
///
/// ```
/// use breaker::storage::WindowShape;
/// use std::time::Duration;
///
/// assert_eq!(WindowShape::DEFAULT, WindowShape::Calls(100));
/// let minute = WindowShape::Time(Duration::from_secs(60));
/// assert_ne!(minute, WindowShape::DEFAULT);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowShape {
    /// The last `n` completed calls, the oldest dropped first.
    Calls(u32),
    /// The calls completed in the last `span`, in 10 buckets of `span / 10`:
    /// a call leaves the window between `9/10 * span` and `span` after it
    /// completed.
    Time(Duration),
}

impl WindowShape {
    /// The last 100 calls: the default.
    pub const DEFAULT: WindowShape = WindowShape::Calls(100);
}

impl Default for WindowShape {
    fn default() -> Self {
        WindowShape::DEFAULT
    }
}

/// The rate conditions of a trip policy: the circuit opens when the share
/// of failures (or of slow calls) among the calls in a sliding window
/// reaches a threshold, once the window holds `min_calls` calls. Decided
/// by [`trips`] on a window's [`Totals`] when a failure or a slow call
/// completes.
///
/// ```
/// use breaker::storage::{RatePolicy, WindowShape};
///
/// let rate = RatePolicy { failure_rate: Some(0.5), ..RatePolicy::DEFAULT };
/// assert!(rate.is_on());
/// assert!(!rate.consecutive_on()); // fail_max was not asked for
/// assert_eq!((rate.window, rate.min_calls), (WindowShape::Calls(100), 10));
/// assert!(!RatePolicy::DEFAULT.is_on());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RatePolicy {
    /// Open when failures / calls in the window reach this (in `(0, 1]`);
    /// `None`: no failure-rate condition.
    pub failure_rate: Option<f64>,
    /// Open when slow calls / calls in the window reach this (in
    /// `(0, 1]`); `None`: no slow-call-rate condition.
    pub slow_call_rate: Option<f64>,
    /// The calls the rates are taken over.
    pub window: WindowShape,
    /// Calls the window must hold before a rate is decided on (at least 1;
    /// a count window of fewer calls decides once it is full).
    pub min_calls: u32,
    /// Whether the consecutive condition (`fail_max`) stays on beside a
    /// rate: true when `fail_max` was set. Without a rate condition it is
    /// always on.
    pub consecutive: bool,
}

impl RatePolicy {
    /// No rate condition; a window of the last 100 calls and `min_calls` 10
    /// for when one is turned on.
    pub const DEFAULT: RatePolicy = RatePolicy {
        failure_rate: None,
        slow_call_rate: None,
        window: WindowShape::DEFAULT,
        min_calls: 10,
        consecutive: false,
    };

    /// Whether any rate condition is on.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.failure_rate.is_some() || self.slow_call_rate.is_some()
    }

    /// Whether the consecutive condition (`fail_max`) is on: always
    /// without a rate condition, and beside one when `fail_max` was set.
    ///
    /// ```
    /// use breaker::storage::RatePolicy;
    ///
    /// assert!(RatePolicy::DEFAULT.consecutive_on());
    /// let both = RatePolicy { failure_rate: Some(0.5), consecutive: true, ..RatePolicy::DEFAULT };
    /// assert!(both.consecutive_on());
    /// ```
    #[inline]
    pub fn consecutive_on(&self) -> bool {
        self.consecutive || !self.is_on()
    }

    /// The calls a window must hold before a rate is decided on:
    /// `min_calls`, or a count window's size if it is smaller (a window
    /// that can never hold `min_calls` decides once it is full).
    ///
    /// ```
    /// use breaker::storage::{RatePolicy, WindowShape};
    ///
    /// let small = RatePolicy { window: WindowShape::Calls(5), ..RatePolicy::DEFAULT };
    /// assert_eq!(small.deciding_calls(), 5);
    /// assert_eq!(RatePolicy::DEFAULT.deciding_calls(), 10);
    /// ```
    pub fn deciding_calls(&self) -> u64 {
        let min = u64::from(self.min_calls.max(1));
        match self.window {
            WindowShape::Calls(n) => min.min(u64::from(n.max(1))),
            WindowShape::Time(_) => min,
        }
    }
}

impl Default for RatePolicy {
    fn default() -> Self {
        RatePolicy::DEFAULT
    }
}

// Compared bit for bit, so that `Policy` and `Limits` stay `Eq`.
impl PartialEq for RatePolicy {
    fn eq(&self, other: &Self) -> bool {
        let bits = |r: Option<f64>| r.map(f64::to_bits);
        bits(self.failure_rate) == bits(other.failure_rate)
            && bits(self.slow_call_rate) == bits(other.slow_call_rate)
            && self.window == other.window
            && self.min_calls == other.min_calls
            && self.consecutive == other.consecutive
    }
}

impl Eq for RatePolicy {}

/// Whether a window's `totals` make a rate condition of `rate` hold, and
/// which: the failure rate first, then the slow-call rate. Nothing holds
/// below [`RatePolicy::deciding_calls`]; a rate exactly at its threshold
/// holds. Asked when a failure or a slow call completes (a fast success
/// never opens the circuit); the storage then applies [`Op::Trip`].
///
/// ```
/// use breaker::storage::{trips, RatePolicy, Totals};
/// use breaker::Reason;
///
/// let rate = RatePolicy { failure_rate: Some(0.5), min_calls: 4, ..RatePolicy::DEFAULT };
/// let window = |calls, failures| Totals { calls, failures, slow: 0 };
/// assert_eq!(trips(&window(3, 3), &rate), None); // below min_calls
/// assert_eq!(trips(&window(4, 1), &rate), None);
/// assert_eq!(trips(&window(4, 2), &rate), Some(Reason::FailureRate)); // exactly at it
/// ```
pub fn trips(totals: &Totals, rate: &RatePolicy) -> Option<Reason> {
    if totals.calls == 0 || totals.calls < rate.deciding_calls() {
        return None;
    }
    let reached = |count: u64, threshold: Option<f64>| {
        threshold.is_some_and(|t| count as f64 / totals.calls as f64 >= t)
    };
    if reached(totals.failures, rate.failure_rate) {
        Some(Reason::FailureRate)
    } else if reached(totals.slow, rate.slow_call_rate) {
        Some(Reason::SlowCallRate)
    } else {
        None
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::DEFAULT
    }
}

/// How the open period grows when the circuit opens again without closing
/// in between (a half-open trial failed, or it was opened by hand while
/// open or half-open).
///
/// [`Backoff::constant()`] is the default: every open period is the reset
/// timeout. [`Backoff::exponential(factor, max)`](Backoff::exponential): the
/// k-th consecutive re-opening stays open `min(reset_timeout * factor^k,
/// max)` (k is 0 for an opening from closed, and stops growing at
/// [`MAX_REOPENS`]). [`jitter(f)`](Backoff::jitter) spreads each period
/// uniformly within ±f of it. A growing or jittered period is rounded up to
/// whole milliseconds, as storages keep times.
///
/// ```
/// use breaker::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(2.0, Duration::from_secs(600)).jitter(0.2);
/// assert_eq!(backoff.factor(), 2.0);
/// assert_eq!(backoff.max(), Some(Duration::from_secs(600)));
/// assert_eq!(backoff.jitter_fraction(), 0.2);
/// assert!(Backoff::constant().is_constant());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    factor: f64,
    /// The cap; `None` for a constant backoff.
    max: Option<Duration>,
    jitter: f64,
}

impl Backoff {
    /// Every open period is the reset timeout (the default).
    ///
    /// ```
    /// use breaker::Backoff;
    /// use std::time::Duration;
    ///
    /// let period = Backoff::constant().period(Duration::from_secs(30), 7, 0);
    /// assert_eq!(period, Duration::from_secs(30));
    /// ```
    pub const fn constant() -> Self {
        Backoff {
            factor: 1.0,
            max: None,
            jitter: 0.0,
        }
    }

    /// The k-th consecutive re-opening stays open
    /// `min(reset_timeout * factor^k, max)`. The builder rejects a factor
    /// below 1 (or not a number) and a `max` below the reset timeout.
    ///
    /// ```
    /// use breaker::Backoff;
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(3.0, Duration::from_secs(100));
    /// let period = |k| backoff.period(Duration::from_secs(10), k, 0);
    /// assert_eq!(period(0), Duration::from_secs(10));
    /// assert_eq!(period(1), Duration::from_secs(30));
    /// assert_eq!(period(2), Duration::from_secs(90));
    /// assert_eq!(period(3), Duration::from_secs(100));
    /// ```
    pub const fn exponential(factor: f64, max: Duration) -> Self {
        Backoff {
            factor,
            max: Some(max),
            jitter: 0.0,
        }
    }

    /// Spreads every period uniformly within ±`fraction` of it; the builder
    /// accepts `0 <= fraction < 1`.
    ///
    /// ```
    /// use breaker::Backoff;
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::constant().jitter(0.5);
    /// let period = backoff.period(Duration::from_secs(10), 0, 42);
    /// assert!(period >= Duration::from_secs(5) && period <= Duration::from_secs(15));
    /// ```
    pub const fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// The growth factor (1 for a constant backoff).
    ///
    /// ```
    /// assert_eq!(breaker::Backoff::constant().factor(), 1.0);
    /// ```
    pub const fn factor(&self) -> f64 {
        self.factor
    }

    /// The cap of an exponential backoff.
    ///
    /// ```
    /// assert_eq!(breaker::Backoff::constant().max(), None);
    /// ```
    pub const fn max(&self) -> Option<Duration> {
        self.max
    }

    /// The jitter fraction (0: none).
    ///
    /// ```
    /// assert_eq!(breaker::Backoff::constant().jitter(0.1).jitter_fraction(), 0.1);
    /// ```
    pub const fn jitter_fraction(&self) -> f64 {
        self.jitter
    }

    /// Whether every period is the reset timeout: constant, without jitter.
    ///
    /// ```
    /// use breaker::Backoff;
    ///
    /// assert!(Backoff::constant().is_constant());
    /// assert!(!Backoff::constant().jitter(0.1).is_constant());
    /// ```
    #[inline(always)]
    pub fn is_constant(&self) -> bool {
        self.max.is_none() && self.jitter == 0.0
    }

    /// The open period after `reopens` consecutive re-openings; the jitter
    /// is drawn from the low 32 bits of `generation` (which every storage
    /// keeps), so one opening has one period wherever it is read.
    ///
    /// The arithmetic is spelled so that another implementation can repeat
    /// it bit for bit (the Redis storage's Lua script does): the reset
    /// timeout in whole milliseconds (rounded up) as an `f64`, multiplied by
    /// the factor once per re-opening until it reaches the cap, spread by
    /// `1 + jitter * (2u - 1)` with `u` from a 32-bit integer hash of the
    /// generation, then rounded up to a whole millisecond.
    ///
    /// ```
    /// use breaker::Backoff;
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(2.0, Duration::from_secs(60)).jitter(0.1);
    /// let base = Duration::from_secs(10);
    /// assert_eq!(backoff.period(base, 1, 7), backoff.period(base, 1, 7));
    /// let p = backoff.period(base, 1, 7).as_secs_f64();
    /// assert!((18.0..=22.0).contains(&p));
    /// ```
    pub fn period(&self, reset_timeout: Duration, reopens: u32, generation: u64) -> Duration {
        if self.is_constant() {
            return reset_timeout;
        }
        let base = ceil_millis(reset_timeout).as_millis() as f64;
        let mut ms = base;
        if let Some(max) = self.max {
            // Never below the reset timeout, even with a cap set below a
            // reset timeout changed later.
            let cap = (ceil_millis(max).as_millis() as f64).max(base);
            for _ in 0..reopens.min(MAX_REOPENS) {
                if ms >= cap {
                    break;
                }
                ms *= self.factor;
            }
            if ms > cap {
                ms = cap;
            }
        }
        if self.jitter > 0.0 {
            let u = f64::from(mix32(generation as u32)) / 4_294_967_296.0;
            ms *= 1.0 + self.jitter * (2.0 * u - 1.0);
        }
        let ms = ms.ceil();
        if ms >= u64::MAX as f64 {
            Duration::MAX
        } else {
            Duration::from_millis(ms as u64)
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::constant()
    }
}

// Compared bit for bit, so that `Policy` and `Limits` stay `Eq`.
impl PartialEq for Backoff {
    fn eq(&self, other: &Self) -> bool {
        self.factor.to_bits() == other.factor.to_bits()
            && self.max == other.max
            && self.jitter.to_bits() == other.jitter.to_bits()
    }
}

impl Eq for Backoff {}

/// A 32-bit integer hash (two multiply-xorshift rounds), so that
/// neighbouring generations get unrelated jitter. Only 32-bit operations:
/// the Redis storage's Lua script computes the same (`mix32` in
/// `redis/state.lua`).
pub(crate) fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x
}

/// An operation on a breaker's state; [`step`] says what each one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Ask to run a call: always admitted in closed; admitted as a trial in
    /// open once the open period has passed (moving to half-open) and in
    /// half-open while fewer than `half_open_calls` trials run; rejected
    /// otherwise.
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
    /// A rate condition held (see [`trips`]) on the result of a call
    /// admitted under `generation`: opens the circuit if it is still
    /// closed in that generation, else changes nothing (a second failure
    /// deciding the same generation is counted in the window, not a second
    /// trip).
    Trip {
        /// The generation the deciding call was admitted under.
        generation: u64,
        /// Which condition held.
        reason: Reason,
    },
    /// A closed-state call admitted under `generation` was slow (it took
    /// longer than the slow-call duration), told to a storage that
    /// [keeps the window](crate::storage::Storage::keeps_window), which
    /// counts it in the window (as a failure too when `failed`) and opens
    /// the circuit when a rate condition holds. [`step`] applies it as the
    /// [`Op::Success`] or [`Op::Failure`] of a call that is not a trial;
    /// a breaker sends it to no other storage (it decides the rates
    /// itself and applies [`Op::Trip`]).
    SlowCall {
        /// The generation the call was admitted under.
        generation: u64,
        /// Whether it failed (else it succeeded, or its error was excluded).
        failed: bool,
    },
    /// A manual transition into this state (entered anew even if already in it).
    Force(State),
    /// Closed with both counters zero.
    Reset,
}

impl Op {
    /// The operation without its slow flag: [`Op::SlowCall`] as the
    /// [`Op::Success`] or [`Op::Failure`] of a call that is not a trial,
    /// any other as it is.
    pub(crate) fn unslowed(self) -> Op {
        match self {
            Op::SlowCall {
                generation,
                failed: true,
            } => Op::Failure {
                generation,
                trial: false,
            },
            Op::SlowCall {
                generation,
                failed: false,
            } => Op::Success {
                generation,
                trial: false,
            },
            other => other,
        }
    }
}

/// Why a call was rejected or why a failure opened the circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Open, and the reset timeout has not elapsed yet.
    TimeoutNotElapsed,
    /// Half-open, and every trial place is taken (`half_open_calls` trials
    /// run).
    TrialInProgress,
    /// The failure brought the counter to `fail_max`.
    FailureThreshold,
    /// The half-open trial call failed.
    TrialFailed,
    /// The failures in the window reached the failure rate.
    FailureRate,
    /// The slow calls in the window reached the slow-call rate.
    SlowCallRate,
}

impl Reason {
    /// A short lowercase description, used in error messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::TimeoutNotElapsed => "timeout not elapsed yet",
            Reason::TrialInProgress => "half-open trial in progress",
            Reason::FailureThreshold => "failures threshold reached",
            Reason::TrialFailed => "trial call failed",
            Reason::FailureRate => "failure rate threshold reached",
            Reason::SlowCallRate => "slow call rate threshold reached",
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
/// The largest `half_open_calls` any storage must support.
pub const MAX_HALF_OPEN_CALLS: u32 = (1 << 8) - 1;
/// The most consecutive re-openings a snapshot counts: a growing backoff
/// stops growing after this many.
pub const MAX_REOPENS: u32 = (1 << 8) - 1;

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
///     ..Limits::DEFAULT
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
                if snap.retry_after(limits.open_period(snap), limits.now) == Some(Duration::ZERO) {
                    next = enter(snap, State::HalfOpen, limits);
                    next.trial = true;
                    next.trials = 1;
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
            State::HalfOpen if snap.running_trials() >= limits.policy.half_open_calls.max(1) => {
                Outcome::Rejected {
                    reason: Reason::TrialInProgress,
                }
            }
            State::HalfOpen => {
                next.trial = true;
                next.trials = count(snap.running_trials() + 1);
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
                next.trials = count(snap.running_trials().saturating_sub(1));
                next.trial = next.trials > 0;
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
            // A rate policy without `fail_max`: the window counts the
            // failure, the word nothing (so that successes after it have
            // nothing to reset).
            State::Closed if !limits.policy.rate.consecutive_on() => {
                Outcome::Counted { tripped: None }
            }
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
        Op::Trip { generation, reason } => {
            if generation == snap.generation && snap.state == State::Closed {
                next = enter(snap, State::Open, limits);
                Outcome::Counted {
                    tripped: Some(reason),
                }
            } else {
                Outcome::Stale
            }
        }
        Op::Cancel { generation } => {
            if generation == snap.generation
                && snap.state == State::HalfOpen
                && snap.running_trials() > 0
            {
                next.trials = count(snap.running_trials() - 1);
                next.trial = next.trials > 0;
                Outcome::Done
            } else {
                Outcome::Stale
            }
        }
        // A slow call counts in the window of a storage that keeps it;
        // here, it is the call's success or failure.
        Op::SlowCall { .. } => return step(snap, op.unslowed(), limits),
        Op::Force(state) => {
            next = enter(snap, state, limits);
            Outcome::Done
        }
        Op::Reset => {
            next = enter(snap, State::Closed, limits);
            Outcome::Done
        }
    };
    // Half-open with several trials, or after a counted re-opening, keeps
    // no failure count (see `Snapshot::fail_counter`): a storage holds the
    // trials and re-openings in its place.
    if next.state == State::HalfOpen && (next.trials > 1 || next.reopens > 0) {
        next.fail_counter = 0;
    }
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
        trials: 0,
        reopens: match (snap.state, state) {
            (_, State::Closed) | (State::Closed, _) => 0,
            _ if limits.policy.backoff.is_constant() => 0,
            (_, State::Open) => count((u32::from(snap.reopens) + 1).min(MAX_REOPENS)),
            (_, State::HalfOpen) => snap.reopens,
        },
        opened_at: match state {
            State::Closed => None,
            State::Open => Some(ceil_millis(limits.now)),
            State::HalfOpen => snap.opened_at,
        },
    }
}

/// A count of trials or re-openings as a snapshot keeps it.
fn count(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Rounds up to a whole number of milliseconds.
pub(crate) fn ceil_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROWING: Policy = Policy {
        half_open_calls: 3,
        backoff: Backoff::exponential(2.0, Duration::from_secs(600)),
        rate: RatePolicy::DEFAULT,
    };

    fn limits(policy: &Policy) -> Limits<'_> {
        Limits {
            fail_max: 1,
            success_threshold: 5,
            reset_timeout: Duration::from_secs(10),
            now: Duration::from_secs(1_000),
            policy,
        }
    }

    fn half_open(generation: u64) -> Snapshot {
        Snapshot {
            state: State::HalfOpen,
            generation,
            fail_counter: 7,
            ..Snapshot::INITIAL
        }
    }

    #[test]
    fn a_storage_that_keeps_only_the_flag_counts_it_as_one_trial() {
        let flag_only = Snapshot {
            trial: true,
            ..half_open(4)
        };
        let one = limits(&Policy::DEFAULT);
        assert!(matches!(
            step(&flag_only, Op::Admit, &one).1,
            Outcome::Rejected {
                reason: Reason::TrialInProgress
            }
        ));
        let (next, out) = step(&flag_only, Op::Admit, &limits(&GROWING));
        assert!(matches!(out, Outcome::Admitted { trial: true, .. }));
        assert_eq!((next.trials, next.trial), (2, true));
    }

    #[test]
    fn half_open_keeps_the_failure_count_only_with_one_trial_and_no_reopening() {
        let l = limits(&GROWING);
        // One trial: kept, as pybreaker keeps it.
        let (one, _) = step(&half_open(4), Op::Admit, &l);
        assert_eq!((one.trials, one.fail_counter), (1, 7));
        // A second: not kept, and not restored when it finishes.
        let (two, _) = step(&one, Op::Admit, &l);
        assert_eq!((two.trials, two.fail_counter), (2, 0));
        let cancel = Op::Cancel { generation: 4 };
        let (back, _) = step(&two, cancel, &l);
        assert_eq!((back.trials, back.fail_counter), (1, 0));
        // A trial failure opens with one failure.
        let failure = Op::Failure {
            generation: 4,
            trial: true,
        };
        let (open, _) = step(&back, failure, &l);
        assert_eq!(
            (open.state, open.fail_counter, open.reopens),
            (State::Open, 1, 1)
        );
    }

    #[test]
    fn reopenings_are_counted_only_under_a_growing_backoff() {
        let open = Snapshot {
            state: State::Open,
            generation: 2,
            reopens: 3,
            opened_at: Some(Duration::from_secs(1)),
            ..Snapshot::INITIAL
        };
        let force = Op::Force(State::Open);
        assert_eq!(step(&open, force, &limits(&GROWING)).0.reopens, 4);
        assert_eq!(step(&open, force, &limits(&Policy::DEFAULT)).0.reopens, 0);
        // Kept through half-open, reset by closing, capped.
        let (half, _) = step(&open, Op::Force(State::HalfOpen), &limits(&GROWING));
        assert_eq!(half.reopens, 3);
        assert_eq!(step(&half, Op::Reset, &limits(&GROWING)).0.reopens, 0);
        let most = Snapshot {
            reopens: MAX_REOPENS as u16,
            ..open
        };
        assert_eq!(
            u32::from(step(&most, force, &limits(&GROWING)).0.reopens),
            MAX_REOPENS
        );
    }

    #[test]
    fn the_open_period_in_force_decides_admission() {
        let l = limits(&GROWING);
        let open = Snapshot {
            state: State::Open,
            generation: 2,
            reopens: 2,
            opened_at: Some(l.now),
            ..Snapshot::INITIAL
        };
        assert_eq!(l.open_period(&open), Duration::from_secs(40));
        let early = Limits {
            now: l.now + Duration::from_millis(39_999),
            ..l
        };
        assert!(matches!(
            step(&open, Op::Admit, &early).1,
            Outcome::Rejected { .. }
        ));
        let due = Limits {
            now: l.now + Duration::from_secs(40),
            ..l
        };
        assert!(matches!(
            step(&open, Op::Admit, &due).1,
            Outcome::Admitted { trial: true, .. }
        ));
    }

    #[test]
    fn a_cap_below_the_reset_timeout_never_shortens_the_period() {
        let backoff = Backoff::exponential(2.0, Duration::from_secs(5));
        let period = backoff.period(Duration::from_secs(10), 3, 0);
        assert_eq!(period, Duration::from_secs(10));
    }

    #[test]
    fn jitter_is_drawn_from_the_low_32_bits_of_the_generation() {
        let backoff = Backoff::constant().jitter(0.5);
        let base = Duration::from_secs(10);
        assert_eq!(
            backoff.period(base, 0, 7),
            backoff.period(base, 0, 7 + (1 << 32))
        );
        assert_ne!(backoff.period(base, 0, 7), backoff.period(base, 0, 8));
    }
}
