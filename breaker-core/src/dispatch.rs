//! How events reach a breaker's listeners: the list, and how a dispatch
//! reads it.
//!
//! A call asks the flag word first (`flags.rs`): the union of every
//! listener's [`Hooks`] is there, so an event no listener declared costs
//! what it costs with no listener at all. An event some listener declared
//! walks the list, calling only the listeners that declared it, each under
//! its own `catch_unwind` (a panicking listener does not stop the others;
//! `catch_unwind` costs nothing until a listener panics, so one per
//! listener costs a walk no more than one around it).
//!
//! A list holds each listener as its own address and vtable (a `Callee`:
//! no `Arc` offset worked out per call), and keeps apart those that
//! declared the hot path's hooks, `before_call` and `success`, so that
//! their walks test nothing but the end of the list. The hot path's events
//! (`before_call` of a call that holds no trial place, `success` with
//! nothing to record) have nothing to undo when a listener panics, so
//! [`Listeners::tell`] calls a list's only listener straight away (with no
//! other listener left to run, its panic may continue at once), and hands
//! a longer walk to a function out of line that continues the first panic
//! itself: every way on is a tail call.
//!
//! The list is replaced whole on every edit. How a dispatch reads it:
//!
//! - **Kept lists** (a breaker's first [`KEPT_LISTS`] lists, which covers
//!   a breaker built with listeners, the admin router's and a few edits):
//!   every list is kept until the breaker is dropped, so the current one
//!   is read with one load of a pointer, with no reference count and no
//!   shared write. A removed listener is then dropped with the breaker.
//! - **Cached lists** (for good, from the edit that would keep one list
//!   too many): the list is an `Arc<List>` behind an `ArcSwap`. Reading it
//!   through the `ArcSwap` costs a few read-modify-writes (its debt
//!   protocol), so each thread keeps the lists it ran last in a small cache
//!   of its own ([`SLOTS`] slots, by address): a dispatch compares the
//!   breaker's current list address with its slot and, when they match,
//!   runs the list the slot holds. The slot's `Arc` keeps that list alive,
//!   so an equal address is that very list (no other list can live there
//!   meanwhile). A miss reads the `ArcSwap` once and keeps the list in the
//!   slot. During a dispatch the list is taken out of its slot, so a
//!   listener that calls through another breaker can never free the list
//!   being walked. A list a thread cached stays alive until that thread's
//!   slot is taken by another list, or the thread exits, so a listener
//!   removed then may be dropped late.
//!
//! Either way a dispatch runs the list current when it read it, and an
//! edit is seen by every dispatch that reads after the edit returned.

#[cfg(not(loom))]
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::flags::Flags;
use crate::listener::{Hooks, Listener};
use crate::recording::Panic;
use crate::sync::{AtomicPtr, AtomicU64, Ordering};

/// The lists a breaker keeps, its first ones, before its dispatches go
/// through the per-thread caches for good.
pub(crate) const KEPT_LISTS: usize = 16;

/// A listener as a walk calls it: the address of the listener itself
/// (inside its `Arc`, so no offset is worked out per call) and its vtable.
/// Only a [`List`] makes one, pointing into an `Arc` the list holds, and it
/// is only lent out with a borrow of that list.
struct Callee(NonNull<dyn Listener>);

impl Callee {
    fn of(listener: &Arc<dyn Listener>) -> Self {
        Callee(NonNull::from(&**listener))
    }

    #[inline(always)]
    fn get(&self) -> &dyn Listener {
        // SAFETY: a `Callee` lives in the `List` that made it from one of
        // its own `listeners`, which the list holds, never changes and
        // drops only with itself; `self` is borrowed from that list, so
        // the listener outlives the returned borrow. It is only read
        // through shared references (`Listener: Sync`). Exercised by
        // every dispatch: `tests/hooks.rs` (among others
        // `every_walk_finds_each_listener_where_its_arc_holds_it`, a
        // listener aligned past its `Arc`'s counts, on every kind of
        // walk), `tests/listeners.rs`, `dispatch::tests`.
        #[allow(unsafe_code)]
        unsafe {
            self.0.as_ref()
        }
    }
}

