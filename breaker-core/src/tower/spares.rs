//! Spare handles on shared breakers, kept per thread, so that a request
//! through a layer holding an `Arc<CircuitBreaker>` writes no count another
//! thread writes.
//!
//! A response future must own its breaker (tower's futures are `'static`),
//! and an `Arc` clone and drop per request are two locked read-modify-writes
//! of the breaker's one shared count: about 10 ns each on an idle core, and
//! a cache line that bounces between the threads answering requests. So a
//! thread keeps the strong counts its handles give back on a **shelf** (a
//! breaker's address and how many counts the shelf owns, plain thread-local
//! cells), and the next handle it needs for that breaker comes off the shelf
//! with no write to shared memory. A handle given back on another thread
//! goes to that thread's shelf; past [`KEEP`] on a shelf, it is dropped.
//!
//! A thread has [`SHELVES`] shelves. A handle for a breaker without one
//! takes an empty shelf, else the next in turn, whose counts are released
//! (dropped as the `Arc`s they are).
//!
//! **When a breaker is dropped.** A shelf keeps its breaker alive. A handle
//! given back while it and its thread's shelf are all the breaker's
//! handles (the strong count says so) releases the shelf with itself, so a
//! breaker whose layers, services and futures were all dropped on one
//! thread goes at once. Spares left on other threads' shelves keep it alive
//! until those threads need the shelf for other breakers, or exit.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;

use crate::breaker::CircuitBreaker;

/// Shelves a thread has: breakers it keeps spares of at once.
pub(super) const SHELVES: usize = 4;
/// Counts a shelf keeps: handles a thread can hand out for one breaker
/// before it clones the `Arc`.
pub(super) const KEEP: u32 = 1024;

/// Strong counts of one `Arc<CircuitBreaker>` that the thread owns.
struct Shelf {
    /// The `Arc`'s address ([`Arc::into_raw`]); meaningless while `count`
    /// is 0 (the breaker may be gone).
    breaker: Cell<*const CircuitBreaker>,
    count: Cell<u32>,
}

impl Shelf {
    const fn new() -> Shelf {
        Shelf {
            breaker: Cell::new(std::ptr::null()),
            count: Cell::new(0),
        }
    }

    /// Whether the shelf holds counts of the breaker at `ptr`.
    #[inline(always)]
    fn holds(&self, ptr: *const CircuitBreaker) -> bool {
        self.count.get() > 0 && std::ptr::eq(self.breaker.get(), ptr)
    }

    /// Empties the shelf: what the caller must release.
    fn empty(&self) -> Counts {
        Counts {
            breaker: self.breaker.get(),
            count: self.count.replace(0),
        }
    }
}

/// Strong counts taken off a shelf, released when dropped: after the
/// thread's shelves are consistent again, since dropping a breaker runs
/// its listeners' destructors, which may answer requests of their own.
struct Counts {
    breaker: *const CircuitBreaker,
    count: u32,
}

impl Drop for Counts {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        for _ in 0..self.count {
            // SAFETY: a shelf's `count` strong counts of the `Arc` at
            // `breaker` were each made by `Arc::into_raw` (in `give`), and
            // `Shelf::empty` moved them all here, once; each is given back
            // to an `Arc` once, which drops it.
            drop(unsafe { Arc::from_raw(self.breaker) });
        }
    }
}

struct Spares {
    shelves: [Shelf; SHELVES],
    /// The shelf a breaker without one takes when none is empty.
    next: Cell<usize>,
    /// Whether the thread may shelve handles: set once [`RELEASE`] is
    /// registered to release them at its exit, cleared when it has.
    open: Cell<bool>,
}

thread_local! {
    /// No destructor, so reading it is a plain thread-local access (and it
    /// stays readable while the thread's other thread-locals are dropped).
    static SPARES: Spares = const {
        Spares {
            shelves: [const { Shelf::new() }; SHELVES],
            next: Cell::new(0),
            open: Cell::new(false),
        }
    };
    /// Releases the shelves when the thread exits; registered the first
    /// time the thread shelves a handle.
    static RELEASE: Release = const { Release };
}

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        SPARES.with(|spares| {
            // From now on a handle given back on this thread is dropped.
            spares.open.set(false);
            let counts = spares.shelves.each_ref().map(|shelf| {
                let counts = shelf.empty();
                // No shelf holds this breaker's address any more.
                shelf.breaker.set(std::ptr::null());
                counts
            });
            drop(counts);
        });
    }
}

