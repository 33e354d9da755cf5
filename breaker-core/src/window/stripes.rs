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

use std::sync::atomic::fence;

#[cfg(loom)]
use loom::sync::atomic::AtomicPtr;
#[cfg(not(loom))]
use std::sync::atomic::AtomicPtr;

use crate::sync::{AtomicU64, Ordering};

/// Chunks in the directory: lanes `0 ..= 2^CHUNKS - 2`.
pub(crate) const CHUNKS: usize = 11;

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

/// One lane's words: `ERA` first, then the window's counts.
#[derive(Clone, Copy)]
pub(crate) struct Stripe<'a> {
    lines: &'a [Line],
}

impl<'a> Stripe<'a> {
    /// Word `i` of the stripe.
    #[inline(always)]
    pub(crate) fn word(self, i: usize) -> &'a AtomicU64 {
        &self.lines[i / LINE_WORDS].0[i % LINE_WORDS]
    }

    /// Words in the stripe.
    pub(crate) fn len(self) -> usize {
        self.lines.len() * LINE_WORDS
    }

    /// Owner only: makes `generation` the stripe's era if it is not
    /// already, zeroing its counts; `false` if the stripe already holds a
    /// newer generation's counts (the caller's result is stale).
    #[inline(always)]
    pub(crate) fn enter(self, generation: u64) -> bool {
        let era = self.word(ERA).load(Ordering::Relaxed);
        if era == generation {
            return true;
        }
        self.enter_slow(era, generation)
    }

    #[cold]
    fn enter_slow(self, era: u64, generation: u64) -> bool {
        if is_newer(era, generation) {
            return false;
        }
        // A seqlock's write: readers that see any of the zeroes below see
        // BUSY (or the new era) when they check the era again.
        self.word(ERA).store(BUSY, Ordering::Relaxed);
        fence(Ordering::Release);
        for i in ERA + 1..self.len() {
            self.word(i).store(0, Ordering::Relaxed);
        }
        self.word(ERA).store(generation, Ordering::Release);
        true
    }

    /// `f` of the stripe's words if they hold `generation`'s counts, read
    /// without a write: `None` if the stripe's era is another generation's
    /// or changed while `f` read (the owner then moved on to a newer one,
    /// so `generation` is no longer the window's).
    #[inline]
    pub(crate) fn read<T>(self, generation: u64, f: impl FnOnce(Stripe<'a>) -> T) -> Option<T> {
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

/// The directory of a window's stripes.
pub(crate) struct Stripes {
    /// Cache lines per lane.
    lines_per_lane: usize,
    /// Chunk `k`: `2^k` lanes' lines, or null until a lane in it records.
    chunks: [AtomicPtr<Line>; CHUNKS],
}

/// The chunk holding `lane`, and the lane's place in it.
#[inline(always)]
fn locate(lane: usize) -> (usize, usize) {
    let one_based = lane + 1;
    let chunk = (usize::BITS - 1 - one_based.leading_zeros()) as usize;
    (chunk, one_based - (1 << chunk))
}

impl Stripes {
    pub(crate) fn new(lines_per_lane: usize) -> Self {
        Stripes {
            lines_per_lane,
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }

    /// Lines in chunk `k`.
    fn chunk_lines(&self, k: usize) -> usize {
        (1 << k) * self.lines_per_lane
    }

    /// Lane `lane`'s stripe (`lane` < [`LANES`](super::lane::LANES)),
    /// allocated on its first use.
    #[inline(always)]
    pub(crate) fn lane(&self, lane: usize) -> Stripe<'_> {
        let (k, offset) = locate(lane);
        let ptr = self.chunks[k].load(Ordering::Acquire);
        let chunk = if ptr.is_null() {
            self.install(k)
        } else {
            self.chunk(k, ptr)
        };
        let at = offset * self.lines_per_lane;
        Stripe {
            lines: &chunk[at..at + self.lines_per_lane],
        }
    }

    /// Chunk `k`, read from its installed pointer.
    #[inline(always)]
    #[allow(unsafe_code)]
    fn chunk(&self, k: usize, ptr: *mut Line) -> &[Line] {
        // SAFETY: a non-null pointer in `chunks[k]` was made by `install`
        // from a `Box<[Line]>` of exactly `chunk_lines(k)` lines, published
        // with Release and read here with Acquire (so its lines are
        // initialised), never replaced once set, and freed only by `drop`,
        // which has `&mut self`: it lives as long as `&self`.
        unsafe { std::slice::from_raw_parts(ptr, self.chunk_lines(k)) }
    }

    #[cold]
    fn install(&self, k: usize) -> &[Line] {
        let fresh: Box<[Line]> = (0..self.chunk_lines(k)).map(|_| Line::new()).collect();
        let fresh = Box::into_raw(fresh) as *mut Line;
        match self.chunks[k].compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => self.chunk(k, fresh),
            Err(theirs) => {
                self.free(k, fresh);
                self.chunk(k, theirs)
            }
        }
    }

    /// Frees a chunk made by `install` that no one else can reach.
    #[allow(unsafe_code)]
    fn free(&self, k: usize, ptr: *mut Line) {
        let slice = std::ptr::slice_from_raw_parts_mut(ptr, self.chunk_lines(k));
        // SAFETY: `ptr` came from `Box::into_raw` of a `Box<[Line]>` of
        // `chunk_lines(k)` lines (in `install`), and the caller owns it:
        // either it lost the race to publish it, or the window is being
        // dropped. It is freed once.
        drop(unsafe { Box::from_raw(slice) });
    }

    /// Every allocated lane's stripe, in lane order.
    #[inline]
    pub(crate) fn each(&self, mut f: impl FnMut(Stripe<'_>)) {
        for k in 0..CHUNKS {
            let ptr = self.chunks[k].load(Ordering::Acquire);
            if ptr.is_null() {
                continue;
            }
            for lines in self.chunk(k, ptr).chunks_exact(self.lines_per_lane) {
                f(Stripe { lines });
            }
        }
    }

    /// Heap bytes the allocated stripes take.
    pub(crate) fn heap_bytes(&self) -> usize {
        (0..CHUNKS)
            .filter(|&k| !self.chunks[k].load(Ordering::Acquire).is_null())
            .map(|k| self.chunk_lines(k) * std::mem::size_of::<Line>())
            .sum()
    }
}

impl Drop for Stripes {
    fn drop(&mut self) {
        for k in 0..CHUNKS {
            let ptr = self.chunks[k].load(Ordering::Acquire);
            if !ptr.is_null() {
                self.free(k, ptr);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn lanes_map_to_chunks_of_growing_size() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1), (1, 0));
        assert_eq!(locate(2), (1, 1));
        assert_eq!(locate(3), (2, 0));
        assert_eq!(locate(6), (2, 3));
        assert_eq!(locate(7), (3, 0));
        assert_eq!(locate(super::super::lane::LANES - 1), (CHUNKS - 1, 1023));
    }

    #[test]
    fn each_lane_has_words_of_its_own_on_lines_of_its_own() {
        let stripes = Stripes::new(2);
        for lane in 0..40 {
            stripes
                .lane(lane)
                .word(3)
                .store(lane as u64 + 1, Ordering::Relaxed);
        }
        for lane in 0..40 {
            let s = stripes.lane(lane);
            assert_eq!(s.len(), 16);
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
        let stripes = Stripes::new(1);
        std::thread::scope(|s| {
            for lane in [3usize, 4, 5, 6] {
                let stripes = &stripes;
                s.spawn(move || {
                    stripes
                        .lane(lane)
                        .word(1)
                        .store(lane as u64, Ordering::Relaxed)
                });
            }
        });
        for lane in [3usize, 4, 5, 6] {
            assert_eq!(
                stripes.lane(lane).word(1).load(Ordering::Relaxed),
                lane as u64
            );
        }
        assert_eq!(stripes.heap_bytes(), 4 * 64);
    }

    #[test]
    fn entering_a_newer_generation_zeroes_the_counts_and_an_older_one_is_refused() {
        let stripes = Stripes::new(1);
        let s = stripes.lane(0);
        assert!(s.enter(0));
        s.word(1).store(7, Ordering::Relaxed);
        assert_eq!(s.read(0, |s| s.word(1).load(Ordering::Relaxed)), Some(7));
        assert!(s.enter(2));
        assert_eq!(s.read(0, |_| ()), None, "generation 0's counts are gone");
        assert_eq!(s.read(2, |s| s.word(1).load(Ordering::Relaxed)), Some(0));
        assert!(!s.enter(1), "an older generation is refused");
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
