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
//! `k`). Under concurrency an event's position is the fold it saw, which
//! counts every call that completed before it and some that ran beside it,
//! so an event racing others may be placed a few calls later than a
//! serial order would; it never moves outside the calls that ran while it
//! was recorded.

use crate::sync::{AtomicU64, Ordering};

use super::stripes::Stripe;
use super::{Outcome, Totals};

/// The stripe word holding a lane's call count (after the era).
pub(super) const CALLS: usize = 1;
/// Cache lines per lane.
pub(super) const LINES_PER_LANE: usize = 1;

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
        self.log.len() * std::mem::size_of::<AtomicU64>()
    }

    /// Owner only: one more call in `stripe` (already entered).
    #[inline(always)]
    pub(super) fn add(stripe: Stripe<'_>) {
        let calls = stripe.word(CALLS);
        calls.store(calls.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// One more call of a thread without a lane; `false` if stale.
    pub(super) fn add_shared(&self, generation: u64) -> bool {
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

    /// The fold: every call of `generation` recorded so far, given the sum
    /// of the lanes' counts.
    pub(super) fn fold(&self, lanes: u64, generation: u64) -> u64 {
        lanes.wrapping_add(self.shared_calls(generation))
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
    pub(super) fn log(&self, outcome: Outcome, generation: u64, calls: u64) -> bool {
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
        self.log[(index & (self.capacity - 1)) as usize].store(entry, Ordering::Release);
        true
    }

    /// Which pass over the ring event `index` (modulo 2^16) is written in.
    fn lap(&self, index: u64) -> u64 {
        (index >> self.shift) & 0xFF
    }

    /// The window's totals at fold `calls`: the failures and slow calls
    /// logged at positions within the last `size`, read from the newest
    /// event back to the first one before the window.
    pub(super) fn totals(&self, generation: u64, calls: u64) -> Totals {
        let head = self.head.load(Ordering::Acquire);
        let (mut failures, mut slow) = (0, 0);
        if head >> HEAD_GEN_SHIFT == generation & HEAD_GEN_MASK {
            let end = (head >> HEAD_INDEX_SHIFT) & HEAD_INDEX_MASK;
            let logged = if head & HEAD_FULL != 0 {
                self.capacity
            } else {
                end
            };
            let gen8 = generation & 0xFF;
            for back in 1..=logged {
                let index = end.wrapping_sub(back) & HEAD_INDEX_MASK;
                let entry =
                    self.log[(index & (self.capacity - 1)) as usize].load(Ordering::Acquire);
                let lap = (entry >> LAP_SHIFT) & 0xFF;
                if entry & (FAILED_BIT | SLOW_BIT) == 0
                    || entry >> GEN_SHIFT != gen8
                    || !(lap == self.lap(index) || newer_by_bits(lap, self.lap(index), 8))
                {
                    // Never written (every event is failed or slow), or
                    // claimed and not written yet: an event still being
                    // recorded. (A newer lap's entry is an event logged
                    // since this reader read the head: counted if in the
                    // window, as it would have been.)
                    continue;
                }
                // How many calls before the fold it was: negative for an
                // event that folded after this reader (it ran beside it).
                let age = sign_extend(calls.wrapping_sub(entry) & POS_MASK, POS_BITS);
                if age >= self.size as i64 {
                    break;
                }
                failures += u64::from(entry & FAILED_BIT != 0);
                slow += u64::from(entry & SLOW_BIT != 0);
            }
        }
        Totals {
            // An event seen beside this fold counts its call too.
            calls: calls.min(self.size).max(failures).max(slow),
            failures,
            slow,
        }
    }
}

/// Whether tag `a` is newer than `b`, both the low `bits` of generations.
fn newer_by_bits(a: u64, b: u64, bits: u32) -> bool {
    let diff = a.wrapping_sub(b) & ((1 << bits) - 1);
    diff != 0 && diff < 1 << (bits - 1)
}

fn sign_extend(value: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((value << shift) as i64) >> shift
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tags_compare_across_their_wrap() {
        assert!(newer_by_bits(1, 0, 8));
        assert!(newer_by_bits(0, 255, 8));
        assert!(!newer_by_bits(255, 0, 8));
        assert!(!newer_by_bits(3, 3, 8));
    }

    #[test]
    fn positions_compare_across_their_wrap() {
        assert_eq!(sign_extend(POS_MASK, POS_BITS), -1);
        assert_eq!(sign_extend(5, POS_BITS), 5);
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
