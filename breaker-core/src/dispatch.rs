//! How events reach a breaker's listeners: the list, which hooks it
//! listens to, and a per-thread cache that reads it without touching a
//! shared reference count.
//!
//! A call asks [`Listeners::hears`] first: one relaxed-cost load of the
//! union of every listener's [`Hooks`], so an event no listener declared
//! costs what it costs with no listener at all. An event some listener
//! declared walks the list, calling only the listeners that declared it.
//!
//! The list is an `Arc<List>` behind an `ArcSwap`, replaced whole on every
//! edit. Reading it through the `ArcSwap` costs a few read-modify-writes
//! (its debt protocol), so each thread keeps the lists it ran last in a
//! small cache of its own ([`SLOTS`] slots, by address): a call compares
//! the breaker's current list address with its slot and, when they match,
//! runs the listeners of the list the slot holds. The slot's `Arc` keeps
//! that list alive, so an equal address is that very list (no other list
//! can live there meanwhile). A miss reads the `ArcSwap` once and keeps
//! the list in the slot. During a dispatch the list is taken out of its
//! slot, so a listener that calls through another breaker can never free
//! the list being walked.
//!
//! The price: a list a thread cached stays alive until that thread's slot
//! is taken by another list, or the thread exits, so a removed listener
//! (or one of a dropped breaker) may be dropped late.

#[cfg(not(loom))]
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::listener::{Hooks, Listener};
use crate::recording::Panic;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// One listener and the hooks it declared (read once, when it was added).
struct Entry {
    listener: Arc<dyn Listener>,
    hooks: Hooks,
}

/// A breaker's listeners, in order, as one edit left them.
pub(crate) struct List {
    entries: Box<[Entry]>,
}

impl List {
    fn new(listeners: Vec<Arc<dyn Listener>>) -> Self {
        let entries = listeners
            .into_iter()
            .map(|listener| Entry {
                hooks: listener.hooks(),
                listener,
            })
            .collect();
        List { entries }
    }

    fn hooks(&self) -> Hooks {
        self.entries
            .iter()
            .fold(Hooks::NONE, |all, entry| all | entry.hooks)
    }

    /// Runs `event` on every listener that declared one of `hook`; a
    /// panicking listener does not stop the others, and the first panic is
    /// handed back.
    #[inline(always)]
    fn each(&self, hook: Hooks, event: &mut impl FnMut(&dyn Listener)) -> Result<(), Panic> {
        let mut first_panic = None;
        for entry in self.entries.iter() {
            if !entry.hooks.intersects(hook) {
                continue;
            }
            let listener = &*entry.listener;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| event(listener))) {
                first_panic.get_or_insert(panic);
            }
        }
        first_panic.map_or(Ok(()), Err)
    }
}

/// A breaker's listeners: the list, its address and the union of its
/// hooks, for the hot path to read without the list.
pub(crate) struct Listeners {
    /// The union of every listener's hooks: what the hot path reads.
    hooks: AtomicU32,
    /// The address of the list in `list`, for the per-thread caches.
    address: AtomicU64,
    list: ArcSwap<List>,
}

impl Listeners {
    pub(crate) fn new(listeners: Vec<Arc<dyn Listener>>) -> Self {
        let list = Arc::new(List::new(listeners));
        Listeners {
            hooks: AtomicU32::new(list.hooks().bits()),
            address: AtomicU64::new(address(&list)),
            list: ArcSwap::new(list),
        }
    }

    /// Whether some listener declared one of `hook`.
    #[inline(always)]
    pub(crate) fn hears(&self, hook: Hooks) -> bool {
        self.hooks.load(Ordering::Acquire) & hook.bits() != 0
    }

    /// The listeners, in order.
    pub(crate) fn to_vec(&self) -> Vec<Arc<dyn Listener>> {
        self.list
            .load()
            .entries
            .iter()
            .map(|entry| Arc::clone(&entry.listener))
            .collect()
    }

    /// Replaces the list with `edit` of it. The caller holds the breaker's
    /// edit lock, so edits never race each other.
    pub(crate) fn edit<R>(&self, edit: impl FnOnce(&mut Vec<Arc<dyn Listener>>) -> R) -> R {
        let mut listeners = self.to_vec();
        let result = edit(&mut listeners);
        let list = Arc::new(List::new(listeners));
        let hooks = list.hooks();
        let new_address = address(&list);
        let old = self.list.swap(list);
        // The address moves on before the old list can be freed: a cached
        // list at the old address is then never taken for this breaker's.
        self.address.store(new_address, Ordering::Release);
        self.hooks.store(hooks.bits(), Ordering::Release);
        drop(old);
        result
    }

    /// Runs `event` on every listener that declared one of `hook`, in
    /// order; the first panic among them is handed back once all have run.
    #[inline]
    pub(crate) fn each(&self, hook: Hooks, event: impl FnMut(&dyn Listener)) -> Result<(), Panic> {
        if !self.hears(hook) {
            return Ok(());
        }
        self.each_slow(hook, event)
    }

    #[inline(never)]
    fn each_slow(&self, hook: Hooks, event: impl FnMut(&dyn Listener)) -> Result<(), Panic> {
        self.each_here(hook, event)
    }

    /// [`each`](Self::each) once [`hears`](Self::hears) said yes, inlined
    /// into the caller (a cold function of the hot path's).
    #[inline(always)]
    pub(crate) fn each_here(
        &self,
        hook: Hooks,
        event: impl FnMut(&dyn Listener),
    ) -> Result<(), Panic> {
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
