//! The sliding window of the rate policies: how many of the recent calls
//! completed, failed and were slow, kept without a lock and without a
//! shared write on a fast success. Not public API (hidden; public only for
//! its loom model, its property test and the benches).
//!
//! A [`Window`] is pure bookkeeping: it counts, and the breaker's policy
//! (thresholds, `min_calls`, when to open) decides on the [`Totals`] it
//! returns. Two shapes ([`Kind`]):
//!
//! - **Count**: the last `n` completed calls, the oldest dropped first
//!   (`count.rs`).
//! - **Time**: the calls completed in the last `span`, in 10 buckets of
//!   `span / 10`: the window at time `t` holds every call completed in the
//!   last `9/10 * span` and none completed more than `span` ago
//!   (`time.rs`). No background thread: a bucket expires when a reader's
//!   clock has passed it, and its slot is reused by the next call that
//!   lands in it.
//!
//! # How a call is recorded
//!
//! Each thread that records owns a **lane** (`lane.rs`), and each window a
//! **stripe** per lane on cache lines of its own (`stripes.rs`). A fast
//! success ([`record_success`](Window::record_success)) adds one to its
//! lane's count with a plain load and store: it writes no cache line any
//! other thread writes, takes no lock and does no read-modify-write. On
//! its common path (the thread owns a lane whose stripe already counts the
//! generation and, in a time window, whose `HOT` word names the current
//! bucket) that is all it does beside a thread-local load and the stripe's
//! chunk and era: inline in the breaker's call for a count window, one
//! call with the coarse clock read for a time window
//! (`Window::count_success_fast`, `Window::record_success_narrow`;
//! instruction counts `rate_call`, `rate_time_call` in
//! `bench/src/bin/instructions.rs`). A
//! failure or slow call ([`record`](Window::record)) also counts itself in
//! its stripe, then logs itself with one compare-and-swap (the count
//! window's log of events, the time window's shared bucket counts) and
//! **folds**: sums the stripes and counts the failures and slow calls in
//! the window. A rate can only cross its threshold on a failure or a slow
//! call, so only those fold. [`stats`](Window::stats) folds without
//! recording.
//!
//! Threads beyond the 2,047 lanes (live threads at once) record with
//! compare-and-swap on shared words instead; the counts are the same.
//!
//! # Generations
//!
//! Every record carries the breaker's generation, the one the call was
//! admitted under. [`clear`](Window::clear) starts the window of a new
//! generation in O(1): stripes and log entries are tagged with the
//! generation they count, a fold counts only the window's generation, and a
//! stripe is reset by its owner's first record in a newer one. A record
//! under an older generation than the window's is not counted (`record`
//! returns `None`), including one that races the clear; a record under a
//! newer one moves the window to it, as `clear` would. Generations are
//! compared as numbers that grow by one (on 64 bits, wrapping).
//!
//! # What is exact
//!
//! - Every completed call is recorded once, in the generation it carries:
//!   at quiescence (no record in progress) [`stats`](Window::stats) counts
//!   each call of the window's generation that is still in the window
//!   exactly once, none lost and none twice (tests below, and the proptest
//!   against a naive model in `tests/window_model.rs`).
//! - A fold sees every record that happens-before it: a failure's
//!   [`Totals`] include itself and every outcome that completed before the
//!   deciding call began (in the same thread, or published to it by any
//!   synchronisation). Outcomes recorded while it folds may or may not be
//!   counted.
//! - One thread alone gets exact windows: the count window holds exactly
//!   its last `n` calls; the time window exactly the calls of the 10
//!   buckets ending at the reader's time.
//! - Under concurrency, the count window places a failure at the number of
//!   calls folded when it was recorded: it may count as a few calls newer
//!   than a serial order would, by at most the calls that ran beside it.
//!
//! Limits (far beyond any breaker's life, stated for completeness): 2^46
//! calls per generation for positions in the count window; 2^40 calls per
//! lane per bucket and 2^32 failures per bucket in the time window; a
//! count window of at most 2^15 calls.
//!
//! # Memory
//!
//! A window is the struct (200 bytes) plus its log (count window: 8
//! bytes per entry, `n` rounded up to a power of two) or its shared bucket
//! counts (time window: 240 bytes), plus 64 bytes (count) or 128 bytes
//! (time) per lane in the chunks its lanes fall in (chunks of 1, 2, 4, ...
//! lanes, so the first 2 threads take 3 lanes' stripes and the first 16,
//! 31). Measured by `tests::memory_figures`:
//!
//! | window | 2 threads | 16 threads |
//! |---|---:|---:|
//! | count, 100 calls | 1,416 B | 3,208 B |
//! | time, 60 s | 824 B | 4,408 B |
//!
//! 10,000 time windows used by 16 threads each take 44 MB.
//!
//! # Concurrency model
//!
//! `breaker-core/tests/loom_window.rs` checks the stripe protocol, the
//! fold and the clear with loom (`RUSTFLAGS="--cfg loom" cargo test -p
//! breaker-core --release --test loom_window`).

