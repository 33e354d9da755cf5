//! The per-lane stripes of one window: each lane's words on cache lines of
//! their own, allocated the first time a thread of that lane records, so a
//! window holds stripes only for lanes that used it.
//!
//! Lanes are grouped in chunks of 1, 2, 4, ..., 1024 (chunk `k` holds lanes
//! `2^k - 1 ..= 2^(k+1) - 2`): a window recorded into by lanes 0 and 1 holds
//! 3 stripes, by lanes 0 to 15, 31. A chunk is installed with one
//! compare-and-swap (a thread that loses the race frees its own) and freed
//! with the window.
//!
//! Each stripe starts with its **era**, the generation its counts belong to,
//! written only by the stripe's owner. The owner moves it forward with a
//! seqlock-style protocol (`enter`), and readers (`read`) take a stripe's
//! words only if its era is the generation they fold, before and after
//! reading them; so a fold never mixes an older generation's counts into a
//! newer one, without a lock and without a write by the reader.

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicPtr};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicPtr};

use crate::sync::{AtomicU64, Ordering};

/// Chunks a window can hold: lanes `0 ..= 2^CHUNKS - 2`.
pub(crate) const CHUNKS: usize = 11;
/// Entries in the directory: `CHUNKS` rounded up to a power of two, so that
/// a chunk number masked by `DIRECTORY - 1` needs no bounds check.
const DIRECTORY: usize = 16;

/// Words on one cache line.
pub(crate) const LINE_WORDS: usize = 8;

/// The era of a stripe whose owner is resetting it (never a generation the
/// window is asked about: generations grow by one from 0).
const BUSY: u64 = u64::MAX;

/// The word holding a stripe's era.
pub(crate) const ERA: usize = 0;

/// Eight words on a cache line of their own.
#[repr(align(64))]
pub(crate) struct Line([AtomicU64; LINE_WORDS]);

impl Line {
    fn new() -> Self {
        Line(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// Where a lane's stripe is: its chunk and its place in the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Slot {
    chunk: u32,
    offset: u32,
}

impl Slot {
    /// The slot of `lane` (< [`LANES`](super::lane::LANES)): chunk `k`
    /// holds lanes `2^k - 1 ..= 2^(k+1) - 2`.
    pub(crate) fn of(lane: usize) -> Self {
        let one_based = lane + 1;
        let chunk = usize::BITS - 1 - one_based.leading_zeros();
        Slot {
            chunk,
            offset: (one_based - (1 << chunk)) as u32,
        }
    }

    /// The slot in 32 bits (chunk above offset): never `u32::MAX - 1` or
    /// above, which `lane.rs` keeps for "no lane".
    pub(crate) fn pack(self) -> u32 {
        (self.chunk << 16) | self.offset
    }

    #[inline(always)]
    pub(crate) fn unpack(packed: u32) -> Self {
        Slot {
            chunk: packed >> 16,
            offset: packed & 0xFFFF,
        }
    }
}

/// One lane's `L` cache lines: `ERA` first, then the window's counts.
#[derive(Clone, Copy)]
pub(crate) struct Stripe<'a, const L: usize> {
    lines: &'a [Line; L],
}

impl<'a, const L: usize> Stripe<'a, L> {
    /// Word `i` of the stripe.
    #[inline(always)]
    pub(crate) fn word(self, i: usize) -> &'a AtomicU64 {
        &self.lines[i / LINE_WORDS].0[i % LINE_WORDS]
    }

    /// Owner only: makes `generation` the stripe's era if it is not
    /// already, zeroing its counts (words `1..words`); `false` if the
    /// stripe already holds a newer generation's counts (the caller's
    /// result is stale).
    #[inline(always)]
    pub(crate) fn enter(self, generation: u64, words: usize) -> bool {
        let era = self.word(ERA).load(Ordering::Relaxed);
        if era == generation {
            return true;
        }
        self.enter_slow(era, generation, words)
    }

    /// Owner only: whether the stripe's era has `generation`'s bits under
    /// `mask` (one load; with `u64::MAX`, whether it holds `generation`'s
    /// counts; [`enter`](Self::enter) moves it when it does not).
    #[inline(always)]
    pub(crate) fn is_in(self, generation: u64, mask: u64) -> bool {
        (self.word(ERA).load(Ordering::Relaxed) ^ generation) & mask == 0
    }

    #[cold]
    #[inline(never)]
    fn enter_slow(self, era: u64, generation: u64, words: usize) -> bool {
        if is_newer(era, generation) {
            return false;
        }
        // A seqlock's write: readers that see any of the zeroes below see
        // BUSY (or the new era) when they check the era again.
        self.word(ERA).store(BUSY, Ordering::Relaxed);
        fence(Ordering::Release);
        for i in ERA + 1..words.min(L * LINE_WORDS) {
            self.word(i).store(0, Ordering::Relaxed);
        }
        self.word(ERA).store(generation, Ordering::Release);
        true
    }