/// An `Arc<CircuitBreaker>` whose clones come off this thread's shelf and
/// whose drop puts it back on the shelf of the thread it is dropped on.
///
/// Held as the address of the breaker itself (what [`Arc::into_raw`]
/// gives), so that reaching the breaker is no arithmetic, as for a
/// `&'static CircuitBreaker`: a layer's handle is either, and reads the
/// same field for both.
pub(super) struct Spare(*const CircuitBreaker);

// SAFETY: a `Spare` is one strong count of an `Arc<CircuitBreaker>` (see
// `Spare::new`), which is `Send` and `Sync` because `CircuitBreaker` is
// (`breaker.rs` asserts it): it may be sent and shared as that `Arc`.
#[allow(unsafe_code)]
unsafe impl Send for Spare {}
// SAFETY: as for `Send` above.
#[allow(unsafe_code)]
unsafe impl Sync for Spare {}

impl Spare {
    pub(super) fn new(breaker: Arc<CircuitBreaker>) -> Self {
        // The strong count is the spare's now; `into_raw` keeps the
        // pointer's right to the whole allocation, which `from_raw` needs.
        Spare(Arc::into_raw(breaker))
    }

    /// The `Arc` this spare is; its strong count stays the spare's unless
    /// the caller takes it out of the `ManuallyDrop`.
    #[inline(always)]
    #[allow(unsafe_code)]
    fn arc(&self) -> ManuallyDrop<Arc<CircuitBreaker>> {
        // SAFETY: `self.0` is the `Arc::into_raw` of an `Arc` whose strong
        // count the spare owns (`new`), so the allocation lives and
        // `from_raw` rebuilds that `Arc`; wrapped in `ManuallyDrop`, it
        // gives the count up only where the caller says so (`drop`).
        ManuallyDrop::new(unsafe { Arc::from_raw(self.0) })
    }
}

impl Clone for Spare {
    #[inline(always)]
    fn clone(&self) -> Self {
        Spare::new(take(&self.arc()))
    }
}

impl Drop for Spare {
    #[inline(always)]
    fn drop(&mut self) {
        // The spare's count goes with the `Arc`; `self` is not used after.
        give(ManuallyDrop::into_inner(self.arc()));
    }
}

impl Deref for Spare {
    type Target = CircuitBreaker;

    #[inline(always)]
    #[allow(unsafe_code)]
    fn deref(&self) -> &CircuitBreaker {
        // SAFETY: the spare owns a strong count of the `Arc` at `self.0`
        // (`new`), so the breaker lives at least as long as `self`.
        unsafe { &*self.0 }
    }
}

/// A handle on `breaker`: a spare from this thread's shelf, else a clone.
#[inline(always)]
fn take(breaker: &Arc<CircuitBreaker>) -> Arc<CircuitBreaker> {
    match SPARES.with(|spares| spares.take(Arc::as_ptr(breaker))) {
        Some(spare) => spare,
        None => Arc::clone(breaker),
    }
}

/// Gives `handle` back to this thread's shelf (or drops it).
///
/// Out of line, so that the thread-local's accessor is inlined here (a
/// future's drop calls this from more than one place, where it was not).
#[inline(never)]
fn give(handle: Arc<CircuitBreaker>) {
    if let Some(handle) = SPARES.with(move |spares| spares.keep(handle)) {
        give_elsewhere(handle);
    }
}

/// [`give`] for a handle its breaker's shelf does not simply keep.
#[cold]
#[inline(never)]
fn give_elsewhere(handle: Arc<CircuitBreaker>) {
    SPARES.with(move |spares| spares.give(handle));
}

impl Spares {
    /// Whether the thread may shelve handles: registers [`RELEASE`] the
    /// first time; false once the thread has begun to exit.
    fn open(&self) -> bool {
        if !self.open.get() && RELEASE.try_with(|_| ()).is_ok() {
            self.open.set(true);
        }
        self.open.get()
    }