mod count;
mod lane;
mod stripes;
mod time;

use std::time::Duration;

use crate::sync::{AtomicU64, Ordering};

use self::count::Count;
use self::lane::Lane;
use self::stripes::is_newer;
use self::time::Time;

pub use self::time::BUCKETS;

/// The low `bits` of a generation (up to 64).
#[inline(always)]
fn mask(bits: u32) -> u64 {
    u64::MAX >> (64 - bits.clamp(1, 64))
}

/// Which calls a window holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The last `n` completed calls.
    Calls(u32),
    /// The calls completed in the last `span`, in [`BUCKETS`] buckets.
    Time(Duration),
}

/// What a completed call was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// It failed.
    pub failed: bool,
    /// It took longer than the slow-call duration.
    pub slow: bool,
}

/// What a window holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Completed calls.
    pub calls: u64,
    /// Of which failed.
    pub failures: u64,
    /// Of which were slow (failed or not).
    pub slow: u64,
}

/// A window that cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// `Kind::Calls(0)`.
    #[error("a count window holds at least 1 call")]
    NoCalls,
    /// `Kind::Calls(n)` with `n` above [`Window::MAX_CALLS`].
    #[error("a count window holds at most {max} calls, not {0}", max = Window::MAX_CALLS)]
    TooManyCalls(u32),
    /// `Kind::Time(span)` shorter than [`Window::MIN_SPAN`].
    #[error("a time window spans at least {min:?}, not {0:?}", min = Window::MIN_SPAN)]
    TooShort(Duration),
}

/// The sliding window of one breaker (module docs: what it counts, what is
/// exact). Share it by reference; every method takes `&self`.
pub struct Window {
    /// The generation the window counts (the newest it was told of).
    generation: AtomicU64,
    shape: Shape,
}

enum Shape {
    Count(Count),
    Time(Time),
}

impl Window {
    /// The largest count window.
    pub const MAX_CALLS: u32 = count::MAX_SIZE;
    /// The shortest time window: 10 buckets of 1 ms.
    pub const MIN_SPAN: Duration = Duration::from_millis(10);

    /// An empty window of generation 0.
    ///
    /// # Errors
    /// A count window of 0 calls or more than [`MAX_CALLS`](Self::MAX_CALLS);
    /// a time window shorter than [`MIN_SPAN`](Self::MIN_SPAN).
    pub fn new(kind: Kind) -> Result<Self, WindowError> {
        let shape = match kind {
            Kind::Calls(0) => return Err(WindowError::NoCalls),
            Kind::Calls(n) if n > Self::MAX_CALLS => return Err(WindowError::TooManyCalls(n)),
            Kind::Calls(n) => Shape::Count(Count::new(n)),
            Kind::Time(span) if span < Self::MIN_SPAN => return Err(WindowError::TooShort(span)),
            Kind::Time(span) => Shape::Time(Time::new(crate::clock::as_nanos(span))),
        };
        Ok(Window {
            generation: AtomicU64::new(0),
            shape,
        })
    }

    /// What the window holds (a time window's span rounded down to whole
    /// nanoseconds per bucket).
    #[inline]
    pub fn kind(&self) -> Kind {
        match &self.shape {
            Shape::Count(c) => Kind::Calls(c.size()),
            Shape::Time(t) => Kind::Time(Duration::from_nanos(t.span_nanos())),
        }
    }

