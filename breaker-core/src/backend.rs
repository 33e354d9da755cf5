//! Where a breaker's state lives: the memory storage, matched directly so
//! that its hot path inlines to one atomic load, or any other storage
//! through the [`Storage`] trait. Every question the engine asks of its
//! storage goes through here, so nothing else matches on the two kinds.

use std::any::Any;
use std::time::Duration;

use crate::announce::Announcer;
use crate::clock::ClockImpl;
use crate::error::ConfigError;
use crate::memory::MemoryStorage;
use crate::recording::Panic;
use crate::state::{Backoff, Limits, Op, Policy, Snapshot, State};
use crate::storage::{Applied, ApplyFuture, Binding, Storage};

/// What [`Backend::glance`] saw.
pub(crate) enum Glance {
    /// Closed, under this generation.
    Closed(u64),
    /// Open, for this many more nanoseconds.
    Open(u64),
    /// A snapshot must decide.
    Unknown,
}

// The memory storage is kept inline, not boxed: its hot path is one load
// from the breaker's shared state, with no pointer to follow.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    /// The default storage, and the announcer that reports its transitions
    /// in the order they were committed (this process makes all of them).
    Memory(MemoryStorage, Announcer),
    /// Any other storage; it orders its reports itself
    /// ([`Storage::announce`]).
    Custom(Box<dyn Storage>),
}

impl Backend {
    /// The backend for `storage`: the memory storage kept as itself, any
    /// other boxed.
    pub(crate) fn new<S: Storage>(storage: S) -> Self {
        let mut slot = Some(storage);
        match (&mut slot as &mut dyn Any).downcast_mut::<Option<MemoryStorage>>() {
            Some(memory) => Backend::memory(memory.take().unwrap_or_default()),
            None => match slot {
                Some(storage) => Backend::Custom(Box::new(storage)),
                None => Backend::memory(MemoryStorage::new()),
            },
        }
    }

    pub(crate) fn memory(storage: MemoryStorage) -> Self {
        let now = storage.load();
        let announcer = Announcer::new(now.generation, now.state);
        Backend::Memory(storage, announcer)
    }

    /// Whether this is the memory storage, which applies operations at once.
    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Backend::Memory(..))
    }

    /// Whether the storage keeps the rate policies' window
    /// ([`Storage::keeps_window`]).
    pub(crate) fn keeps_window(&self) -> bool {
        match self {
            Backend::Memory(..) => false,
            Backend::Custom(s) => s.keeps_window(),
        }
    }

    /// The storage's window, if it keeps one ([`Storage::window`]).
    pub(crate) fn window(&self) -> Option<crate::state::Totals> {
        match self {
            Backend::Memory(..) => None,
            Backend::Custom(s) => s.window(),
        }
    }

    /// Hands a custom storage its [`Binding`].
    pub(crate) fn bind(&self, binding: Binding) {
        if let Backend::Custom(storage) = self {
            storage.bind(binding);
        }
    }

    /// The full state in one consistent read.
    pub(crate) fn load(&self) -> Snapshot {
        match self {
            Backend::Memory(m, _) => m.load(),
            Backend::Custom(s) => s.load(),
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        match self {
            Backend::Memory(m, _) => m.state(),
            Backend::Custom(s) => s.load().state,
        }
    }

    /// The closed generation, told cheaply: the memory storage's word (the
    /// hot path, one load), or a custom storage's
    /// [`closed_hint`](crate::storage::Storage::closed_hint) (the Redis
    /// storage's view, one load behind a call), so that a closed circuit
    /// on either admits without `decide` reading the policy.
    #[inline(always)]
    pub(crate) fn closed_generation(&self) -> Option<u64> {
        match self {
            Backend::Memory(m, _) => m.closed_generation(),
            Backend::Custom(s) => s.closed_hint().map(|hint| hint.generation),
        }
    }

    /// What admission can tell without a whole snapshot: a custom storage's
    /// closed state (from its [`Storage::closed_hint`]), or an open circuit
    /// on the memory storage far from its deadline (on the coarse clock).
    #[inline(always)]
    pub(crate) fn glance(
        &self,
        timeout_ns: u64,
        backoff: Option<&Backoff>,
        clock: &ClockImpl,
    ) -> Glance {
        match self {
            Backend::Custom(s) => match s.closed_hint() {
                Some(hint) => Glance::Closed(hint.generation),
                None => Glance::Unknown,
            },
            Backend::Memory(m, _) => match m.open_rejection(timeout_ns, backoff, clock) {
                Some(retry_nanos) => Glance::Open(retry_nanos),
                None => Glance::Unknown,
            },
        }
    }

    /// Whether a success of a call admitted (not as a trial) under
    /// `generation` has anything to record: not when the circuit is closed
    /// with no failures counted, nor when the generation has moved on.
    #[inline(always)]
    pub(crate) fn success_to_record(&self, generation: u64) -> bool {
        match self {
            Backend::Memory(m, _) => m.success_to_record(generation),
            Backend::Custom(s) => match s.closed_hint() {
                Some(hint) => hint.failures && hint.generation == generation,
                None => {
                    let snap = s.load();
                    snap.state == State::Closed
                        && snap.fail_counter != 0
                        && snap.generation == generation
                }
            },
        }
    }

    /// Applies `op`; `now` reads the time, which the memory storage does
    /// only when the outcome depends on it.
    #[inline(always)]
    pub(crate) fn apply(
        &self,
        op: Op,
        limits: Limits<'_>,
        now: impl FnOnce() -> Duration,
    ) -> Applied {
        match self {
            Backend::Memory(m, _) => m.apply_timed(op, &limits, Some(now)),
            Backend::Custom(s) => s.apply(
                op,
                &Limits {
                    now: now(),
                    ..limits
                },
            ),
        }
    }

    /// A custom storage's future of `op` (whose `limits` carry the time);
    /// `None` on the memory storage, which applies at once.
    pub(crate) fn apply_async(&self, op: Op, limits: Limits<'_>) -> Option<ApplyFuture<'_>> {
        match self {
            Backend::Custom(s) => Some(s.apply_async(op, limits)),
            Backend::Memory(..) => None,
        }
    }

    /// Whether this storage can apply `policy`: the memory storage applies
    /// every one; a custom storage says ([`Storage::check_policy`]).
    pub(crate) fn check_policy(&self, policy: &Policy) -> Result<(), ConfigError> {
        match self {
            Backend::Memory(..) => Ok(()),
            Backend::Custom(s) => s.check_policy(policy),
        }
    }

    /// Reports, through `tell`, the transition `applied` made (and maybe
    /// others queued with it, in their order); the first panic of `tell`.
    #[inline(always)]
    pub(crate) fn announce(
        &self,
        applied: &Applied,
        mut tell: impl FnMut(State, State) -> Result<(), Panic>,
    ) -> Result<(), Panic> {
        match self {
            // No new generation (a counted failure, say): nothing to report.
            Backend::Memory(..) if applied.before.generation == applied.after.generation => Ok(()),
            Backend::Memory(_, announcer) => announcer.announce(applied, tell),
            Backend::Custom(storage) => {
                let mut first_panic = None;
                storage.announce(applied, &mut |old, new| {
                    if let Err(panic) = tell(old, new) {
                        first_panic.get_or_insert(panic);
                    }
                });
                first_panic.map_or(Ok(()), Err)
            }
        }
    }
}