/// One listener and the hooks it declared (read once, when it was added).
struct Entry {
    callee: Callee,
    hooks: Hooks,
}

/// A breaker's listeners, in order, as one edit left them.
pub(crate) struct List {
    /// The listeners, in order: the list holds them.
    listeners: Box<[Arc<dyn Listener>]>,
    /// Each listener with its hooks, for the events walked with a test.
    entries: Box<[Entry]>,
    /// The listeners that declared `before_call`, in order: the hot path
    /// walks them with no test.
    before_call: Box<[Callee]>,
    /// The listeners that declared `success`, in order.
    success: Box<[Callee]>,
}

// SAFETY: `List` is `Send` and `Sync` as its `listeners` are
// (`Arc<dyn Listener>`, `Listener: Send + Sync`): every `Callee` points to
// one of them and is only read through a shared borrow of the list.
#[allow(unsafe_code)]
unsafe impl Send for List {}
// SAFETY: as for `Send` above.
#[allow(unsafe_code)]
unsafe impl Sync for List {}

impl List {
    fn new(listeners: Vec<Arc<dyn Listener>>) -> Self {
        let listeners = listeners.into_boxed_slice();
        let entries: Box<[Entry]> = listeners
            .iter()
            .map(|listener| Entry {
                hooks: listener.hooks(),
                callee: Callee::of(listener),
            })
            .collect();
        let declaring = |hook: Hooks| -> Box<[Callee]> {
            listeners
                .iter()
                .zip(&*entries)
                .filter(|(_, entry)| entry.hooks.intersects(hook))
                .map(|(listener, _)| Callee::of(listener))
                .collect()
        };
        List {
            before_call: declaring(Hooks::BEFORE_CALL),
            success: declaring(Hooks::SUCCESS),
            entries,
            listeners,
        }
    }

    fn hooks(&self) -> Hooks {
        self.entries
            .iter()
            .fold(Hooks::NONE, |all, entry| all | entry.hooks)
    }

    /// The listeners that declared `hook` when the list keeps them apart
    /// (the hot path's hooks, `before_call` and `success`, each alone).
    #[inline(always)]
    fn apart(&self, hook: Hooks) -> Option<&[Callee]> {
        if hook == Hooks::BEFORE_CALL {
            Some(&self.before_call)
        } else if hook == Hooks::SUCCESS {
            Some(&self.success)
        } else {
            None
        }
    }

    /// Runs `event` on every listener that declared one of `hook`, in
    /// order; a panicking listener does not stop the others, and the first
    /// panic is handed back.
    #[inline(always)]
    fn each(&self, hook: Hooks, event: &mut impl FnMut(&dyn Listener)) -> Result<(), Panic> {
        match self.apart(hook) {
            Some(callees) => walk(callees, event),
            None => walk_testing(&self.entries, hook, event),
        }
    }

    /// [`Listeners::tell`]'s walk of a kept list out of line (so that a
    /// caller calling one listener straight away needs no registers of its
    /// own): the first panic continues once all have run.
    #[inline(never)]
    fn tell_out_of_line<const HOOK: u32>(&self, mut event: impl FnMut(&dyn Listener)) {
        if let Err(panic) = self.each(Hooks::from_bits(HOOK), &mut event) {
            resume_unwind(panic);
        }
    }

    /// Bytes the list takes on the heap, in its `Arc` (not the listeners).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        use std::mem::{size_of, size_of_val};
        2 * size_of::<usize>()
            + size_of::<List>()
            + size_of_val(&*self.listeners)
            + size_of_val(&*self.entries)
            + size_of_val(&*self.before_call)
            + size_of_val(&*self.success)
    }
}

/// Runs `event` on each of `callees`, in order, each under its own
/// `catch_unwind` (which costs nothing until one panics); the first panic
/// is handed back once all have run.
#[inline(always)]
fn walk(callees: &[Callee], event: &mut impl FnMut(&dyn Listener)) -> Result<(), Panic> {
    let mut rest = callees;
    while let [callee, after @ ..] = rest {
        rest = after;
        let listener = callee.get();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| event(listener))) {
            return Err(walk_after_panic(rest.iter(), event, panic));
        }
    }
    Ok(())
}