    /// `f` of the stripe's words if they hold `generation`'s counts, read
    /// without a write: `None` if the stripe's era is another generation's
    /// or changed while `f` read (the owner then moved on to a newer one,
    /// so `generation` is no longer the window's).
    #[inline(always)]
    pub(crate) fn read<T>(self, generation: u64, f: impl FnOnce(Self) -> T) -> Option<T> {
        if self.word(ERA).load(Ordering::Acquire) != generation {
            return None;
        }
        let value = f(self);
        fence(Ordering::Acquire);
        (self.word(ERA).load(Ordering::Relaxed) == generation).then_some(value)
    }
}

/// Whether generation `a` is newer than `b` (generations grow by one from
/// 0; compared on 64 bits, as numbers that may wrap).
#[inline(always)]
pub(crate) fn is_newer(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

/// The directory of a window's stripes, `L` cache lines per lane.
pub(crate) struct Stripes<const L: usize> {
    /// Chunk `k`: `2^k` lanes' lines, or null until a lane in it records.
    chunks: [AtomicPtr<Line>; DIRECTORY],
    /// Bit `k` set once chunk `k` is installed (folds visit only those).
    installed: AtomicU64,
}

impl<const L: usize> Stripes<L> {
    pub(crate) fn new() -> Self {
        Stripes {
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            installed: AtomicU64::new(0),
        }
    }

    /// Lines in chunk `k`.
    fn chunk_lines(k: usize) -> usize {
        (1 << k) * L
    }

    /// The stripe at `slot`, allocated on its first use.
    #[inline(always)]
    pub(crate) fn lane(&self, slot: Slot) -> Stripe<'_, L> {
        let k = slot.chunk as usize % DIRECTORY;
        let ptr = self.chunks[k].load(Ordering::Acquire);
        let ptr = if ptr.is_null() { self.install(k) } else { ptr };
        self.stripe(ptr, k, slot.offset as usize)
    }

    /// The stripe at `slot` if its chunk is installed (no allocation).
    #[inline(always)]
    pub(crate) fn existing(&self, slot: Slot) -> Option<Stripe<'_, L>> {
        let k = slot.chunk as usize % DIRECTORY;
        let ptr = self.chunks[k].load(Ordering::Acquire);
        (!ptr.is_null()).then(|| self.stripe(ptr, k, slot.offset as usize))
    }

    /// Lane `offset` of chunk `k`, whose installed pointer is `ptr`.
    #[inline(always)]
    #[allow(unsafe_code)]
    fn stripe(&self, ptr: *mut Line, k: usize, offset: usize) -> Stripe<'_, L> {
        debug_assert!(offset < 1 << k);
        // SAFETY: a non-null pointer in `chunks[k]` was made by `install`
        // from a `Box<[Line]>` of `chunk_lines(k)` = `2^k * L` lines,
        // published with Release and read with Acquire (so its lines are
        // initialised), never replaced once set, and freed only by `drop`,
        // which has `&mut self`: it lives as long as `&self`. `offset` is
        // below `2^k` (`Slot::of` and `each` make it so), so the `L` lines
        // from `offset * L` are inside the allocation.
        Stripe {
            lines: unsafe { &*ptr.add(offset * L).cast::<[Line; L]>() },
        }
    }

    #[cold]
    #[inline(never)]
    fn install(&self, k: usize) -> *mut Line {
        // The bit first: whoever finds the chunk installed (this thread, or
        // one that loses the race below) records after it, so a fold that
        // sees any of their records sees the bit too.
        self.installed.fetch_or(1 << k, Ordering::AcqRel);
        let fresh: Box<[Line]> = (0..Self::chunk_lines(k)).map(|_| Line::new()).collect();
        let fresh = Box::into_raw(fresh).cast::<Line>();
        match self.chunks[k].compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(theirs) => {
                Self::free(k, fresh);
                theirs
            }
        }
    }

    /// Frees a chunk made by `install` that no one else can reach.
    #[allow(unsafe_code)]
    fn free(k: usize, ptr: *mut Line) {
        let slice = std::ptr::slice_from_raw_parts_mut(ptr, Self::chunk_lines(k));
        // SAFETY: `ptr` came from `Box::into_raw` of a `Box<[Line]>` of
        // `chunk_lines(k)` lines (in `install`), and the caller owns it:
        // either it lost the race to publish it, or the window is being
        // dropped. It is freed once.
        drop(unsafe { Box::from_raw(slice) });
    }

    /// Every allocated lane's stripe, in lane order. (A chunk's bit is set
    /// before it is installed, and every record in it follows its
    /// installation: a fold that must see a record sees its chunk.)
    #[inline]
    pub(crate) fn each(&self, mut f: impl FnMut(Stripe<'_, L>)) {
        let mut installed = self.installed.load(Ordering::Acquire);
        while installed != 0 {
            let k = installed.trailing_zeros() as usize % DIRECTORY;
            installed &= installed - 1;
            let ptr = self.chunks[k].load(Ordering::Acquire);
            if ptr.is_null() {
                continue;
            }
            for offset in 0..1 << k {
                f(self.stripe(ptr, k, offset));
            }
        }
    }

    /// Heap bytes the allocated stripes take.
    pub(crate) fn heap_bytes(&self) -> usize {
        (0..DIRECTORY)
            .filter(|&k| !self.chunks[k].load(Ordering::Acquire).is_null())
            .map(|k| Self::chunk_lines(k) * std::mem::size_of::<Line>())
            .sum()
    }
}

