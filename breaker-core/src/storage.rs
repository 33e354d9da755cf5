//! What a [`Storage`] implementer needs: the trait, the snapshot and
//! operations it stores and applies, and [`step`], the pure transition
//! function every storage applies atomically.
//!
//! Applications need none of it: the default [`MemoryStorage`](crate::MemoryStorage)
//! and `RedisStorage` (feature `redis`) are ready to use.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::breaker::Shared;
use crate::clock::ClockImpl;
use crate::state::State;
pub use crate::state::{
    step, trips, Backoff, Limits, Op, Outcome, Policy, RatePolicy, Snapshot, Totals, WindowShape,
    MAX_FAIL_MAX, MAX_HALF_OPEN_CALLS, MAX_REOPENS, MAX_SUCCESS_THRESHOLD,
};

/// The result of applying one [`Op`]: the snapshot it saw, the one it left,
/// and what it did.
///
/// `before` and `after` are one atomic step: when they differ in state, the
/// call that made the step reports the transition to the breaker's listeners
/// (through [`Storage::announce`]), so each transition is reported once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The state the operation was applied to.
    pub before: Snapshot,
    /// The state it left (equal to `before` when nothing changed).
    pub after: Snapshot,
    /// What it did.
    pub outcome: Outcome,
}

/// What [`Storage::closed_hint`] knows cheaply of a closed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosedHint {
    /// The generation of the closed state, as [`Snapshot::generation`].
    pub generation: u64,
    /// Whether failures are counted (`fail_counter > 0`): a success then has
    /// a count to reset.
    pub failures: bool,
}

/// A boxed future of an [`Applied`], returned by [`Storage::apply_async`].
pub type ApplyFuture<'a> = Pin<Box<dyn Future<Output = Applied> + Send + 'a>>;

crate::forward::trait_with_forwarding! {
    /// Where a breaker keeps its state: in this process ([`MemoryStorage`](crate::MemoryStorage)), or
    /// somewhere shared by many processes.
    ///
    /// A breaker never reads or writes fields one by one. It asks for a
    /// [`Snapshot`] with [`load`](Storage::load) and changes state only through
    /// [`apply`](Storage::apply), which must apply
    /// [`step`] *atomically*: as one compare-and-swap,
    /// one transaction, or one server-side script. That is what makes counters
    /// exact and every transition happen once, however many callers race.
    ///
    /// # Contract
    ///
    /// - `load` is on every call's path: it must be cheap and must not do I/O. A
    ///   remote storage returns its local view (kept current in the background)
    ///   and states how stale it can be.
    /// - `apply` runs only off the closed-state success path: for failures, for
    ///   the first success after failures, for half-open trials and for manual
    ///   transitions. It may block for I/O, up to a timeout the storage documents.
    /// - `apply_async` is what `call_async` uses; its default runs `apply`. A
    ///   storage that does I/O overrides it so no executor thread blocks. A
    ///   call's result is handed over once: if the returned future is dropped
    ///   before it completes (the caller's future was dropped), the operation
    ///   should still take effect, since the breaker sends no cancel after it.
    /// - Neither may panic. A storage that cannot reach its backend decides from
    ///   a fallback snapshot and still returns an [`Applied`].
    /// - [`announce`](Storage::announce) is how the breaker reports the
    ///   transitions its calls make; its default reports each one at once. A
    ///   storage that also reports transitions itself (through
    ///   [`Binding::notify_transition`]) overrides it to put the two in one
    ///   order. A storage that wraps another forwards it, as it forwards
    ///   `apply`.
    ///
    /// # Example
    ///
    /// A storage that logs each change and keeps the state under a mutex (the
    /// default [`MemoryStorage`](crate::MemoryStorage) is lock-free; this shows the contract):
    ///
    /// ```
    /// use breaker::storage::{step, Applied, Limits, Op, Snapshot, Storage};
    /// use breaker::CircuitBreaker;
    /// use std::sync::Mutex;
    ///
    /// #[derive(Default)]
    /// struct Logged(Mutex<Snapshot>);
    ///
    /// impl Storage for Logged {
    ///     fn load(&self) -> Snapshot {
    ///         *self.0.lock().unwrap()
    ///     }
    ///     fn apply(&self, op: Op, limits: &Limits) -> Applied {
    ///         let mut current = self.0.lock().unwrap();
    ///         let before = *current;
    ///         let (after, outcome) = step(&before, op, limits);
    ///         if after.state != before.state {
    ///             println!("{} -> {}", before.state, after.state);
    ///         }
    ///         *current = after;
    ///         Applied { before, after, outcome }
    ///     }
    /// }
    ///
    /// let cb = CircuitBreaker::builder("logged").fail_max(1).storage(Logged::default()).build();
    /// let _ = cb.call(|| Err::<(), _>("boom"));
    /// assert!(cb.call(|| Ok::<_, &str>(())).unwrap_err().is_open());
    /// ```
    pub trait Storage: Send + Sync + 'static {
        /// The current state as this process knows it, without I/O.
        fn load(&self) -> Snapshot;

        /// Applies `op` atomically, as [`step`] says.
        fn apply(&self, op: Op, limits: &Limits) -> Applied;

        /// Applies `op` without blocking the calling task; defaults to `apply`.
        fn apply_async(&self, op: Op, limits: Limits<'_>) -> ApplyFuture<'_> {
            let applied = self.apply(op, &limits);
            Box::pin(std::future::ready(applied))
        }

        /// Whether this storage applies `policy` (several half-open trials,
        /// a growing backoff): the builder and the setters ask before
        /// taking one, so that a policy is never silently ignored. The
        /// default says yes: right for a storage that keeps every field of
        /// [`Snapshot`] and applies [`step`]. One that keeps fewer returns
        /// [`ConfigError::Unsupported`](crate::ConfigError::Unsupported).
        fn check_policy(&self, policy: &Policy) -> Result<(), crate::ConfigError> {
            let _ = policy;
            Ok(())
        }

        /// Whether this storage keeps the rate policies' window itself
        /// (shared by every process using it) and decides the rate
        /// conditions when it applies a failure. The default is `false`:
        /// the breaker keeps the window and applies [`Op::Trip`] when
        /// [`trips`] says a rate holds.
        ///
        /// A storage that says `true` gets every closed-state failure as
        /// [`Op::Failure`] and every slow closed-state call (success or
        /// failure) as [`Op::SlowCall`], learns of the other closed-state
        /// successes through [`Binding::counted_successes`] (the breaker
        /// counts them without calling the storage; a slow success is
        /// counted there too), and opens the circuit itself when a rate
        /// holds, reporting [`Reason::FailureRate`](crate::Reason::FailureRate)
        /// or [`Reason::SlowCallRate`](crate::Reason::SlowCallRate) as the
        /// trip's reason.
        fn keeps_window(&self) -> bool {
            false
        }

        /// The shared window's totals as this storage last saw them, for
        /// [`CircuitBreaker::window`](crate::CircuitBreaker::window) when it
        /// [keeps the window](Storage::keeps_window). The default is `None`.
        fn window(&self) -> Option<Totals> {
            None
        }

        /// Called once when a breaker is built on this storage; a storage shared
        /// with other processes keeps the [`Binding`] to report transitions it
        /// learns of from elsewhere. The default ignores it.
        fn bind(&self, binding: Binding) {
            let _ = binding;
        }

        /// The closed state, told cheaply: `Some` when the state is closed (as
        /// [`load`](Storage::load) would say), `None` when it is not or the
        /// storage cannot tell without building a whole [`Snapshot`].
        ///
        /// A breaker on this storage asks it before every call and after every
        /// success, and calls `load` only when it answers `None`; a storage whose
        /// `load` does more than read one word (a remote storage's local view,
        /// say) answers from a word it keeps for this. The default is `None`.
        fn closed_hint(&self) -> Option<ClosedHint> {
            None
        }

        /// Reports to the breaker's listeners, through `tell(old, new)`, the
        /// transition `applied` made, if it made one; `applied` is what
        /// [`apply`](Storage::apply) or [`apply_async`](Storage::apply_async)
        /// returned to the breaker.
        ///
        /// The breaker calls it on the thread of the call that applied the
        /// operation, once its `success` or `failure` listeners have run, with
        /// every `Applied` it gets (it skips only those of
        /// [`Op::Cancel`], which changes no state). `tell` runs every listener's
        /// [`state_change`](crate::Listener::state_change) and never panics (a
        /// listener's panic is resumed by the breaker once `announce` returns).
        ///
        /// The default calls `tell(before.state, after.state)` when the two
        /// differ: right for a storage whose every transition is made by a
        /// breaker's call. A storage that also reports transitions through
        /// [`Binding::notify_transition`] (made by other processes, say) overrides
        /// it so that listeners hear all of them in one order and one at a time:
        /// it may report here, through `tell`, transitions queued before or
        /// after this one, and may leave this one for another thread to report
        /// (to a `tell` of its own, or to `notify_transition`) when that thread
        /// is reporting already. Each transition must be reported once, whether
        /// by `tell` or by `notify_transition`.
        ///
        /// A storage that wraps another must forward `announce` to it, as it
        /// forwards `apply` and `bind`.
        fn announce(&self, applied: &Applied, tell: &mut dyn FnMut(State, State)) {
            let (old, new) = (applied.before.state, applied.after.state);
            if old != new {
                tell(old, new);
            }
        }
    }
}