    #[inline(always)]
    #[allow(unsafe_code)]
    fn take(&self, ptr: *const CircuitBreaker) -> Option<Arc<CircuitBreaker>> {
        let shelf = self.shelves.iter().find(|s| s.holds(ptr))?;
        shelf.count.set(shelf.count.get() - 1);
        // SAFETY: the shelf held at least one strong count of the `Arc` at
        // `ptr` (`holds`), made by `Arc::into_raw` in `give`; it gives up
        // that one (the count above) to the `Arc` made here. While a count
        // is held the allocation lives, so no other `Arc` has its address.
        Some(unsafe { Arc::from_raw(ptr) })
    }

    /// The common case of [`give`](Self::give): the shelf holding counts
    /// of `handle`'s breaker keeps it, unless it is full or they are all
    /// the counts there are. Else `handle` is handed back.
    ///
    /// Out of line, so that the `LocalKey::with` calling it stays small
    /// enough to be inlined into [`give`](fn@give) in every build (with
    /// this inlined into it, whether LLVM inlined it moved with unrelated
    /// code: 17 or 36 instructions).
    #[inline(never)]
    fn keep(&self, handle: Arc<CircuitBreaker>) -> Option<Arc<CircuitBreaker>> {
        // An empty shelf whose breaker had this address takes it too (as
        // in `give`): the breaker at this address now is the handle's.
        let ptr = Arc::as_ptr(&handle);
        let Some(shelf) = self.shelves.iter().find(|s| s.breaker.get() == ptr) else {
            return Some(handle);
        };
        let count = shelf.count.get();
        if count >= KEEP || Arc::strong_count(&handle) == count as usize + 1 {
            return Some(handle);
        }
        shelf.count.set(count + 1);
        let _ = Arc::into_raw(handle);
        None
    }

    fn give(&self, handle: Arc<CircuitBreaker>) {
        let ptr = Arc::as_ptr(&handle);
        // An empty shelf whose breaker had this address takes it too: the
        // breaker at this address now is the handle's.
        match self
            .shelves
            .iter()
            .find(|s| std::ptr::eq(s.breaker.get(), ptr))
        {
            Some(shelf) => self.give_to(shelf, handle),
            None => self.give_new(handle),
        }
    }

    fn give_to(&self, shelf: &Shelf, handle: Arc<CircuitBreaker>) {
        let count = shelf.count.get();
        if Arc::strong_count(&handle) == count as usize + 1 {
            // The shelf and this handle are all there is: nobody can take
            // one any more, so the breaker goes now.
            let counts = shelf.empty();
            drop(handle);
            drop(counts);
        } else if count < KEEP {
            shelf.count.set(count + 1);
            let _ = Arc::into_raw(handle);
        }
    }

