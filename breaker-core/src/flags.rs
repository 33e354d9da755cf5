//! The one word a call reads to choose its path: which hooks the listeners
//! declared (`dispatch.rs`), whether calls are inspected (`inspect.rs`),
//! and whether a rate policy's window records successes (`rate.rs`).
//!
//! A call loads the word once, when it starts, and keeps what it read
//! ([`Path`]) to the end: a breaker with none of them pays one load and
//! a few register tests for all three. A change made while a call runs
//! (a listener added, a window started) is seen by the calls that start
//! after it.

use crate::listener::Hooks;
use crate::sync::{AtomicU32, Ordering};

/// The low bits: the union of the listeners' hooks (a listener declaring
/// [`Hooks::ALL`] sets them all, those of hooks added later included).
const HOOK_BITS: u32 = 0xFFFF;
/// Calls take the inspected path (`fail_if`, or timed).
const INSPECTED: u32 = 1 << 16;
/// A window records closed-state successes.
const WINDOWED: u32 = 1 << 17;

// Every named hook fits below the flags of the other owners.
const _: () = assert!(Hooks::NAMED.bits() & !HOOK_BITS == 0);

/// A breaker's flag word.
pub(crate) struct Flags {
    word: AtomicU32,
}

impl Flags {
    pub(crate) fn new() -> Self {
        Flags {
            word: AtomicU32::new(0),
        }
    }

    /// What a call starting now reads.
    #[inline(always)]
    pub(crate) fn path(&self) -> Path {
        Path(self.word.load(Ordering::Acquire))
    }

    /// Notes the union of the listeners' hooks, once the list they are in
    /// is the one a dispatch reads.
    pub(crate) fn set_hooks(&self, hooks: Hooks) {
        let hooks = hooks.bits() & HOOK_BITS;
        let _always_some = self
            .word
            .fetch_update(Ordering::Release, Ordering::Relaxed, |word| {
                Some(word & !HOOK_BITS | hooks)
            });
    }

    /// Notes whether calls take the inspected path.
    pub(crate) fn set_inspected(&self, on: bool) {
        self.set(INSPECTED, on);
    }

    /// Notes that a window records closed-state successes, once the window
    /// is the one [`Windows::get`](crate::rate::Windows::get) reads (a
    /// breaker's window, once started, is never taken away).
    pub(crate) fn set_windowed(&self) {
        self.set(WINDOWED, true);
    }

    fn set(&self, flag: u32, on: bool) {
        match on {
            true => self.word.fetch_or(flag, Ordering::Release),
            false => self.word.fetch_and(!flag, Ordering::Release),
        };
    }
}

/// The flag word as a call read it when it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path(u32);

impl Path {
    /// Whether some listener declared one of `hook`.
    #[inline(always)]
    pub(crate) fn hears(self, hook: Hooks) -> bool {
        self.0 & hook.bits() & HOOK_BITS != 0
    }

    /// Whether calls take the inspected path.
    #[inline(always)]
    pub(crate) fn inspected(self) -> bool {
        self.0 & INSPECTED != 0
    }

    /// Whether a window records closed-state successes.
    #[inline(always)]
    pub(crate) fn windowed(self) -> bool {
        self.0 & WINDOWED != 0
    }

    /// This path, windowed as `now` (the word read again) is: a rate policy
    /// turned on while a call ran counts its success, as it counts a
    /// failure (which reads the windows when it is recorded). A window is
    /// never taken away, so `now` is windowed whenever this path is, and
    /// the bit is tested on `now` alone.
    #[inline(always)]
    pub(crate) fn windowed_by(self, now: Path) -> Path {
        Path(self.0 & !WINDOWED | now.0 & WINDOWED)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn each_owner_sets_only_its_own_bits() {
        let flags = Flags::new();
        assert!(!flags.path().hears(Hooks::ALL));
        flags.set_inspected(true);
        flags.set_windowed();
        flags.set_hooks(Hooks::ALL);
        let path = flags.path();
        assert!(path.inspected() && path.windowed() && path.hears(Hooks::SUCCESS));
        // A listener declaring every hook sets no other owner's bit ...
        flags.set_inspected(false);
        assert!(!flags.path().inspected());
        // ... and a new list's hooks replace the old ones, nothing else.
        flags.set_hooks(Hooks::REJECTED);
        let path = flags.path();
        assert!(path.hears(Hooks::REJECTED) && !path.hears(Hooks::SUCCESS));
        assert!(path.windowed() && !path.inspected());
        flags.set_hooks(Hooks::NONE);
        assert!(!flags.path().hears(Hooks::ALL) && flags.path().windowed());
    }
}