    /// The generation the window counts.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records a fast success (neither failed nor slow) of a call admitted
    /// under `generation`: a plain load and store on the calling thread's
    /// stripe. `now` (time since the epoch; the coarse clock is enough) is
    /// called only by a time window. A success under a generation older
    /// than its thread's last record is not counted.
    #[inline]
    pub fn record_success(&self, generation: u64, now: impl FnOnce() -> Duration) {
        self.record_success_at(generation, || crate::clock::as_nanos(now()));
    }

    /// [`record_success`](Self::record_success) with `now` in nanoseconds
    /// since the epoch.
    #[inline(always)]
    pub(crate) fn record_success_at(&self, generation: u64, now: impl FnOnce() -> u64) {
        if !self.count_success_fast::<64>(generation) {
            self.record_success_narrow::<64>(generation, now);
        }
    }

    /// A count window's fast success on its common path, inline, and
    /// whether it was taken: the thread owns a lane whose stripe already
    /// counts the generation (a thread-local load, the stripe's chunk and
    /// era, then one load and one store on the thread's own stripe).
    /// `false`, with nothing written, for a time window and for anything
    /// else (a thread's first record, a new generation, no lane): the
    /// caller then records with
    /// [`record_success_narrow`](Self::record_success_narrow).
    ///
    /// The call's generation carries only its low `BITS` (a storage's
    /// generation, up to 64 bits): the stripe's era is compared with it
    /// there, without widening. An era that agrees there but is another
    /// generation is 2^BITS generations older (a thread's stripe untouched
    /// while the breaker changed state that many times): it would take
    /// the success.
    #[inline(always)]
    pub(crate) fn count_success_fast<const BITS: u32>(&self, generation: u64) -> bool {
        match &self.shape {
            Shape::Count(count) => {
                lane::own().is_some_and(|slot| count.success_fast(slot, generation, mask(BITS)))
            }
            Shape::Time(_) => false,
        }
    }

    /// Records a fast success of a call whose generation carries only its
    /// low `BITS`, as [`record_success`](Self::record_success) does with
    /// the generation [`widen`](Self::widen) makes of it. A time window's
    /// common case is inline here (the coarse clock read, the bucket, then
    /// as [`count_success_fast`](Self::count_success_fast), whose notes on
    /// `BITS` apply, and the bucket's slot); the rest is out of line.
    #[inline(always)]
    pub(crate) fn record_success_narrow<const BITS: u32>(
        &self,
        generation: u64,
        now: impl FnOnce() -> u64,
    ) {
        let bucket = match &self.shape {
            Shape::Count(_) => 0,
            Shape::Time(time) => {
                // The clock first: fewer values live across its call.
                let bucket = time.bucket(now());
                if lane::own()
                    .is_some_and(|slot| time.success_fast(slot, generation, mask(BITS), bucket))
                {
                    return;
                }
                bucket
            }
        };
        self.success_elsewhere(self.widen(generation, BITS), bucket);
    }

    /// `generation`, of which a caller keeps only the low `bits` (up to
    /// 64), as the window counts it: the number nearest the window's own
    /// generation with the same low `bits`, so a caller's wrap reads as a
    /// step forward.
    #[inline(always)]
    pub(crate) fn widen(&self, generation: u64, bits: u32) -> u64 {
        let base = self.generation();
        let ahead = generation.wrapping_sub(base) & mask(bits);
        let signed = ((ahead << (64 - bits)) as i64) >> (64 - bits);
        base.wrapping_add(signed as u64)
    }

    /// A fast success off the common path (a time window's `bucket`).
    #[cold]
    #[inline(never)]
    fn success_elsewhere(&self, generation: u64, bucket: u64) {
        self.success_in(lane::current(), generation, bucket);
    }

    #[inline(always)]
    fn success_in(&self, lane: Lane, generation: u64, bucket: u64) {
        match &self.shape {
            Shape::Count(count) => count.success(lane, generation),
            Shape::Time(time) => time.success(lane, generation, bucket),
        }
    }

    /// Records a completed call of `generation` at `now` and folds: the
    /// window's totals, this call included. `None` if the window (or this
    /// thread's stripe) already counts a newer generation: the call is
    /// stale and not recorded. A generation newer than the window's moves
    /// the window to it, as [`clear`](Self::clear) does.
    pub fn record(&self, outcome: Outcome, generation: u64, now: Duration) -> Option<Totals> {
        self.record_at(outcome, generation, || crate::clock::as_nanos(now))
    }