/// A storage's handle on the breaker it serves: its name, its clock, and a
/// way to tell its listeners about transitions made elsewhere (by another
/// process).
#[derive(Clone)]
pub struct Binding {
    pub(crate) name: Arc<str>,
    pub(crate) breaker: Weak<Shared>,
    pub(crate) clock: ClockImpl,
}

impl Binding {
    /// The breaker's name, to key shared state by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The time on the breaker's clock, the one its [`Limits::now`] is read
    /// from. A storage that keeps time by another clock (a server's) uses it
    /// to translate the times it reports into the breaker's.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Closed-state successes (and excluded errors) the breaker has counted
    /// under `generation` so far, for a storage that
    /// [keeps the window](Storage::keeps_window): a number that only grows
    /// within a generation; the storage reports the difference since it
    /// last looked. 0 once the breaker has been dropped, or when it counts
    /// none (no rate condition on, or another generation's calls).
    pub fn counted_successes(&self, generation: u64) -> u64 {
        self.breaker.upgrade().map_or(0, |shared| {
            crate::breaker::CircuitBreaker::from_shared(shared).counted_successes(generation)
        })
    }

    /// Reports a transition that no call of the breaker reports itself (one
    /// another process made, say), so this process's listeners see it.
    /// Returns `false` once the breaker has been dropped.
    ///
    /// It runs the listeners on the calling thread and resumes the first
    /// panic of one once all have run. Reports made here and through
    /// [`Storage::announce`] are heard in the order they are made: a storage
    /// that wants them heard in the order the transitions happened makes
    /// them one at a time, in that order.
    pub fn notify_transition(&self, old: State, new: State) -> bool {
        match self.breaker.upgrade() {
            Some(shared) => {
                crate::breaker::CircuitBreaker::from_shared(shared).notify_state_change(old, new);
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding").field("name", &self.name).finish()
    }
}