/// [`walk`] over the entries that declared one of `hook`.
#[inline(always)]
fn walk_testing(
    entries: &[Entry],
    hook: Hooks,
    event: &mut impl FnMut(&dyn Listener),
) -> Result<(), Panic> {
    let mut rest = entries;
    while let [entry, after @ ..] = rest {
        rest = after;
        if entry.hooks.intersects(hook) {
            let listener = entry.callee.get();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| event(listener))) {
                let rest = rest.iter().filter(|e| e.hooks.intersects(hook));
                return Err(walk_after_panic(rest.map(|e| &e.callee), event, panic));
            }
        }
    }
    Ok(())
}

/// The rest of a walk once a listener panicked: runs `event` on `rest`;
/// `first`, the first panic. (Later panics are dropped.)
#[cold]
#[inline(never)]
fn walk_after_panic<'a>(
    rest: impl Iterator<Item = &'a Callee>,
    event: &mut impl FnMut(&dyn Listener),
    first: Panic,
) -> Panic {
    for callee in rest {
        let listener = callee.get();
        let _later = catch_unwind(AssertUnwindSafe(|| event(listener)));
    }
    first
}

/// A breaker's listeners: the list, as the kept lists' current one and
/// behind an `ArcSwap` with its address for the per-thread caches.
pub(crate) struct Listeners {
    /// The current list while lists are kept; null from the edit that
    /// would have kept one too many.
    kept_current: AtomicPtr<List>,
    /// Every list made while lists are kept, dropped with the breaker.
    kept: Mutex<Vec<Arc<List>>>,
    /// The address of the list in `list`, for the per-thread caches.
    address: AtomicU64,
    /// The current list.
    list: ArcSwap<List>,
}

impl Listeners {
    /// The list of `listeners`, its hooks noted in `flags`.
    pub(crate) fn new(listeners: Vec<Arc<dyn Listener>>, flags: &Flags) -> Self {
        let list = Arc::new(List::new(listeners));
        flags.set_hooks(list.hooks());
        Listeners {
            kept_current: AtomicPtr::new(Arc::as_ptr(&list).cast_mut()),
            address: AtomicU64::new(address(&list)),
            kept: Mutex::new(vec![Arc::clone(&list)]),
            list: ArcSwap::new(list),
        }
    }

    /// The listeners, in order.
    pub(crate) fn to_vec(&self) -> Vec<Arc<dyn Listener>> {
        self.list.load().listeners.to_vec()
    }

    /// Replaces the list with `edit` of it, its hooks noted in `flags`. The
    /// caller holds the breaker's edit lock, so edits never race each
    /// other.
    pub(crate) fn edit<R>(
        &self,
        flags: &Flags,
        edit: impl FnOnce(&mut Vec<Arc<dyn Listener>>) -> R,
    ) -> R {
        let mut listeners = self.to_vec();
        let result = edit(&mut listeners);
        let list = Arc::new(List::new(listeners));
        let hooks = list.hooks();
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let keeping = !self.kept_current.load(Ordering::Relaxed).is_null();
        let new_address = address(&list);
        let old = self.list.swap(Arc::clone(&list));
        // The address moves on before the old list can be freed: a cached
        // list at the old address is then never taken for this breaker's.
        self.address.store(new_address, Ordering::Release);
        if keeping && kept.len() < KEPT_LISTS {
            self.kept_current
                .store(Arc::as_ptr(&list).cast_mut(), Ordering::Release);
            kept.push(list);
        } else {
            // For good: every dispatch from now on reads `list`.
            self.kept_current
                .store(std::ptr::null_mut(), Ordering::Release);
        }
        drop(kept);
        // The hooks after the list: a dispatch told of a hook finds the
        // listener that declared it.
        flags.set_hooks(hooks);
        drop(old);
        result
    }