    /// [`record`](Self::record) with `now` in nanoseconds since the epoch,
    /// called only by a time window.
    pub(crate) fn record_at(
        &self,
        outcome: Outcome,
        generation: u64,
        now: impl FnOnce() -> u64,
    ) -> Option<Totals> {
        self.record_in(lane::current(), outcome, generation, now)
    }

    fn record_in(
        &self,
        lane: Lane,
        outcome: Outcome,
        generation: u64,
        now: impl FnOnce() -> u64,
    ) -> Option<Totals> {
        if !self.enter(generation) {
            return None;
        }
        match &self.shape {
            Shape::Count(count) => count.record(lane, outcome, generation),
            Shape::Time(time) => time.record(lane, outcome, generation, now()),
        }
    }

    /// The window's totals at `now` for its current generation, read
    /// without a write.
    pub fn stats(&self, now: Duration) -> Totals {
        self.stats_of(self.generation(), now)
    }

    fn stats_of(&self, generation: u64, now: Duration) -> Totals {
        match &self.shape {
            Shape::Count(count) => count.stats(generation),
            Shape::Time(time) => time.stats(generation, crate::clock::as_nanos(now)),
        }
    }

    /// Every call a count window has recorded under `generation` so far,
    /// not capped by its size: a counter that only grows within a
    /// generation (read without a write, exact at quiescence). `None` for a
    /// time window, which keeps no such total.
    pub fn recorded(&self, generation: u64) -> Option<u64> {
        match &self.shape {
            Shape::Count(count) => Some(count.fold(generation)),
            Shape::Time(_) => None,
        }
    }

    /// Empties the window for `generation` (the breaker entered closed
    /// under it): O(1); records of older generations are not counted from
    /// now on. A generation older than the window's is ignored.
    pub fn clear(&self, generation: u64) {
        self.enter(generation);
    }

    /// Bytes the window takes: the struct, its log and the stripes its
    /// lanes allocated.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.shape {
                Shape::Count(count) => count.heap_bytes(),
                Shape::Time(time) => time.heap_bytes(),
            }
    }

    /// Moves the window to `generation` if it is newer; `false` if the
    /// window already counts a newer one.
    fn enter(&self, generation: u64) -> bool {
        let mut current = self.generation.load(Ordering::Acquire);
        loop {
            if current == generation {
                return true;
            }
            if is_newer(current, generation) {
                return false;
            }
            match self.generation.compare_exchange_weak(
                current,
                generation,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if let Shape::Count(count) = &self.shape {
                        count.clear(generation);
                    }
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }
}

/// Entry points for the loom model (`tests/loom_window.rs`): loom runs its
/// threads on one OS thread, so a model names each thread's lane.
#[cfg(loom)]
impl Window {
    /// [`record_success`](Self::record_success) as the thread owning `lane`.
    pub fn record_success_on(&self, lane: usize, generation: u64, now: Duration) {
        let bucket = match &self.shape {
            Shape::Count(_) => 0,
            Shape::Time(time) => time.bucket(crate::clock::as_nanos(now)),
        };
        self.success_in(Lane::Own(stripes::Slot::of(lane)), generation, bucket);
    }

    /// [`record`](Self::record) as the thread owning `lane`.
    pub fn record_on(
        &self,
        lane: usize,
        outcome: Outcome,
        generation: u64,
        now: Duration,
    ) -> Option<Totals> {
        self.record_in(
            Lane::Own(stripes::Slot::of(lane)),
            outcome,
            generation,
            || crate::clock::as_nanos(now),
        )
    }

    /// The totals `generation` would have at `now`, whatever the window's.
    pub fn stats_for(&self, generation: u64, now: Duration) -> Totals {
        self.stats_of(generation, now)
    }
}

#[cfg(test)]
impl Window {
    /// Allocates the stripes of lanes `0..lanes`, as that many threads'
    /// first records would (for the memory figures).
    fn touch_lanes(&self, lanes: usize) {
        for lane in 0..lanes {
            let slot = stripes::Slot::of(lane);
            match &self.shape {
                Shape::Count(count) => count.touch(slot),
                Shape::Time(time) => time.touch(slot),
            }
        }
    }
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("kind", &self.kind())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
