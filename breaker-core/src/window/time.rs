//! The time window: calls completed in the last `span`, in [`BUCKETS`]
//! buckets of `span / 10`.
//!
//! A bucket is a span of `width` nanoseconds on the clock the caller passes
//! (its number: time since the epoch divided by the width, by a
//! multiplication). The window at time `t` holds the bucket `t` falls in
//! and the 9 before it: every call completed in the last `9/10 * span`, and
//! none completed more than `span` ago.
//!
//! Calls are counted per lane and per bucket in the lane's stripe: each of
//! its [`BUCKETS`] slots holds one bucket's count, tagged with the bucket's
//! number, and is reused when the lane records into a bucket 10 later (an
//! expired bucket is reset by the first call that lands in its slot, not
//! by a background thread). Failures and slow calls are rarer: they are
//! counted in shared words, one per bucket, with compare-and-swap, tagged
//! with the bucket and the generation. The stripe also keeps the newest
//! bucket its lane recorded into, so a lane idle for longer than the window
//! is skipped whole.

use crate::sync::{AtomicU64, Ordering};

use super::lane::Lane;
use super::stripes::{Slot, Stripe, Stripes};
use super::{Outcome, Totals};

/// Buckets in a time window.
pub const BUCKETS: u64 = 10;

/// The stripe word holding the newest bucket its lane recorded into.
const LAST: usize = 1;
/// The stripe word of slot 0; slot `i` is `SLOTS + i`.
const SLOTS: usize = 2;
/// The stripe word the owner alone reads: the bucket it counts in now
/// (plus one, so a zeroed word names none) above the word of its slot, so
/// that a success in the same bucket as its lane's last call finds its
/// slot without dividing.
const HOT: usize = SLOTS + BUCKETS as usize;
/// Bits of `HOT` below the bucket: a word index below 16.
const HOT_WORD_BITS: u32 = 4;
/// Words a generation's counts take in the stripe (entering a new one
/// zeroes them): the era, `LAST`, the slots and `HOT`.
const WORDS: usize = HOT + 1;
/// Cache lines per lane (2 + 10 + 1 words).
const LINES: usize = 2;

// Stripe slot: 24 bits of bucket number above 40 bits of count.
const SLOT_COUNT_BITS: u32 = 40;
const SLOT_COUNT_MASK: u64 = (1 << SLOT_COUNT_BITS) - 1;
const BUCKET_TAG_BITS: u32 = 24;
const BUCKET_TAG_MASK: u64 = (1 << BUCKET_TAG_BITS) - 1;

// Shared bucket word: 8 bits of generation, 24 of bucket number, 32 of count.
const SHARED_COUNT_BITS: u32 = 32;
const SHARED_COUNT_MASK: u64 = (1 << SHARED_COUNT_BITS) - 1;
const SHARED_GEN_SHIFT: u32 = SHARED_COUNT_BITS + BUCKET_TAG_BITS;

/// The shared counts kept per bucket.
#[derive(Clone, Copy)]
pub(super) enum Counted {
    /// Calls of threads without a lane.
    Calls = 0,
    Failures = 1,
    Slow = 2,
}

pub(super) struct Time {
    stripes: Stripes<LINES>,
    /// A bucket's width, in nanoseconds.
    width: u64,
    /// `2^64 / width`, rounded down: bucket = time * inverse / 2^64.
    inverse: u64,
    /// `BUCKETS` words for each kind of `Counted`.
    shared: Box<[AtomicU64; 3 * BUCKETS as usize]>,
    /// Bit `what` set (before its first shared count) once a `Counted`
    /// kind has been counted in the window: a fold reads only those
    /// kinds' words.
    used: AtomicU64,
}

impl Time {
    /// A window of `span` nanoseconds (at least `BUCKETS`).
    pub(super) fn new(span: u64) -> Self {
        let width = span / BUCKETS;
        Time {
            stripes: Stripes::new(),
            width,
            inverse: u64::MAX / width,
            shared: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            used: AtomicU64::new(0),
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.shared) + self.stripes.heap_bytes()
    }