    /// Bytes the lists take on the heap: every kept list and the `Vec`
    /// holding them, and the current list when it is not kept (not the
    /// listeners themselves, nor lists only a thread's cache still holds).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.list.load();
        let current_kept = kept.iter().any(|list| Arc::ptr_eq(list, &current));
        kept.capacity() * std::mem::size_of::<Arc<List>>()
            + kept.iter().map(|list| list.bytes()).sum::<usize>()
            + if current_kept { 0 } else { current.bytes() }
    }

    /// Whether dispatches read the kept lists (the breaker has made at
    /// most [`KEPT_LISTS`] lists).
    #[cfg(test)]
    pub(crate) fn keeps_lists(&self) -> bool {
        !self.kept_current.load(Ordering::Relaxed).is_null()
    }

    /// Runs `event` on every listener that declared one of `hook`, in
    /// order; the first panic among them is handed back once all have run.
    /// Out of line: for the paths that are not the hot one.
    #[inline(never)]
    pub(crate) fn each(&self, hook: Hooks, event: impl FnMut(&dyn Listener)) -> Result<(), Panic> {
        self.each_here(hook, event)
    }

    /// [`each`](Self::each), inlined into the caller (a cold function of
    /// the hot path's).
    #[inline(always)]
    pub(crate) fn each_here(
        &self,
        hook: Hooks,
        mut event: impl FnMut(&dyn Listener),
    ) -> Result<(), Panic> {
        match self.kept() {
            Some(list) => list.each(hook, &mut event),
            None => self.each_shared(hook, event),
        }
    }

    /// Tells every listener that declared `HOOK` (a hook's
    /// [`bits`](Hooks::bits), so the walk out of line knows it too), for a
    /// caller that has nothing to undo when one panics: the first panic
    /// continues once all have run. The hot path's: a kept list of one
    /// listener calls it straight away (its panic continues at once: there
    /// is no other to run).
    #[inline(always)]
    pub(crate) fn tell<const HOOK: u32>(&self, mut event: impl FnMut(&dyn Listener)) {
        // Every way on is a tail call: the caller's frame needs nothing.
        match self.kept() {
            Some(list) => match list.apart(Hooks::from_bits(HOOK)) {
                Some([only]) => event(only.get()),
                _ => list.tell_out_of_line::<HOOK>(event),
            },
            None => self.tell_shared::<HOOK>(event),
        }
    }

    /// The current list, while lists are kept: one load.
    #[inline(always)]
    fn kept(&self) -> Option<&List> {
        let kept = self.kept_current.load(Ordering::Acquire);
        // SAFETY: `kept` is null or was taken with `Arc::as_ptr` from an
        // `Arc<List>` that `kept` holds, and `kept` only grows while the
        // pointer is not null and is dropped with `self`: the list
        // outlives this borrow of `self`. A list is never written after it
        // is made (it is read through shared references only). Exercised
        // by `dispatch::tests::a_replaced_kept_list_is_walked_whole` and by
        // `tests/hooks.rs`, which edits lists while other threads call.
        #[allow(unsafe_code)]
        unsafe {
            kept.as_ref()
        }
    }

    /// [`Listeners::tell`] once the breaker no longer keeps its lists.
    #[cold]
    #[inline(never)]
    fn tell_shared<const HOOK: u32>(&self, event: impl FnMut(&dyn Listener)) {
        if let Err(panic) = self.each_shared_here(Hooks::from_bits(HOOK), event) {
            resume_unwind(panic);
        }
    }

    /// A dispatch once the breaker no longer keeps its lists.
    #[cold]
    #[inline(never)]
    fn each_shared(&self, hook: Hooks, event: impl FnMut(&dyn Listener)) -> Result<(), Panic> {
        self.each_shared_here(hook, event)
    }

    #[inline(always)]
    fn each_shared_here(&self, hook: Hooks, event: impl FnMut(&dyn Listener)) -> Result<(), Panic> {
        // Loom's threads share one OS thread, whose cache would outlive a
        // model's atomics: read the list on its own.
        #[cfg(loom)]
        return self.list.load().each(hook, &mut { event });
        #[cfg(not(loom))]
        self.each_cached(hook, event)
    }

    #[cfg(not(loom))]
    #[inline(always)]
    fn each_cached(&self, hook: Hooks, mut event: impl FnMut(&dyn Listener)) -> Result<(), Panic> {
        let current = self.address.load(Ordering::Acquire);
        let slot = slot_of(current);
        let cached = CACHE.try_with(|cache| {
            // Taken out while it is walked: a listener calling through
            // another breaker finds the slot empty and cannot free it.
            let list = match cache[slot].take() {
                Some(list) if address(&list) == current => list,
                _evicted => self.list.load_full(),
            };
            let told = list.each(hook, &mut event);
            // What a nested dispatch put there meanwhile is dropped.
            cache[slot].set(Some(list));
            told
        });
        match cached {
            Ok(told) => told,
            // This thread's cache is gone (a call from a thread-local's
            // destructor): read the list on its own.
            Err(_) => self.list.load().each(hook, &mut event),
        }
    }
}

