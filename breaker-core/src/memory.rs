//! The default storage: the whole state in one atomic word, updated lock-free.

use std::time::Duration;

use crate::clock::ClockImpl;
use crate::state::{step, Backoff, Limits, Op, Outcome, Snapshot, State};
use crate::storage::{Applied, Storage};
use crate::sync::{AtomicU64, Ordering};

// Layout of the state word, low bits first: 16 bits of failures, 8 of
// trial successes, the trial flag, 2 bits of state, and 37 of generation.
// Two states reuse fields that are idle in them: open keeps the backoff's
// re-openings in the success bits (no trial succeeds while open), and
// half-open with several trials or after a counted re-opening (state code
// `WIDE_HALF_OPEN`) keeps the trials running in the low 8 failure bits and
// the re-openings in the high 8, its failure count being 0 there (`step`
// says so).
const FAIL_BITS: u32 = 16;
const SUCCESS_BITS: u32 = 8;
const SUCCESS_SHIFT: u32 = FAIL_BITS;
const TRIAL_SHIFT: u32 = SUCCESS_SHIFT + SUCCESS_BITS;
const STATE_SHIFT: u32 = TRIAL_SHIFT + 1;
const GEN_SHIFT: u32 = STATE_SHIFT + 2;
const GEN_BITS: u32 = 64 - GEN_SHIFT;

