//! Lanes: a small number for each live thread that records into a window,
//! unique among live threads, so that each thread owns one stripe of every
//! window and writes it with plain loads and stores, never a
//! read-modify-write (a locked add costs about 10 ns on this VM against
//! under 1 ns for a load and a store).
//!
//! A thread takes the lowest free lane the first time it records and gives
//! it back when it exits; the next thread to take it carries on with the
//! counts the last owner left in each stripe, which stay correct: the
//! release and the claim synchronise, so the new owner sees every count the
//! old one wrote. Lanes are dense, so a window used by a few threads holds
//! stripes for a few lanes. Past [`LANES`] live threads, a thread records
//! through the window's shared words with compare-and-swap instead.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::stripes::Slot;

/// Lanes that can be owned at once (the windows' stripe directory holds
/// chunks of 1, 2, 4, ..., 1024 lanes: 2^11 - 1 in all).
pub(crate) const LANES: usize = (1 << super::stripes::CHUNKS) - 1;

/// The value of `CURRENT` before the thread's first record.
const UNSET: u32 = u32::MAX;
/// The value of `CURRENT` for a thread without a lane of its own.
const SHARED: u32 = u32::MAX - 1;

/// The process's lanes.
static REGISTRY: Registry = Registry::new();

thread_local! {
    /// Where this thread's stripe is in every window (its lane's `Slot`,
    /// packed), read on every record: no destructor, so reading it is a
    /// plain thread-local load and works during thread exit.
    static CURRENT: Cell<u32> = const { Cell::new(UNSET) };
    /// Gives the lane back when the thread exits.
    static OWNER: Owner = const { Owner(Cell::new(UNSET)) };
}

/// Where a thread records: a lane of its own, or the window's shared words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Lane {
    /// A lane owned by this thread alone: where its stripe is.
    Own(Slot),
    /// No lane to spare: record with compare-and-swap on shared words.
    Shared,
}

/// The calling thread's lane, taken on its first call.
#[inline(always)]
pub(crate) fn current() -> Lane {
    let raw = CURRENT.with(Cell::get);
    if raw < SHARED {
        Lane::Own(Slot::unpack(raw))
    } else if raw == SHARED {
        Lane::Shared
    } else {
        take()
    }
}

/// The calling thread's stripe slot if it already owns a lane: one
/// thread-local load and a compare, the fast path's whole cost of finding
/// the thread's stripe. `None` before its first record and for a thread
/// without a lane ([`current`] then says which).
#[inline(always)]
pub(crate) fn own() -> Option<Slot> {
    let raw = CURRENT.with(Cell::get);
    // A packed slot is below 2^20 (`Slot::pack`); `UNSET` and `SHARED`
    // have the top bit set, so one sign test tells them apart.
    (raw as i32 >= 0).then(|| Slot::unpack(raw))
}

#[cold]
fn take() -> Lane {
    // Register the destructor first: a thread that is already exiting
    // (its thread-locals being destroyed) records through shared words.
    let registered = OWNER.try_with(|o| o.0.get() == UNSET).unwrap_or(false);
    let lane = if registered { REGISTRY.claim() } else { None };
    match lane {
        Some(i) => {
            let raw = i as u32;
            if OWNER.try_with(|o| o.0.set(raw)).is_err() {
                REGISTRY.release(i);
                CURRENT.with(|c| c.set(SHARED));
                return Lane::Shared;
            }
            let slot = Slot::of(i);
            CURRENT.with(|c| c.set(slot.pack()));
            Lane::Own(slot)
        }
        None => {
            CURRENT.with(|c| c.set(SHARED));
            Lane::Shared
        }
    }
}

/// One bit per lane, set while a live thread owns it.
struct Registry {
    taken: [AtomicU64; LANES.div_ceil(64)],
}

impl Registry {
    const fn new() -> Self {
        Registry {
            taken: [const { AtomicU64::new(0) }; LANES.div_ceil(64)],
        }
    }

    /// Takes the lowest free lane.
    fn claim(&self) -> Option<usize> {
        for (w, word) in self.taken.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            loop {
                let free = !bits;
                if free == 0 {
                    break;
                }
                let bit = free.trailing_zeros() as usize;
                let lane = w * 64 + bit;
                if lane >= LANES {
                    break;
                }
                // Acquire: see every count the lane's last owner wrote.
                match word.compare_exchange_weak(
                    bits,
                    bits | (1 << bit),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(lane),
                    Err(now) => bits = now,
                }
            }
        }
        None
    }

    /// Gives `lane` back (Release: its next owner sees this one's counts).
    fn release(&self, lane: usize) {
        self.taken[lane / 64].fetch_and(!(1 << (lane % 64)), Ordering::Release);
    }
}

struct Owner(Cell<u32>);

impl Drop for Owner {
    fn drop(&mut self) {
        let raw = self.0.get();
        if (raw as usize) < LANES {
            // Anything this thread records from now on (other thread-locals'
            // destructors) goes through the shared words.
            CURRENT.with(|c| c.set(SHARED));
            REGISTRY.release(raw as usize);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Barrier, Mutex};

    #[test]
    fn live_threads_hold_distinct_lanes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (seen, barrier) = (Arc::clone(&seen), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let lane = current();
                    assert_eq!(current(), lane, "a thread keeps its lane");
                    seen.lock().unwrap().push(lane);
                    // All 8 alive at once: their lanes must differ.
                    barrier.wait();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let lanes = seen.lock().unwrap().clone();
        assert!(lanes.iter().all(|l| matches!(l, Lane::Own(_))), "{lanes:?}");
        let distinct: HashSet<_> = lanes.iter().collect();
        assert_eq!(distinct.len(), 8, "{lanes:?}");
    }

    #[test]
    fn the_lowest_free_lane_is_taken_and_a_released_one_is_taken_again() {
        let registry = Registry::new();
        assert_eq!(registry.claim(), Some(0));
        assert_eq!(registry.claim(), Some(1));
        assert_eq!(registry.claim(), Some(2));
        registry.release(1);
        assert_eq!(registry.claim(), Some(1));
        assert_eq!(registry.claim(), Some(3));
    }

    #[test]
    fn past_the_last_lane_there_is_none() {
        let registry = Registry::new();
        for i in 0..LANES {
            assert_eq!(registry.claim(), Some(i));
        }
        assert_eq!(registry.claim(), None);
        registry.release(LANES - 1);
        assert_eq!(registry.claim(), Some(LANES - 1));
    }
}