    /// A fast success in `bucket`: one more call in this thread's stripe.
    #[inline(always)]
    pub(super) fn success(&self, lane: Lane, generation: u64, bucket: u64) {
        self.add(lane, generation, bucket);
    }

    /// A fast success in `bucket` on the common path: the stripe at
    /// `slot` exists, counts `generation` already (compared under `mask`,
    /// see `Window::success_fast`) and has counted a call in `bucket`; one
    /// load and one store. `false` (and nothing written) otherwise: the
    /// caller takes [`success`](Self::success).
    #[inline(always)]
    pub(super) fn success_fast(&self, slot: Slot, generation: u64, mask: u64, bucket: u64) -> bool {
        match self.stripes.existing(slot) {
            Some(stripe) if stripe.is_in(generation, mask) => {
                let hot = stripe.word(HOT).load(Ordering::Relaxed);
                if hot >> HOT_WORD_BITS != bucket.wrapping_add(1) {
                    return false;
                }
                // `HOT` names this bucket: its slot holds this bucket's
                // count (written with `HOT`, and cleared only with a move
                // of `HOT` to a newer bucket or a new generation).
                let slot = stripe.word((hot & ((1 << HOT_WORD_BITS) - 1)) as usize);
                slot.store(slot.load(Ordering::Relaxed) + 1, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// Records a call (see `Window::record`): counts it and its failure or
    /// slowness, folds. `None` if it is stale.
    pub(super) fn record(
        &self,
        lane: Lane,
        outcome: Outcome,
        generation: u64,
        now: u64,
    ) -> Option<Totals> {
        let bucket = self.bucket(now);
        if !self.add(lane, generation, bucket) {
            return None;
        }
        if outcome.failed {
            self.add_shared(Counted::Failures, generation, bucket);
        }
        if outcome.slow {
            self.add_shared(Counted::Slow, generation, bucket);
        }
        Some(self.stats(generation, now))
    }

    /// The window's totals for `generation` at `now`, read without a write:
    /// the shared counts first, so that a failure seen here has its call
    /// among the lanes'.
    pub(super) fn stats(&self, generation: u64, now: u64) -> Totals {
        let bucket = self.bucket(now);
        // A kind's bit is set before its first count, so a count this fold
        // must see has its bit seen too (the bits are never cleared).
        let used = self.used.load(Ordering::Acquire);
        let count = |what: Counted| {
            if used & (1 << what as u32) == 0 {
                0
            } else {
                self.shared(what, generation, bucket)
            }
        };
        let failures = count(Counted::Failures);
        let slow = count(Counted::Slow);
        let mut calls = count(Counted::Calls);
        self.stripes.each(|stripe| {
            calls += stripe
                .read(generation, |s| Self::lane_calls(s, bucket))
                .unwrap_or(0);
        });
        Totals {
            calls: calls.max(failures).max(slow),
            failures,
            slow,
        }
    }

    /// One more call in `bucket` in `lane`'s stripe (or the shared count);
    /// `false` if stale.
    #[inline(always)]
    fn add(&self, lane: Lane, generation: u64, bucket: u64) -> bool {
        match lane {
            Lane::Own(slot) => {
                let stripe = self.stripes.lane(slot);
                if !stripe.enter(generation, WORDS) {
                    return false;
                }
                Self::add_to(stripe, bucket);
                true
            }
            Lane::Shared => self.add_shared(Counted::Calls, generation, bucket),
        }
    }

    pub(super) fn span_nanos(&self) -> u64 {
        self.width * BUCKETS
    }

    /// The bucket `now_nanos` (since the epoch) falls in: never decreasing
    /// as time passes, one more every `width` nanoseconds (to within one
    /// part in 2^64 / width).
    #[inline(always)]
    pub(super) fn bucket(&self, now_nanos: u64) -> u64 {
        ((u128::from(now_nanos) * u128::from(self.inverse)) >> 64) as u64
    }

    /// Owner only: one more call in `bucket` in `stripe` (already entered).
    #[inline(always)]
    fn add_to(stripe: Stripe<'_, LINES>, bucket: u64) {
        let slot = stripe.word(SLOTS + (bucket % BUCKETS) as usize);
        let word = slot.load(Ordering::Relaxed);
        if word >> SLOT_COUNT_BITS == bucket & BUCKET_TAG_MASK {
            slot.store(word + 1, Ordering::Release);
        } else {
            Self::add_to_new_bucket(stripe, bucket);
        }
    }

    /// The lane's first call in `bucket`: clears its expired slots, then
    /// counts the call.
    #[cold]
    #[inline(never)]
    fn add_to_new_bucket(stripe: Stripe<'_, LINES>, bucket: u64) {
        let last = stripe.word(LAST).load(Ordering::Relaxed);
        let newest = if last > bucket { last } else { bucket };
        if newest - bucket >= BUCKETS {
            // Older than anything the window can hold: already expired.
            return;
        }
        for i in 0..BUCKETS as usize {
            let slot = stripe.word(SLOTS + i);
            let tag = slot.load(Ordering::Relaxed) >> SLOT_COUNT_BITS;
            if !within(newest, tag) {
                slot.store(0, Ordering::Relaxed);
            }
        }
        let index = SLOTS + (bucket % BUCKETS) as usize;
        stripe.word(index).store(
            ((bucket & BUCKET_TAG_MASK) << SLOT_COUNT_BITS) | 1,
            Ordering::Release,
        );
        if newest == bucket {
            stripe.word(LAST).store(bucket, Ordering::Release);
            stripe.word(HOT).store(
                (bucket.wrapping_add(1) << HOT_WORD_BITS) | index as u64,
                Ordering::Relaxed,
            );
        }
    }

    /// A stripe's calls in the window ending with bucket `now`.
    fn lane_calls(stripe: Stripe<'_, LINES>, now: u64) -> u64 {
        let last = stripe.word(LAST).load(Ordering::Acquire);
        if now > last && now - last >= BUCKETS {
            // Idle for longer than the window (or never recorded).
            return 0;
        }
        let mut calls = 0;
        for i in 0..BUCKETS as usize {
            let word = stripe.word(SLOTS + i).load(Ordering::Acquire);
            // Zero: a slot never used (or cleared), the common case.
            if word != 0 && within(now, word >> SLOT_COUNT_BITS) {
                calls += word & SLOT_COUNT_MASK;
            }
        }
        calls
    }

    /// One more `what` in `bucket` under `generation`, in the shared words;
    /// `false` if the word already holds a newer generation's or bucket's
    /// count (this one is stale or expired).
    pub(super) fn add_shared(&self, what: Counted, generation: u64, bucket: u64) -> bool {
        let bit = 1 << what as u32;
        if self.used.load(Ordering::Relaxed) & bit == 0 {
            self.used.fetch_or(bit, Ordering::AcqRel);
        }
        let word = &self.shared[what as usize * BUCKETS as usize + (bucket % BUCKETS) as usize];
        let gen8 = generation & 0xFF;
        let tag = bucket & BUCKET_TAG_MASK;
        let mut current = word.load(Ordering::Relaxed);
        loop {
            let (their_gen, their_tag) = (
                current >> SHARED_GEN_SHIFT,
                (current >> SHARED_COUNT_BITS) & BUCKET_TAG_MASK,
            );
            let next = if their_gen == gen8 && their_tag == tag {
                if current & SHARED_COUNT_MASK == SHARED_COUNT_MASK {
                    return true; // 2^32 - 1 in one bucket: saturated
                }
                current + 1
            } else if current & SHARED_COUNT_MASK == 0
                || (their_gen == gen8 && newer(tag, their_tag))
                || (their_gen != gen8 && newer_gen8(gen8, their_gen))
            {
                (gen8 << SHARED_GEN_SHIFT) | (tag << SHARED_COUNT_BITS) | 1
            } else {
                return false;
            };
            match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// The shared count of `what` under `generation` in the window ending
    /// with bucket `now`.
    fn shared(&self, what: Counted, generation: u64, now: u64) -> u64 {
        let gen8 = generation & 0xFF;
        let mut count = 0;
        for word in &self.shared[what as usize * BUCKETS as usize..][..BUCKETS as usize] {
            let w = word.load(Ordering::Acquire);
            // Zero: a bucket without any (the common case for slow calls
            // and for threads without a lane).
            if w != 0
                && w >> SHARED_GEN_SHIFT == gen8
                && within(now, (w >> SHARED_COUNT_BITS) & BUCKET_TAG_MASK)
            {
                count += w & SHARED_COUNT_MASK;
            }
        }
        count
    }
}

/// Whether bucket tag `tag` is one of the `BUCKETS` ending with `now`.
#[inline(always)]
fn within(now: u64, tag: u64) -> bool {
    (now.wrapping_sub(tag) & BUCKET_TAG_MASK) < BUCKETS
}

/// Whether bucket tag `a` is newer than `b`.
fn newer(a: u64, b: u64) -> bool {
    let diff = a.wrapping_sub(b) & BUCKET_TAG_MASK;
    diff != 0 && diff < 1 << (BUCKET_TAG_BITS - 1)
}

/// Whether 8-bit generation tag `a` is newer than `b`.
fn newer_gen8(a: u64, b: u64) -> bool {
    let diff = a.wrapping_sub(b) & 0xFF;
    diff != 0 && diff < 0x80
}

#[cfg(test)]
impl Time {
    /// Allocates `slot`'s stripe.
    pub(super) fn touch(&self, slot: super::stripes::Slot) {
        self.stripes.lane(slot);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_a_tenth_of_the_span_and_never_go_back() {
        let t = Time::new(60_000_000_000);
        let base = 1_000_000_000_000_000_000; // ManualClock's start
        let b0 = t.bucket(base);
        let mut previous = b0;
        for step in 0..1000 {
            let b = t.bucket(base + step * 60_000_000);
            assert!(b >= previous);
            previous = b;
        }
        // 1000 steps of 60 ms: 60 s, 10 buckets of 6 s.
        assert!((9..=11).contains(&(previous - b0)), "{}", previous - b0);
        assert_eq!(t.bucket(base + 6_000_000_000) - b0, 1);
    }

    #[test]
    fn threads_without_a_lane_count_through_the_shared_words() {
        let t = Time::new(60_000_000_000);
        let now = 1_000_000_000_000_000_000;
        let b = t.bucket(now);
        let later = now + 6_000_000_000;
        assert_eq!(t.bucket(later), b + 1);
        assert!(t.add(Lane::Shared, 2, b));
        assert!(t.add(Lane::Shared, 2, b + 1));
        assert!(t.add_shared(Counted::Failures, 2, b + 1));
        let totals = t.stats(2, later);
        assert_eq!((totals.calls, totals.failures), (2, 1));
        let much_later = now + 60_000_000_000;
        let totals = t.stats(2, much_later);
        assert_eq!((totals.calls, totals.failures), (1, 1), "bucket b expired");
        assert!(t.add(Lane::Shared, 3, b + 1));
        assert!(!t.add(Lane::Shared, 2, b + 1), "stale");
        assert_eq!(t.stats(3, later).calls, 1);
    }

    #[test]
    fn a_bucket_is_within_the_window_for_ten_buckets() {
        assert!(within(100, 100));
        assert!(within(109, 100));
        assert!(!within(110, 100));
        assert!(!within(99, 100), "a bucket ahead of now is not counted");
    }
}