    /// A breaker without a shelf on this thread.
    #[cold]
    #[inline(never)]
    fn give_new(&self, handle: Arc<CircuitBreaker>) {
        if Arc::strong_count(&handle) == 1 || !self.open() {
            return; // the last handle (the breaker goes), or the thread exits
        }
        let shelf = match self.shelves.iter().find(|s| s.count.get() == 0) {
            Some(empty) => empty,
            None => {
                let next = self.next.get();
                self.next.set((next + 1) % SHELVES);
                &self.shelves[next]
            }
        };
        let evicted = shelf.empty();
        shelf.breaker.set(Arc::into_raw(handle));
        shelf.count.set(1);
        drop(evicted);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Weak;

    fn breaker(name: &'static str) -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::new(name))
    }

    /// This thread's shelf count for `cb`.
    fn shelved(cb: &Arc<CircuitBreaker>) -> u32 {
        SPARES.with(|s| {
            s.shelves
                .iter()
                .find(|shelf| shelf.holds(Arc::as_ptr(cb)))
                .map_or(0, |shelf| shelf.count.get())
        })
    }

    #[test]
    fn a_given_handle_is_taken_again_without_a_clone() {
        std::thread::spawn(|| {
            let cb = breaker("spares-reuse");
            let first = take(&cb);
            assert_eq!(Arc::strong_count(&cb), 2);
            give(first);
            assert_eq!(shelved(&cb), 1);
            assert_eq!(Arc::strong_count(&cb), 2, "the shelf holds the count");
            for _ in 0..1_000 {
                let h = take(&cb);
                assert!(Arc::ptr_eq(&h, &cb));
                assert_eq!(shelved(&cb), 0);
                give(h);
            }
            assert_eq!(Arc::strong_count(&cb), 2);
            assert_eq!(shelved(&cb), 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_spare_is_one_strong_count_and_reaches_its_breaker() {
        std::thread::spawn(|| {
            let cb = breaker("spares-spare");
            let weak = Arc::downgrade(&cb);
            let spare = Spare::new(Arc::clone(&cb));
            assert_eq!(Arc::strong_count(&cb), 2);
            assert!(std::ptr::eq(&*spare, &*cb));
            assert_eq!(spare.name(), "spares-spare");
            let clone = spare.clone();
            assert_eq!(Arc::strong_count(&cb), 3, "the first clone is a clone");
            drop(clone);
            assert_eq!((shelved(&cb), Arc::strong_count(&cb)), (1, 3));
            let again = spare.clone();
            assert_eq!((shelved(&cb), Arc::strong_count(&cb)), (0, 3));
            assert!(std::ptr::eq(&*again, &*cb));
            drop(again);
            drop(spare);
            assert_eq!((shelved(&cb), Arc::strong_count(&cb)), (2, 3));
            give(cb);
            assert!(
                weak.upgrade().is_none(),
                "the last handle took the shelf along"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_last_handle_given_back_drops_the_breaker_with_the_shelf() {
        std::thread::spawn(|| {
            let cb = breaker("spares-last");
            let weak = Arc::downgrade(&cb);
            let handles: Vec<_> = (0..10).map(|_| take(&cb)).collect();
            for h in handles {
                give(h);
            }
            assert_eq!(shelved(&cb), 10);
            assert_eq!(Arc::strong_count(&cb), 11);
            give(cb);
            assert!(weak.upgrade().is_none(), "dropped at once");
            assert_eq!(SPARES.with(|s| s.shelves[0].count.get()), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_shelf_keeps_at_most_keep_counts() {
        std::thread::spawn(|| {
            let cb = breaker("spares-keep");
            let handles: Vec<_> = (0..KEEP + 10).map(|_| Arc::clone(&cb)).collect();
            for h in handles {
                give(h);
            }
            assert_eq!(shelved(&cb), KEEP);
            assert_eq!(Arc::strong_count(&cb), KEEP as usize + 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_fifth_breaker_evicts_a_shelf_and_its_counts_are_released() {
        std::thread::spawn(|| {
            let cbs: Vec<_> = (0..SHELVES + 1).map(|_| breaker("spares-evict")).collect();
            for cb in &cbs[..SHELVES] {
                give(Arc::clone(cb));
                give(Arc::clone(cb));
                assert_eq!(shelved(cb), 2);
            }
            give(Arc::clone(&cbs[SHELVES]));
            assert_eq!(shelved(&cbs[SHELVES]), 1);
            assert_eq!(shelved(&cbs[0]), 0, "the first shelf went");
            assert_eq!(Arc::strong_count(&cbs[0]), 1, "its counts released");
            for cb in &cbs[1..SHELVES] {
                assert_eq!(shelved(cb), 2);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_threads_spares_are_released_when_it_exits() {
        let cb = breaker("spares-exit");
        let weak: Weak<CircuitBreaker> = Arc::downgrade(&cb);
        let shared = Arc::clone(&cb);
        std::thread::spawn(move || {
            let h = take(&shared);
            give(h);
            give(Arc::clone(&shared));
            assert_eq!(shelved(&shared), 2);
        })
        .join()
        .unwrap();
        assert_eq!(Arc::strong_count(&cb), 1, "the thread's shelf was released");
        drop(cb);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn handles_given_back_on_other_threads_stay_counted() {
        let cb = breaker("spares-threads");
        let weak = Arc::downgrade(&cb);
        let (tx, rx) = std::sync::mpsc::channel::<Arc<CircuitBreaker>>();
        let taker = {
            let cb = Arc::clone(&cb);
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    tx.send(take(&cb)).unwrap();
                }
            })
        };
        let giver = std::thread::spawn(move || {
            for h in rx {
                give(h);
            }
        });
        taker.join().unwrap();
        giver.join().unwrap();
        assert_eq!(Arc::strong_count(&cb), 1);
        drop(cb);
        assert!(weak.upgrade().is_none());
    }
}