const FAIL_MASK: u64 = (1 << FAIL_BITS) - 1;
const SUCCESS_MASK: u64 = (1 << SUCCESS_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

// Layout of the `opened` word: milliseconds since the Unix epoch above (45
// bits: past the year 3000, beyond any time a `Duration` of `u64`
// nanoseconds can hold), the low bits of the generation that opened the
// circuit below.
const TAG_BITS: u32 = 19;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// The latest opening time the `opened` word holds, in milliseconds.
const MAX_OPENED_MS: u64 = u64::MAX >> TAG_BITS;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
/// Half-open with the trials and re-openings in the failure bits.
const WIDE_HALF_OPEN: u64 = 3;
const COUNT_BITS: u32 = 8;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

// The pure limits fit the word.
const _: () = assert!(crate::state::MAX_HALF_OPEN_CALLS as u64 == COUNT_MASK);
const _: () = assert!(crate::state::MAX_REOPENS as u64 == COUNT_MASK);
const _: () = assert!(crate::state::MAX_REOPENS as u64 <= SUCCESS_MASK);
const _: () = assert!(2 * COUNT_BITS == FAIL_BITS);
const _: () = assert!(GEN_BITS == 37);

/// In-process storage, the default: one atomic word holds state, generation,
/// both counters and the trial flag, so every operation is a single
/// compare-and-swap and a read is a single load.
///
/// A second word holds the time the circuit last opened, tagged with the
/// generation it belongs to. It is published right after the transition; a
/// reader that finds it not yet published treats the circuit as just opened.
/// A snapshot takes the time only if the state word did not change while it
/// read it, so it never pairs a state with another generation's time (the
/// loom models in `tests/loom.rs` check both words' protocol).
///
/// Limits: `fail_max` up to 65,535, `success_threshold` and
/// `half_open_calls` up to 255 (what the builder accepts), a backoff that
/// grows for up to 255 consecutive re-openings, and 2^37 generations before their numbers wrap: a
/// call's result is matched to the generation it was admitted under, so a
/// result could be taken for a later generation's only if the breaker went
/// through 137 billion transitions while that one call ran (at 20 million a
/// second, the rate a loop of `half_open()` reached, about two hours of
/// nothing but manual transitions).
///
/// ```
/// use breaker::{CircuitBreaker, MemoryStorage};
///
/// let cb = CircuitBreaker::builder("db").storage(MemoryStorage::new()).build();
/// assert_eq!(cb.fail_counter(), 0);
/// ```
#[derive(Debug)]
#[repr(align(64))]
pub struct MemoryStorage {
    word: AtomicU64,
    opened: AtomicU64,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    /// A storage holding a closed breaker with zero counters.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        MemoryStorage {
            word: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    /// A storage holding a closed breaker with zero counters.
    #[cfg(loom)]
    pub fn new() -> Self {
        MemoryStorage {
            word: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    /// A storage holding a breaker in `state` with zero counters. An open
    /// one opened when the storage is made, on the system clock (the
    /// default [`SystemClock`](crate::clock::SystemClock)'s): it admits its
    /// trial one reset timeout later. A half-open one admits its trial at
    /// once.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, MemoryStorage, State};
    ///
    /// let cb = CircuitBreaker::builder("db")
    ///     .storage(MemoryStorage::with_state(State::Open))
    ///     .build();
    /// assert_eq!(cb.current_state(), State::Open);
    /// assert!(cb.call(|| Ok::<_, &str>(())).unwrap_err().is_open());
    ///
    /// let trial = CircuitBreaker::builder("db")
    ///     .storage(MemoryStorage::with_state(State::HalfOpen))
    ///     .build();
    /// assert!(trial.call(|| Ok::<_, &str>(())).is_ok()); // the trial closes it
    /// assert_eq!(trial.current_state(), State::Closed);
    /// ```
    pub fn with_state(state: State) -> Self {
        let storage = Self::new();
        if state != State::Closed {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let limits = Limits {
                fail_max: 1,
                success_threshold: 1,
                reset_timeout: Duration::ZERO,
                now,
                ..Limits::DEFAULT
            };
            let _ = storage.apply(Op::Force(state), &limits);
        }
        storage
    }

    /// The raw state word.
    #[inline(always)]
    fn word(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    /// The current state, in one load.
    #[inline]
    pub(crate) fn state(&self) -> State {
        word_state(self.word())
    }

    /// The generation of a closed circuit, in one load: admission on the
    /// hot path.
    #[inline(always)]
    pub(crate) fn closed_generation(&self) -> Option<u64> {
        let word = self.word();
        if word_state(word) == State::Closed {
            return Some(word_generation(word));
        }
        None
    }

    /// Whether a success of a call admitted (not as a trial) under
    /// `generation` has anything to record, in one load: not when the
    /// circuit is closed with no failures counted (the hot path), nor when
    /// the generation has moved on.
    ///
    /// The quiet test comes first and alone on the hot path (one test of
    /// the loaded word); the generation is compared out of line.
    #[inline(always)]
    pub(crate) fn success_to_record(&self, generation: u64) -> bool {
        let word = self.word();
        if word_is_quiet(word) {
            return false;
        }
        word_generation_is(word, generation)
    }

    /// An open circuit far from its deadline: the nanoseconds left, decided
    /// in integers on the coarse clock. `None` for every other case (closed,
    /// half-open, or open near its deadline), which a snapshot decides.
    /// `timeout_ns` is the reset timeout; a `backoff`, unless it is `None`
    /// (constant), grows it by the word's re-openings.
    #[inline(always)]
    pub(crate) fn open_rejection(
        &self,
        timeout_ns: u64,
        backoff: Option<&Backoff>,
        clock: &ClockImpl,
    ) -> Option<u64> {
        let word = self.word();
        if word_state(word) != State::Open {
            return None;
        }
        let timeout_ns = match backoff {
            None => timeout_ns,
            Some(backoff) => {
                let reopens = ((word >> SUCCESS_SHIFT) & SUCCESS_MASK) as u32; // open: re-openings
                let period = backoff.period(
                    Duration::from_nanos(timeout_ns),
                    reopens,
                    word_generation(word),
                );
                u64::try_from(period.as_nanos()).unwrap_or(u64::MAX)
            }
        };
        match self.opened_ms(word) {
            Some(ms) => {
                // A deadline past the last time a clock can show (2554)
                // saturates to it, and is still ahead of any clock short of
                // that very last instant.
                let deadline = ms.saturating_mul(1_000_000).saturating_add(timeout_ns);
                let (now, lag) = clock.coarse_nanos();
                let left = deadline.saturating_sub(now);
                // Never more than the open period: the millisecond round-up
                // of the opening time and the coarse clock's lag would
                // otherwise show through.
                (left > lag).then_some(left.min(timeout_ns))
            }
            // Opened an instant ago; its opener is about to publish when.
            None if self.word() == word => Some(timeout_ns),
            // The time read is another generation's: the state moved on
            // since `word` was read.
            None => None,
        }
    }

    /// When the generation of `word` opened the circuit, in milliseconds
    /// since the epoch, if that is published yet.
    #[inline]
    fn opened_ms(&self, word: u64) -> Option<u64> {
        let slot = self.opened.load(Ordering::Acquire);
        (slot & TAG_MASK == word_generation(word) & TAG_MASK && slot != 0)
            .then_some(slot >> TAG_BITS)
    }

    /// The snapshot `word` holds, with its opening time read from the
    /// `opened` word; `None` if the state word changed meanwhile (the time
    /// read may then be a later generation's: the caller reads again).
    fn decode_consistent(&self, word: u64) -> Option<Snapshot> {
        if word_state(word) == State::Closed {
            return Some(decode_with(word, 0));
        }
        let slot = self.opened.load(Ordering::Acquire);
        (self.word() == word).then(|| decode_with(word, slot))
    }

    /// [`decode_consistent`](Self::decode_consistent) without the check.
    #[cfg(all(test, not(loom)))]
    fn decode(&self, word: u64) -> Snapshot {
        decode_with(word, self.opened.load(Ordering::Acquire))
    }

    /// Publishes when generation `generation` opened the circuit, unless a
    /// later generation has already replaced it.
    fn publish_opened(&self, generation: u64, at: Duration) {
        let ms = u64::try_from(at.as_millis()).unwrap_or(MAX_OPENED_MS);
        let new = (ms.min(MAX_OPENED_MS) << TAG_BITS) | (generation & TAG_MASK);
        let mut current = self.opened.load(Ordering::Acquire);
        // Only the opener of the current generation may write: a writer that
        // was delayed past a newer transition gives up, and a newer opener's
        // compare-and-swap makes the delayed writer's fail.
        while word_generation(self.word.load(Ordering::Acquire)) == generation {
            match self.opened.compare_exchange_weak(
                current,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

/// The snapshot of state word `word`, with `slot` the `opened` word read
/// with it.
fn decode_with(word: u64, slot: u64) -> Snapshot {
    let state = word_state(word);
    let generation = word_generation(word);
    let opened_at = match state {
        State::Closed => None,
        State::Open | State::HalfOpen => {
            let tag = slot & TAG_MASK;
            // Open: the time its own opener published. Half-open: the one
            // of the generation it was entered from, whose time it keeps,
            // or its own (published when entered, see `apply`). Any other
            // tag is an earlier opening's time, not this one's: none.
            let tag_ok = tag == generation & TAG_MASK
                || (state == State::HalfOpen && tag == generation.wrapping_sub(1) & TAG_MASK);
            // A time of 0 is "none": a half-open circuit entered from
            // closed (see `apply`).
            (slot >> TAG_BITS != 0 && tag_ok).then(|| Duration::from_millis(slot >> TAG_BITS))
        }
    };
    let code = (word >> STATE_SHIFT) & 3;
    let low = word & FAIL_MASK;
    let high = (word >> SUCCESS_SHIFT) & SUCCESS_MASK;
    let trial = word_trial(word);
    // Closed and half-open with one trial read as they always did; open
    // and the wide half-open reuse idle fields.
    let mut snap = Snapshot {
        state,
        generation,
        fail_counter: low as u32,
        success_counter: high as u32,
        trial,
        trials: u16::from(trial),
        reopens: 0,
        opened_at,
    };
    if code == OPEN {
        snap.success_counter = 0;
        snap.reopens = high as u16;
    } else if code == WIDE_HALF_OPEN {
        snap.fail_counter = 0;
        snap.trials = (low & COUNT_MASK) as u16;
        snap.reopens = (low >> COUNT_BITS) as u16;
    }
    snap
}

fn encode(s: &Snapshot) -> u64 {
    let (code, low) = match s.state {
        State::Closed => (CLOSED, u64::from(s.fail_counter)),
        State::Open => (OPEN, u64::from(s.fail_counter)),
        State::HalfOpen if s.trials <= 1 && s.reopens == 0 => {
            (HALF_OPEN, u64::from(s.fail_counter))
        }
        State::HalfOpen => return encode_wide(s),
    };
    // No trial succeeds while open, and closed and a narrow half-open count
    // no re-openings: one of the two is 0.
    let high = u64::from(s.success_counter) | u64::from(s.reopens);
    (low & FAIL_MASK)
        | ((high & SUCCESS_MASK) << SUCCESS_SHIFT)
        | (u64::from(s.trial) << TRIAL_SHIFT)
        | (code << STATE_SHIFT)
        | ((s.generation & GEN_MASK) << GEN_SHIFT)
}

/// Half-open with several trials or counted re-openings: those in the
/// failure bits (`step` keeps no failure count there).
#[cold]
fn encode_wide(s: &Snapshot) -> u64 {
    debug_assert_eq!(s.fail_counter, 0, "step keeps no failures there");
    let trials = u64::from(s.running_trials()).min(COUNT_MASK);
    let low = trials | (u64::from(s.reopens).min(COUNT_MASK) << COUNT_BITS);
    low | ((u64::from(s.success_counter) & SUCCESS_MASK) << SUCCESS_SHIFT)
        | (u64::from(trials > 0) << TRIAL_SHIFT)
        | (WIDE_HALF_OPEN << STATE_SHIFT)
        | ((s.generation & GEN_MASK) << GEN_SHIFT)
}

#[inline(always)]
fn word_state(word: u64) -> State {
    match (word >> STATE_SHIFT) & 3 {
        CLOSED => State::Closed,
        OPEN => State::Open,
        _ => State::HalfOpen,
    }
}

#[inline(always)]
fn word_generation(word: u64) -> u64 {
    word >> GEN_SHIFT
}

/// Whether `word` is of `generation`: off the hot path, where failures
/// are counted or the state is not closed.
#[cold]
#[inline(never)]
fn word_generation_is(word: u64, generation: u64) -> bool {
    word_generation(word) == generation
}

#[inline(always)]
fn word_trial(word: u64) -> bool {
    (word >> TRIAL_SHIFT) & 1 == 1
}

/// True when the word is closed with a zero failure counter: a success there
/// changes nothing. (Closed is 0 and the success counter is 0 in closed.)
#[inline(always)]
fn word_is_quiet(word: u64) -> bool {
    word & ((3 << STATE_SHIFT) | FAIL_MASK) == 0
}

fn mask_outcome(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Admitted { generation, trial } => Outcome::Admitted {
            generation: generation & GEN_MASK,
            trial,
        },
        other => other,
    }
}

impl Storage for MemoryStorage {
    fn load(&self) -> Snapshot {
        loop {
            if let Some(snapshot) = self.decode_consistent(self.word()) {
                return snapshot;
            }
        }
    }

    fn apply(&self, op: Op, limits: &Limits) -> Applied {
        // `limits.now` is the time already: nothing to read.
        self.apply_timed(op, limits, None::<fn() -> Duration>)
    }
}

impl MemoryStorage {
    /// [`Storage::apply`]; with `now`, the time is read from it (and
    /// `limits.now` ignored) only when the outcome depends on it: a failure
    /// that trips stamps when, and admission to an open circuit compares
    /// with it. Counting a failure or resetting the counter after one needs
    /// no clock.
    #[inline]
    pub(crate) fn apply_timed(
        &self,
        op: Op,
        limits: &Limits,
        mut now: Option<impl FnOnce() -> Duration>,
    ) -> Applied {
        let mut limits = *limits;
        let mut current = self.word();
        loop {
            let Some(before) = self.decode_consistent(current) else {
                current = self.word();
                continue;
            };
            let (mut after, mut outcome) = step(&before, op, &limits);
            if let Some(read) = now.take_if(|_| needs_time(&before, op, &after)) {
                limits.now = read();
                (after, outcome) = step(&before, op, &limits);
            }
            after.generation &= GEN_MASK;
            let outcome = mask_outcome(outcome);
            let new = encode(&after);
            if new == current {
                return Applied {
                    before,
                    after: before,
                    outcome,
                };
            }
            match self
                .word
                .compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let entered = after.generation != before.generation;
                    match (after.state, after.opened_at) {
                        (State::Open, Some(at)) => self.publish_opened(after.generation, at),
                        // Half-open keeps the time of the generation it was
                        // entered from, and reads it under that generation's
                        // tag; entered again by hand from half-open, that
                        // tag is two generations old: publish it under its
                        // own.
                        (State::HalfOpen, Some(at))
                            if entered && before.state == State::HalfOpen =>
                        {
                            self.publish_opened(after.generation, at)
                        }
                        // Half-open entered by hand from closed: no time
                        // (0), under its own tag.
                        (State::HalfOpen, None) if entered && before.state == State::Closed => {
                            self.publish_opened(after.generation, Duration::ZERO)
                        }
                        // Half-open entered from an open (or half-open)
                        // generation whose time was not published yet: its
                        // opener may still publish it under that
                        // generation's tag, which this one reads as its own.
                        _ => {}
                    }
                    return Applied {
                        before,
                        after,
                        outcome,
                    };
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// Whether `step` read `limits.now` to go from `before` to `after`: to
/// decide whether an open circuit's reset timeout has passed, and to stamp
/// when the circuit opened. (Everything else it decides from counters.)
fn needs_time(before: &Snapshot, op: Op, after: &Snapshot) -> bool {
    let admits_to_open = matches!(op, Op::Admit) && before.state == State::Open;
    let opens = after.state == State::Open && after.generation != before.generation;
    admits_to_open || opens
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn limits(now_ms: u64) -> Limits<'static> {
        Limits {
            fail_max: 3,
            success_threshold: 1,
            reset_timeout: Duration::from_millis(100),
            now: Duration::from_millis(now_ms),
            ..Limits::DEFAULT
        }
    }

    /// Applies `op` with a clock that counts its readings.
    fn apply_counting(m: &MemoryStorage, op: Op, now_ms: u64) -> (Applied, u32) {
        let reads = std::cell::Cell::new(0);
        let applied = m.apply_timed(
            op,
            &limits(0),
            Some(|| {
                reads.set(reads.get() + 1);
                Duration::from_millis(now_ms)
            }),
        );
        (applied, reads.get())
    }

    #[test]
    fn the_clock_is_read_only_to_open_and_to_admit_to_an_open_circuit() {
        let m = MemoryStorage::new();
        let failure = |generation| Op::Failure {
            generation,
            trial: false,
        };
        let success = Op::Success {
            generation: 0,
            trial: false,
        };
        // Counting failures and resetting the count: no clock.
        assert_eq!(apply_counting(&m, failure(0), 5).1, 0);
        assert_eq!(apply_counting(&m, success, 5).1, 0);
        assert_eq!(apply_counting(&m, failure(0), 5).1, 0);
        assert_eq!(apply_counting(&m, failure(0), 5).1, 0);
        // The third trips: one reading, stamped as when it opened.
        let (tripped, reads) = apply_counting(&m, failure(0), 1_234);
        assert_eq!((tripped.after.state, reads), (State::Open, 1));
        assert_eq!(tripped.after.opened_at, Some(Duration::from_millis(1_234)));
        // Admission to the open circuit compares with the time: too early ...
        let (early, reads) = apply_counting(&m, Op::Admit, 1_300);
        assert_eq!((early.after.state, reads), (State::Open, 1));
        assert!(matches!(early.outcome, Outcome::Rejected { .. }));
        // ... and once the reset timeout has passed.
        let (trial, reads) = apply_counting(&m, Op::Admit, 1_334);
        assert_eq!((trial.after.state, reads), (State::HalfOpen, 1));
        // A trial's success closes without reading it; a manual open does.
        let generation = trial.after.generation;
        let closing = Op::Success {
            generation,
            trial: true,
        };
        assert_eq!(apply_counting(&m, closing, 2_000).1, 0);
        assert_eq!(m.load().state, State::Closed);
        let (opened, reads) = apply_counting(&m, Op::Force(State::Open), 3_000);
        assert_eq!(
            (opened.after.opened_at, reads),
            (Some(Duration::from_secs(3)), 1)
        );
    }

    #[test]
    fn encode_decode_round_trips_every_field() {
        let m = MemoryStorage::new();
        let max = |bits: u32| (1u32 << bits) - 1;
        let half_open = Snapshot {
            state: State::HalfOpen,
            generation: GEN_MASK,
            fail_counter: FAIL_MASK as u32,
            success_counter: SUCCESS_MASK as u32,
            trial: true,
            trials: 1,
            reopens: 0,
            opened_at: None,
        };
        // Several trials, or re-openings: the failure bits hold them.
        let wide = Snapshot {
            fail_counter: 0,
            trials: max(COUNT_BITS) as u16,
            reopens: max(COUNT_BITS) as u16,
            ..half_open
        };
        let open = Snapshot {
            state: State::Open,
            success_counter: 0,
            trial: false,
            trials: 0,
            reopens: max(COUNT_BITS) as u16,
            ..half_open
        };
        let closed = Snapshot {
            state: State::Closed,
            ..Snapshot::INITIAL
        };
        for s in [half_open, wide, open, closed] {
            assert_eq!(m.decode(encode(&s)), s);
        }
        // The wide layout keeps the generation's 37 bits and a narrow
        // half-open word its whole failure count.
        assert_eq!(word_generation(encode(&wide)), GEN_MASK);
        assert_eq!(m.decode(encode(&half_open)).fail_counter, FAIL_MASK as u32);
    }

    #[test]
    fn generation_wraps_without_losing_results() {
        let m = MemoryStorage::new();
        m.word.store(
            encode(&Snapshot {
                generation: GEN_MASK,
                ..Snapshot::INITIAL
            }),
            Ordering::SeqCst,
        );
        // Entering open from the last generation wraps to 0 ...
        m.apply(Op::Force(State::Open), &limits(1_000));
        assert_eq!(m.load().generation, 0);
        // ... and a trial admitted there reports under a generation that matches.
        let admitted = m.apply(Op::Admit, &limits(1_200)).outcome;
        let Outcome::Admitted { generation, trial } = admitted else {
            panic!("expected a trial, got {admitted:?}");
        };
        assert!(trial);
        let applied = m.apply(Op::Success { generation, trial }, &limits(1_200));
        assert_eq!(applied.after.state, State::Closed);
    }

    #[test]
    fn a_trial_result_from_2_pow_25_generations_ago_is_stale() {
        // With 25 bits of generation, a trial admitted 2^25 transitions ago
        // matched the current trial's generation, and its success closed the
        // circuit while that trial still ran (`half_open()` in a loop
        // reproduced it in under two seconds).
        let m = MemoryStorage::new();
        let stale = 7;
        m.word.store(
            encode(&Snapshot {
                state: State::HalfOpen,
                generation: stale + (1 << 25),
                trial: true,
                ..Snapshot::INITIAL
            }),
            Ordering::SeqCst,
        );
        let late = Op::Success {
            generation: stale,
            trial: true,
        };
        let applied = m.apply(late, &limits(1_000));
        assert_eq!(applied.outcome, Outcome::Stale);
        assert_eq!(m.load().state, State::HalfOpen);
        assert!(m.load().trial);
    }

    #[test]
    fn the_opened_word_holds_any_time_a_clock_can_show() {
        let m = MemoryStorage::new();
        let last = Duration::from_nanos(u64::MAX);
        m.apply(Op::Force(State::Open), &limits(0)); // generation 1
        m.publish_opened(1, last);
        assert_eq!(
            m.load().opened_at,
            Some(Duration::from_millis(last.as_millis() as u64))
        );
    }

    #[test]
    fn opened_at_is_published_with_millisecond_precision() {
        let m = MemoryStorage::new();
        m.apply(Op::Force(State::Open), &limits(1_234));
        assert_eq!(m.load().opened_at, Some(Duration::from_millis(1_234)));
    }

    // Found by the loom model `half_open_shows_its_own_opened_at`: half-open
    // read the opening time whatever generation had published it.
    #[test]
    fn a_snapshot_never_shows_another_generations_opened_at() {
        let m = MemoryStorage::new();
        m.apply(Op::Force(State::Open), &limits(1_000)); // generation 1
        m.apply(Op::Admit, &limits(1_100)); // half-open, generation 2
        let half_open = m.word();
        assert_eq!(
            m.decode(half_open).opened_at,
            Some(Duration::from_millis(1_000))
        );
        let failed = Op::Failure {
            generation: 2,
            trial: true,
        };
        m.apply(failed, &limits(1_200)); // open again, generation 3
                                         // A reader that loaded the word before the failure and the time
                                         // after it: not the later opening's time.
        assert_eq!(m.decode(half_open).opened_at, None);
        assert_eq!(m.load().opened_at, Some(Duration::from_millis(1_200)));

        // Half-open entered by hand from closed, read before its entry has
        // published "no time": not the time the earlier opening left.
        m.apply(Op::Force(State::Closed), &limits(1_300)); // generation 4
        let entering = encode(&Snapshot {
            state: State::HalfOpen,
            generation: 5,
            ..Snapshot::INITIAL
        });
        assert_eq!(m.decode(entering).opened_at, None);
        m.apply(Op::Force(State::HalfOpen), &limits(1_300));
        assert_eq!(m.load().opened_at, None);
    }

    #[test]
    fn half_open_keeps_its_opened_at_through_manual_reentry() {
        let m = MemoryStorage::new();
        m.apply(Op::Force(State::Open), &limits(1_000));
        for _ in 0..3 {
            m.apply(Op::Force(State::HalfOpen), &limits(2_000));
            assert_eq!(m.load().opened_at, Some(Duration::from_millis(1_000)));
        }
    }

    #[test]
    fn a_delayed_opener_does_not_overwrite_a_newer_opened_at() {
        let m = MemoryStorage::new();
        m.apply(Op::Force(State::Open), &limits(1_000)); // generation 1
        m.apply(Op::Force(State::Open), &limits(2_000)); // generation 2
        m.publish_opened(1, Duration::from_millis(1_000)); // late writer of generation 1
        assert_eq!(m.load().opened_at, Some(Duration::from_millis(2_000)));
    }
}
