//! The count window: the last `size` completed calls.
//!
//! Every call adds one to its lane's call count (a plain store by the
//! stripe's owner). The sum of every lane's count, the **fold**, numbers the
//! calls: a failure or slow call folds when it is recorded and logs that
//! number, its **position**, in a ring of the last `capacity` such events
//! (a power of two >= `size`: the window never holds more). The window at
//! fold `T` holds the calls at positions `T - size + 1 ..= T`, and its
//! failures are the logged events whose position lies there: the log is
//! read backwards from its newest entry until one lies before the window.
//! Successes never touch the log nor anything another lane writes.
//!
//! One thread alone gets exact positions (its `k`-th call has position
//! `k`). Under concurrency an event's position is the larger of the fold
//! it saw and the newest position already logged (claimed with the log's
//! head in one compare-and-swap), so positions never decrease along the
//! log and the events in the window are always a suffix of it. The fold
//! counts every call that completed before the event and some that ran
//! beside it, so an event racing others may be placed a few calls later
//! than a serial order would; never outside the calls that ran while it
//! was recorded. The reading cost of a failure grows with the failures and
//! slow calls in the window (one entry each), not with the window's size.
//!
//! An entry is written with compare-and-swap and never over a newer event:
//! a writer held up between its claim and its store may find its entry
//! reused by a later lap or, the log restarting at each generation, by a
//! newer generation's event (a race loom found).

use crate::sync::{AtomicU64, Ordering};

use super::lane::Lane;
use super::stripes::{Slot, Stripe, Stripes};
use super::{Outcome, Totals};

/// The stripe word holding a lane's call count (after the era).
const CALLS: usize = 1;
/// Cache lines per lane.
const LINES: usize = 1;

// Head word, high bits first: 15 bits of generation, whether the log has
// lapped its ring in this generation, 16 bits of event index (modulo 2^16),
// the newest event's position (modulo 2^32).
const HEAD_GEN_SHIFT: u32 = 49;
const HEAD_GEN_MASK: u64 = (1 << 15) - 1;
const HEAD_FULL: u64 = 1 << 48;
const HEAD_INDEX_SHIFT: u32 = 32;
const HEAD_INDEX_MASK: u64 = 0xFFFF;

// Log entry: 8 bits of generation, 8 of lap (which pass over the ring
// wrote it), the failed and slow flags, 46 bits of position.
const POS_BITS: u32 = 46;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
const SLOW_BIT: u64 = 1 << POS_BITS;
const FAILED_BIT: u64 = 1 << (POS_BITS + 1);
const LAP_SHIFT: u32 = POS_BITS + 2;
const GEN_SHIFT: u32 = LAP_SHIFT + 8;

// Shared call count (threads without a lane): 16 bits of generation above
// 48 bits of count.
const SHARED_COUNT_BITS: u32 = 48;
const SHARED_COUNT_MASK: u64 = (1 << SHARED_COUNT_BITS) - 1;

/// The largest count window: 2^15 calls (its log then takes 256 KiB).
pub(crate) const MAX_SIZE: u32 = 1 << 15;

pub(super) struct Count {
    stripes: Stripes<LINES>,
    size: u64,
    /// Log entries, a power of two.
    capacity: u64,
    /// `capacity`'s log 2.
    shift: u32,
    /// Generation, events logged and the newest position (see above).
    head: AtomicU64,
    log: Box<[AtomicU64]>,
    /// Calls of threads without a lane (compare-and-swap).
    shared: AtomicU64,
}

impl Count {
    pub(super) fn new(size: u32) -> Self {
        let capacity = u64::from(size).next_power_of_two();
        Count {
            stripes: Stripes::new(),
            size: u64::from(size),
            capacity,
            shift: capacity.trailing_zeros(),
            head: AtomicU64::new(0),
            log: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            shared: AtomicU64::new(0),
        }
    }

    pub(super) fn size(&self) -> u32 {
        self.size as u32
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.log.len() * std::mem::size_of::<AtomicU64>() + self.stripes.heap_bytes()
    }

    /// A fast success: one more call in this thread's stripe.
    #[inline(always)]
    pub(super) fn success(&self, lane: Lane, generation: u64) {
        self.add(lane, generation);
    }