fn address(list: &Arc<List>) -> u64 {
    Arc::as_ptr(list) as usize as u64
}

/// Lists a thread keeps; a breaker's list has one slot, by its address.
#[cfg(not(loom))]
const SLOTS: usize = 8;

#[cfg(not(loom))]
fn slot_of(address: u64) -> usize {
    // Lists are heap blocks at least 16 bytes apart: mix the bits above.
    ((address >> 4) ^ (address >> 9)) as usize % SLOTS
}

#[cfg(not(loom))]
thread_local! {
    static CACHE: [Cell<Option<Arc<List>>>; SLOTS] = const { [const { Cell::new(None) }; SLOTS] };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::CircuitBreaker;
    use std::sync::atomic::AtomicUsize;

    /// Counts its calls.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Listener for Count {
        fn success(&self, _: &CircuitBreaker) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn add(listeners: &Listeners, flags: &Flags) -> Arc<Count> {
        let count = Arc::new(Count::default());
        let listener: Arc<dyn Listener> = count.clone();
        listeners.edit(flags, |list| list.push(listener));
        count
    }

    fn tell(listeners: &Listeners) {
        let cb = CircuitBreaker::new("dispatch-unit");
        listeners.each(Hooks::SUCCESS, |l| l.success(&cb)).unwrap();
    }

    #[test]
    fn a_replaced_kept_list_is_walked_whole() {
        let flags = Flags::new();
        let listeners = Listeners::new(Vec::new(), &flags);
        let first = add(&listeners, &flags);
        // The list being walked is replaced by its own listener's edit:
        // the walk goes on over the list it started (kept, so alive).
        let cb = CircuitBreaker::new("dispatch-unit");
        let mut seen = 0;
        listeners
            .each(Hooks::SUCCESS, |l| {
                seen += 1;
                l.success(&cb);
                let _ = add(&listeners, &flags);
            })
            .unwrap();
        assert_eq!((seen, first.0.load(Ordering::Relaxed)), (1, 1));
        tell(&listeners);
        assert_eq!(first.0.load(Ordering::Relaxed), 2);
        assert!(listeners.keeps_lists());
    }

    #[test]
    fn the_list_after_the_kept_ones_is_read_through_the_caches() {
        let flags = Flags::new();
        let listeners = Listeners::new(Vec::new(), &flags);
        let counts: Vec<_> = (1..KEPT_LISTS).map(|_| add(&listeners, &flags)).collect();
        assert!(listeners.keeps_lists(), "{KEPT_LISTS} lists are kept");
        tell(&listeners);
        let last = add(&listeners, &flags);
        assert!(!listeners.keeps_lists());
        tell(&listeners);
        assert!(counts.iter().all(|c| c.0.load(Ordering::Relaxed) == 2));
        assert_eq!(last.0.load(Ordering::Relaxed), 1);
        assert!(flags.path().hears(Hooks::SUCCESS));
        // And for good: an edit back to few listeners keeps nothing.
        listeners.edit(&flags, Vec::clear);
        assert!(!listeners.keeps_lists() && !flags.path().hears(Hooks::ALL));
        tell(&listeners);
        assert_eq!(last.0.load(Ordering::Relaxed), 1);
    }
}