impl<const L: usize> Drop for Stripes<L> {
    fn drop(&mut self) {
        for k in 0..DIRECTORY {
            let ptr = self.chunks[k].load(Ordering::Acquire);
            if !ptr.is_null() {
                Self::free(k, ptr);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn locate(lane: usize) -> (u32, u32) {
        let slot = Slot::of(lane);
        (slot.chunk, slot.offset)
    }

    #[test]
    fn lanes_map_to_chunks_of_growing_size() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1), (1, 0));
        assert_eq!(locate(2), (1, 1));
        assert_eq!(locate(3), (2, 0));
        assert_eq!(locate(6), (2, 3));
        assert_eq!(locate(7), (3, 0));
        assert_eq!(
            locate(super::super::lane::LANES - 1),
            (CHUNKS as u32 - 1, 1023)
        );
    }

    #[test]
    fn each_lane_has_words_of_its_own_on_lines_of_its_own() {
        let stripes = Stripes::<2>::new();
        for lane in 0..40 {
            let s = stripes.lane(Slot::of(lane));
            s.word(3).store(lane as u64 + 1, Ordering::Relaxed);
        }
        for lane in 0..40 {
            let s = stripes.lane(Slot::of(lane));
            assert_eq!(s.word(3).load(Ordering::Relaxed), lane as u64 + 1);
            // 64-byte aligned, so two lanes never share a cache line.
            assert_eq!(s.word(0) as *const AtomicU64 as usize % 64, 0);
        }
        let mut seen = Vec::new();
        stripes.each(|s| seen.push(s.word(3).load(Ordering::Relaxed)));
        // Chunks 0..=5 (63 lanes) are allocated; the 23 unused lanes read 0.
        assert_eq!(seen.len(), 63);
        assert_eq!(&seen[..40], &(1..=40).collect::<Vec<_>>()[..]);
        assert!(seen[40..].iter().all(|&v| v == 0));
        assert_eq!(stripes.heap_bytes(), 63 * 2 * 64);
    }

    #[test]
    fn threads_racing_to_install_a_chunk_share_one() {
        let stripes = Stripes::<1>::new();
        std::thread::scope(|s| {
            for lane in [3usize, 4, 5, 6] {
                let stripes = &stripes;
                s.spawn(move || {
                    let s = stripes.lane(Slot::of(lane));
                    s.word(1).store(lane as u64, Ordering::Relaxed)
                });
            }
        });
        for lane in [3usize, 4, 5, 6] {
            let s = stripes.lane(Slot::of(lane));
            assert_eq!(s.word(1).load(Ordering::Relaxed), lane as u64);
        }
        assert_eq!(stripes.heap_bytes(), 4 * 64);
    }

    #[test]
    fn entering_a_newer_generation_zeroes_the_counts_and_an_older_one_is_refused() {
        let stripes = Stripes::<1>::new();
        let s = stripes.lane(Slot::of(0));
        assert!(s.enter(0, 2));
        s.word(1).store(7, Ordering::Relaxed);
        assert_eq!(s.read(0, |s| s.word(1).load(Ordering::Relaxed)), Some(7));
        assert!(s.enter(2, 2));
        assert_eq!(s.read(0, |_| ()), None, "generation 0's counts are gone");
        assert_eq!(s.read(2, |s| s.word(1).load(Ordering::Relaxed)), Some(0));
        assert!(!s.enter(1, 2), "an older generation is refused");
        assert_eq!(s.word(ERA).load(Ordering::Relaxed), 2);
    }

    #[test]
    fn newer_is_decided_across_the_wrap() {
        assert!(is_newer(1, 0));
        assert!(!is_newer(0, 1));
        assert!(!is_newer(5, 5));
        assert!(is_newer(0, u64::MAX - 1));
    }
}