    /// A fast success on the common path: the stripe at `slot` exists and
    /// counts `generation` already (compared under `mask`, see
    /// `Window::success_fast`); one load and one store. `false` (and
    /// nothing written) otherwise: the caller takes [`success`](Self::success).
    #[inline(always)]
    pub(super) fn success_fast(&self, slot: Slot, generation: u64, mask: u64) -> bool {
        match self.stripes.existing(slot) {
            Some(stripe) if stripe.is_in(generation, mask) => {
                let calls = stripe.word(CALLS);
                calls.store(calls.load(Ordering::Relaxed) + 1, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// Records a call (see `Window::record`): counts it, logs it if it is
    /// an event, folds. `None` if it is stale.
    pub(super) fn record(&self, lane: Lane, outcome: Outcome, generation: u64) -> Option<Totals> {
        if !self.add(lane, generation) {
            return None;
        }
        let calls = self.fold(generation);
        if (outcome.failed || outcome.slow) && !self.log(outcome, generation, calls) {
            return None;
        }
        Some(self.totals(generation, calls))
    }

    /// The window's totals for `generation`, read without a write.
    pub(super) fn stats(&self, generation: u64) -> Totals {
        self.totals(generation, self.fold(generation))
    }

    /// One more call in `lane`'s stripe (or the shared count); `false` if
    /// the stripe or shared count holds a newer generation's.
    #[inline(always)]
    fn add(&self, lane: Lane, generation: u64) -> bool {
        match lane {
            Lane::Own(slot) => {
                let stripe = self.stripes.lane(slot);
                if !stripe.enter(generation, CALLS + 1) {
                    return false;
                }
                let calls = stripe.word(CALLS);
                calls.store(calls.load(Ordering::Relaxed) + 1, Ordering::Release);
                true
            }
            Lane::Shared => self.add_shared(generation),
        }
    }

    /// One more call of a thread without a lane; `false` if stale.
    fn add_shared(&self, generation: u64) -> bool {
        let tag = generation & 0xFFFF;
        let mut word = self.shared.load(Ordering::Relaxed);
        loop {
            let theirs = word >> SHARED_COUNT_BITS;
            let next = if theirs == tag {
                (tag << SHARED_COUNT_BITS) | ((word + 1) & SHARED_COUNT_MASK)
            } else if newer_by_bits(tag, theirs, 16) {
                (tag << SHARED_COUNT_BITS) | 1
            } else {
                return false;
            };
            match self
                .shared
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    /// Calls of threads without a lane in `generation`.
    fn shared_calls(&self, generation: u64) -> u64 {
        let word = self.shared.load(Ordering::Acquire);
        if word >> SHARED_COUNT_BITS == generation & 0xFFFF {
            word & SHARED_COUNT_MASK
        } else {
            0
        }
    }

    /// The fold: every call of `generation` recorded so far (the lanes'
    /// counts and the shared one).
    pub(super) fn fold(&self, generation: u64) -> u64 {
        let mut calls = self.shared_calls(generation);
        self.stripes.each(|stripe: Stripe<'_, LINES>| {
            if let Some(n) = stripe.read(generation, |s| s.word(CALLS).load(Ordering::Acquire)) {
                calls = calls.wrapping_add(n);
            }
        });
        calls
    }

    /// Starts `generation`'s log if the head holds an older one's (so that
    /// a head left by a long-gone generation is never read as this one's).
    pub(super) fn clear(&self, generation: u64) {
        let tag = generation & HEAD_GEN_MASK;
        let mut head = self.head.load(Ordering::Acquire);
        while newer_by_bits(tag, head >> HEAD_GEN_SHIFT, 15) {
            match self.head.compare_exchange_weak(
                head,
                tag << HEAD_GEN_SHIFT,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Logs an event (a failure or slow call) seen at fold `calls`; `false`
    /// if the log already holds a newer generation's (the event is stale).
    ///
    /// Its position is the larger of `calls` and the newest logged
    /// position, so positions never decrease along the log: the events in
    /// the window are a suffix of it.
    fn log(&self, outcome: Outcome, generation: u64, calls: u64) -> bool {
        let tag = generation & HEAD_GEN_MASK;
        let mut head = self.head.load(Ordering::Acquire);
        let (index, position) = loop {
            let (index, full, newest) = if head >> HEAD_GEN_SHIFT == tag {
                let newest = head as u32;
                let ahead = newest.wrapping_sub(calls as u32) as i32;
                (
                    (head >> HEAD_INDEX_SHIFT) & HEAD_INDEX_MASK,
                    head & HEAD_FULL,
                    calls.wrapping_add(ahead.max(0) as u64),
                )
            } else if newer_by_bits(tag, head >> HEAD_GEN_SHIFT, 15) {
                (0, 0, calls)
            } else {
                return false;
            };
            let full = if index + 1 >= self.capacity {
                HEAD_FULL
            } else {
                full
            };
            let next = (tag << HEAD_GEN_SHIFT)
                | full
                | (((index + 1) & HEAD_INDEX_MASK) << HEAD_INDEX_SHIFT)
                | (newest & 0xFFFF_FFFF);
            match self
                .head
                .compare_exchange_weak(head, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (index, newest),
                Err(now) => head = now,
            }
        };
        let entry = ((generation & 0xFF) << GEN_SHIFT)
            | (self.lap(index) << LAP_SHIFT)
            | if outcome.failed { FAILED_BIT } else { 0 }
            | if outcome.slow { SLOW_BIT } else { 0 }
            | (position & POS_MASK);
        // Never over a newer event: a writer held up between its claim and
        // this store may find its entry reused by a newer generation's
        // event (the log restarts at each generation) or a later lap's.
        let slot = &self.log[(index & (self.capacity - 1)) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        while !is_newer_entry(current, entry) {
            match slot.compare_exchange_weak(current, entry, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        true
    }

    /// Whether `entry`, found where event `index` goes, is a later event of
    /// the same generation (logged since the reader read the head: counted
    /// if it is in the window, as it would have been then).
    #[cold]
    #[inline(never)]
    fn logged_since(&self, entry: u64, gen8: u64, index: u64) -> bool {
        entry & (FAILED_BIT | SLOW_BIT) != 0
            && entry >> GEN_SHIFT == gen8 >> 8
            && newer_by_bits((entry >> LAP_SHIFT) & 0xFF, self.lap(index), 8)
    }

    /// Which pass over the ring event `index` (modulo 2^16) is written in.
    fn lap(&self, index: u64) -> u64 {
        (index >> self.shift) & 0xFF
    }

    /// The window's totals at fold `calls`: the failures and slow calls
    /// logged at positions within the last `size`, read from the newest
    /// event back to the first one before the window.
    ///
    /// An event logged beside this fold may carry a later position than
    /// `calls` (it folded after this reader): it is counted, and so are the
    /// calls up to its position (calls that completed, since a recorder
    /// folded them). Counting its failure without them would let failures
    /// alone fill a reader's window under preemption: a rate of 1 read on
    /// 25 % failing calls.
    fn totals(&self, generation: u64, calls: u64) -> Totals {
        let mut head = self.head.load(Ordering::Acquire);
        let (failures, slow, newest) = loop {
            if head >> HEAD_GEN_SHIFT != generation & HEAD_GEN_MASK {
                break (0, 0, calls);
            }
            let end = (head >> HEAD_INDEX_SHIFT) & HEAD_INDEX_MASK;
            let logged = if head & HEAD_FULL != 0 {
                self.capacity
            } else {
                end
            };
            let found = self
                .scan::<false>(generation, calls, end, logged)
                .unwrap_or_else(|| self.scan_carefully(generation, calls, end, logged));
            // Entries are told apart by 8 bits of lap: a reader held up
            // while the log moved on by many laps (preempted between the
            // head and the entries) may take a later lap's entries for
            // older ones and skip them. Read again from the new head then.
            let now = self.head.load(Ordering::Acquire);
            let moved = ((now >> HEAD_INDEX_SHIFT).wrapping_sub(end)) & HEAD_INDEX_MASK;
            if now >> HEAD_GEN_SHIFT != head >> HEAD_GEN_SHIFT || moved < self.laps_apart() {
                break found;
            }
            head = now;
        };
        Totals {
            // The calls up to the newest event seen beside this fold count
            // too, with its failure.
            calls: (calls.min(self.size) + (newest - calls))
                .max(failures)
                .max(slow),
            failures,
            slow,
        }
    }

    /// Events logged while a reader scans past which it reads again: 32
    /// laps of the ring (at most 2^14 events, so the 16-bit event index
    /// tells), far within the 127 laps its 8-bit laps tell apart.
    fn laps_apart(&self) -> u64 {
        (self.capacity * 32).min(1 << 14)
    }

    /// The failures and slow calls in the window at fold `calls`, and the
    /// newest position seen, from the `logged` events before event `end`,
    /// newest first, by runs of places one pass over the ring wrote (so of
    /// one lap: at most two runs), each a slice read without bounds checks.
    /// `None` if not `CAREFUL` and an entry is not the event its place
    /// expects (claimed and not written yet, or written by a later lap
    /// since the head was read): the common case scans without a call, the
    /// rare one again with [`scan_carefully`](Self::scan_carefully).
    #[inline(always)]
    fn scan<const CAREFUL: bool>(
        &self,
        generation: u64,
        calls: u64,
        end: u64,
        logged: u64,
    ) -> Option<(u64, u64, u64)> {
        let (log, shift, size) = (&*self.log, self.shift, self.size);
        let gen8 = (generation & 0xFF) << 8;
        let (mut failures, mut slow, mut newest) = (0, 0, calls);
        // Event `end - 1` first, then older ones, by runs of places that
        // one pass over the ring wrote (so of one lap): at most two.
        let mut index = end;
        let mut left = logged;
        while left > 0 {
            let last = index.wrapping_sub(1) & HEAD_INDEX_MASK;
            // Generation and lap above the flags; every event is failed or
            // slow, so an entry with neither was never written.
            let expected = gen8 | ((last >> shift) & 0xFF);
            // An entry's bits from the slow flag up, against the expected
            // generation and lap with no flag: 1 (slow), 2 (failed) or 3
            // (both) for an event of this lap, anything else otherwise.
            let unflagged = expected << (LAP_SHIFT - POS_BITS);
            let top = (last & (self.capacity - 1)) as usize;
            let run = (top as u64 + 1).min(left);
            let places = &log[top + 1 - run as usize..=top];
            for (back, place) in places.iter().rev().enumerate() {
                let entry = place.load(Ordering::Relaxed);
                let mut flags = (entry >> POS_BITS) ^ unflagged;
                if flags.wrapping_sub(1) >= 3 {
                    if !CAREFUL {
                        return None;
                    }
                    let at = last.wrapping_sub(back as u64) & HEAD_INDEX_MASK;
                    if !self.logged_since(entry, gen8, at) {
                        // Claimed, not written yet: an event still being
                        // recorded.
                        continue;
                    }
                    flags = (entry >> POS_BITS) & 0b11;
                }
                // How many calls before the fold it was (modulo 2^46): at
                // least 2^45 for an event that folded after this reader (it
                // ran beside it; negative as a signed number).
                let age = calls.wrapping_sub(entry) & POS_MASK;
                if age >= size {
                    if age < 1 << (POS_BITS - 1) {
                        // Before the window, and so is every older one.
                        return Some((failures, slow, newest));
                    }
                    newest = newest.max(calls.wrapping_add((1 << POS_BITS) - age));
                }
                failures += flags >> 1;
                slow += flags & 1;
            }
            index = index.wrapping_sub(run) & HEAD_INDEX_MASK;
            left -= run;
        }
        Some((failures, slow, newest))
    }

    /// [`scan`](Self::scan) past entries that are not yet (or no longer)
    /// the events their places expect.
    #[cold]
    #[inline(never)]
    fn scan_carefully(
        &self,
        generation: u64,
        calls: u64,
        end: u64,
        logged: u64,
    ) -> (u64, u64, u64) {
        self.scan::<true>(generation, calls, end, logged)
            .unwrap_or((0, 0, calls))
    }
}

/// Whether log entry `a` is a newer event than `b`: of a newer generation,
/// or of the same one and a later position (a later lap when the positions
/// are equal); an empty entry is older than any.
fn is_newer_entry(a: u64, b: u64) -> bool {
    if a & (FAILED_BIT | SLOW_BIT) == 0 {
        return false;
    }
    let (gen_a, gen_b) = (a >> GEN_SHIFT, b >> GEN_SHIFT);
    if gen_a != gen_b {
        return newer_by_bits(gen_a, gen_b, 8);
    }
    // Positions never decrease along the log and do not wrap in practice
    // (46 bits): a larger one is a later event however many laps a held-up
    // writer slept through, which the 8-bit lap alone cannot tell past 128.
    let (pos_a, pos_b) = (a & POS_MASK, b & POS_MASK);
    if pos_a != pos_b {
        return pos_a > pos_b;
    }
    newer_by_bits((a >> LAP_SHIFT) & 0xFF, (b >> LAP_SHIFT) & 0xFF, 8)
}

/// Whether tag `a` is newer than `b`, both the low `bits` of generations.
fn newer_by_bits(a: u64, b: u64, bits: u32) -> bool {
    let diff = a.wrapping_sub(b) & ((1 << bits) - 1);
    diff != 0 && diff < 1 << (bits - 1)
}

#[cfg(test)]
impl Count {
    /// Allocates `slot`'s stripe.
    pub(super) fn touch(&self, slot: super::stripes::Slot) {
        self.stripes.lane(slot);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn threads_without_a_lane_count_through_the_shared_word() {
        let c = Count::new(100);
        for _ in 0..5 {
            assert!(c.add_shared(7));
        }
        assert_eq!(c.fold(7), 5);
        assert_eq!(c.fold(8), 0, "another generation's shared calls");
        assert!(c.add_shared(8));
        assert!(!c.add_shared(7), "stale");
        assert_eq!(c.fold(8), 1);
        assert!(c.add(Lane::Shared, 8));
        assert_eq!(c.stats(8).calls, 2);
    }

    #[test]
    fn a_late_writer_never_overwrites_a_newer_generations_event() {
        // Generation 0 claims entry 0, then the log restarts for generation
        // 1, whose first event takes entry 0 too; generation 0's writer,
        // held up, stores last.
        let c = Count::new(4);
        let fail = Outcome {
            failed: true,
            slow: false,
        };
        assert!(c.log(fail, 1, 1));
        let stale = (0 << GEN_SHIFT) | FAILED_BIT | 5;
        let newer = c.log[0].load(Ordering::Relaxed);
        assert!(is_newer_entry(newer, stale));
        assert!(!is_newer_entry(stale, newer));
        assert!(!is_newer_entry(0, stale), "an empty entry is older");
        // The same guard as `log` applies to a held-up store:
        assert_eq!(c.totals(1, 1).failures, 1);
    }

    #[test]
    fn tags_compare_across_their_wrap() {
        assert!(newer_by_bits(1, 0, 8));
        assert!(newer_by_bits(0, 255, 8));
        assert!(!newer_by_bits(255, 0, 8));
        assert!(!newer_by_bits(3, 3, 8));
    }

    #[test]
    fn an_event_folded_after_the_reader_counts_with_the_calls_before_it() {
        // Events at positions 3 and 12 (the second folded after a reader
        // whose fold is 10): both in the window of 8 read at 10, with the
        // 2 calls up to position 12 (older events past the window stop
        // the scan).
        let c = Count::new(8);
        let fail = Outcome {
            failed: true,
            slow: false,
        };
        assert!(c.log(fail, 0, 1));
        assert!(c.log(fail, 0, 3));
        assert!(c.log(fail, 0, 12));
        let t = c.totals(0, 10);
        assert_eq!((t.calls, t.failures), (10, 2));
        // Read at 5: position 12 is 7 ahead, 3 is 2 back, 1 is 4 back.
        let t = c.totals(0, 5);
        assert_eq!((t.calls, t.failures), (12, 3));
        // A position just below the wrap of 2^46 read from just above it
        // (5 calls back); the one before it is far older.
        let c = Count::new(8);
        assert!(c.log(fail, 0, (1 << POS_BITS) - (1 << 31)));
        assert!(c.log(fail, 0, POS_MASK - 1));
        let t = c.totals(0, POS_MASK + 4);
        assert_eq!((t.calls, t.failures), (8, 1));
    }

    #[test]
    fn an_event_still_being_logged_hides_no_older_one() {
        // Event 1 is logged; event 2 claims its entry but has not written
        // it (an empty entry, as at the start): a fold skips it and still
        // sees event 1.
        let c = Count::new(4);
        let fail = Outcome {
            failed: true,
            slow: false,
        };
        assert!(c.log(fail, 0, 9));
        assert!(c.log(fail, 0, 10));
        c.log[1].store(0, Ordering::Relaxed);
        let t = c.totals(0, 10);
        assert_eq!((t.calls, t.failures), (4, 1));
    }

    #[test]
    fn the_log_is_a_power_of_two_at_least_the_window() {
        assert_eq!(Count::new(100).capacity, 128);
        assert_eq!(Count::new(128).capacity, 128);
        assert_eq!(Count::new(1).capacity, 1);
    }
}
