//! Recording and reporting: what a call's result does to the state, and
//! who is told.
//!
//! Every change of state goes through [`apply`](CircuitBreaker::apply),
//! which returns a [`Recorded`] that must be handed to
//! [`announce`](CircuitBreaker::announce): the types make sure no
//! transition goes unreported. A call's result is recorded with
//! `finish_*`, which decide success or failure (exclusions are user code:
//! a panic there is a failure too), apply it, and report it to the
//! listeners (`success` or `failure`, then the `state_change` it caused).
//!
//! User code runs here (predicates, `source()`, clocks, listeners); none of
//! it can keep a half-open trial's place: a panic is recorded as the
//! call's failure first, then continues.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::admission::Ticket;
use crate::breaker::CircuitBreaker;
use crate::error::Error;
use crate::flags::Path;
use crate::listener::{Failure, Hooks, Listener};
use crate::state::{Op, Outcome, State};
use crate::storage::{Applied, ApplyFuture};
use crate::sync::Ordering;

/// A panic caught from user code, to resume once the breaker's own
/// bookkeeping is done.
pub(crate) type Panic = Box<dyn Any + Send>;

/// The time an operation is applied at when the clock panics: long ago, so
/// a circuit opened then admits its next trial at once rather than never.
const FALLBACK_TIME: Duration = Duration::from_millis(1);

/// What one operation did, not yet announced: [`CircuitBreaker::apply`]
/// makes it and [`CircuitBreaker::announce`] consumes it, so no transition
/// goes unreported. (A cancel, which changes no state, is the one exception:
/// it is dropped.)
#[must_use = "an applied operation is announced with `CircuitBreaker::announce`"]
pub(crate) struct Recorded {
    pub(crate) applied: Applied,
    /// The clock's panic, if reading the time for this operation panicked.
    pub(crate) clock_panic: Option<Panic>,
}

/// An operation's result: at once from the memory storage, or a custom
/// storage's future of it (with the clock's panic while reading the time
/// for it).
pub(crate) enum Applying {
    Now(Recorded),
    Later(ApplyFuture<'static>, Option<Panic>),
}

impl CircuitBreaker {
    /// Applies `op` to the storage; what it did must then be announced.
    ///
    /// A clock that panics does not stop the operation: it is applied as
    /// of [`FALLBACK_TIME`] and the panic is handed on with the result, to
    /// be resumed once the call's bookkeeping is done. (A failing trial must
    /// end even if the time of its failure cannot be read.)
    pub(crate) fn apply(&self, op: Op) -> Recorded {
        let mut clock_panic = None;
        let mut guard = None;
        let limits = self.limits_at(Duration::ZERO, self.policy_in(&mut guard));
        let applied = self
            .shared
            .backend
            .apply(op, limits, || self.read_clock(&mut clock_panic));
        self.clear_if_closed(&applied);
        Recorded {
            applied,
            clock_panic,
        }
    }

    /// The time, or [`FALLBACK_TIME`] with the clock's panic put in `panic`.
    fn read_clock(&self, panic: &mut Option<Panic>) -> Duration {
        match catch_unwind(AssertUnwindSafe(|| self.now())) {
            Ok(now) => now,
            Err(caught) => {
                panic.get_or_insert(caught);
                FALLBACK_TIME
            }
        }
    }

    /// `op` applied at once on the memory storage, or a custom storage's
    /// future of it (for `call_async`, which must not block). The future
    /// holds its own handle on the breaker, so it can be finished after
    /// the call that started it is dropped.
    pub(crate) fn applying(&self, op: Op) -> Applying {
        if self.shared.backend.is_memory() {
            return Applying::Now(self.apply(op));
        }
        let mut clock_panic = None;
        let now = self.read_clock(&mut clock_panic);
        let cb = CircuitBreaker::from_shared(Arc::clone(&self.shared));
        let future = Box::pin(async move {
            let applying = {
                let mut guard = None;
                let limits = cb.limits_at(now, cb.policy_in(&mut guard));
                cb.shared
                    .backend
                    .apply_async(op, limits)
                    .ok_or_else(|| cb.shared.backend.apply(op, limits, || now))
            };
            let applied = match applying {
                Ok(applying) => applying.await,
                Err(applied) => applied,
            };
            cb.clear_if_closed(&applied);
            applied
        });
        Applying::Later(future, clock_panic)
    }

    /// Tells listeners of the transition `recorded` made, if it made one;
    /// the first panic: the clock's while applying it, or a listener's.
    /// (A caller that needs what was applied reads it first.)
    ///
    /// On the memory storage every operation that changed the generation
    /// must come here (the announcer orders the reports by generation); any
    /// other storage is handed every result through
    /// [`Storage::announce`](crate::storage::Storage::announce), whether or
    /// not anyone listens.
    #[inline(always)]
    pub(crate) fn announce(&self, recorded: Recorded) -> Result<(), Panic> {
        let told = self.shared.backend.announce(&recorded.applied, |old, new| {
            self.each_listener(Hooks::STATE_CHANGE, |l| l.state_change(self, old, new))
        });
        match recorded.clock_panic {
            Some(panic) => Err(panic),
            None => told,
        }
    }

    /// Records a success: on the hot path, one atomic load of the state
    /// and one of the flag word, nothing else.
    #[inline(always)]
    pub(crate) fn finish_ok(&self, ticket: Ticket) {
        self.finish_ok_on(self.path(), ticket);
    }

    /// [`finish_ok`](Self::finish_ok) for a call that read `path` when it
    /// started: one atomic load of the state, and register tests.
    #[inline(always)]
    pub(crate) fn finish_ok_on(&self, path: Path, ticket: Ticket) {
        if path.windowed() {
            self.record_success_in_window(ticket);
        }
        if self.success_to_record(ticket) {
            self.finish_ok_slow(ticket);
        } else if path.hears(Hooks::SUCCESS) {
            self.tell_success();
        }
    }

    /// Tells the `success` listeners of a success with nothing to record
    /// (nothing to do after them, so a panic among them continues once
    /// they have all run).
    #[inline(never)]
    fn tell_success(&self) {
        self.shared
            .listeners
            .tell::<{ Hooks::SUCCESS.bits() }>(|l| l.success(self));
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn finish_ok_slow(&self, ticket: Ticket) {
        let recorded = self
            .success_to_record(ticket)
            .then(|| self.apply(success_op(ticket)));
        self.report_success(recorded);
    }

    /// Whether a success under `ticket` has anything to record: not when the
    /// breaker is closed with no failures counted (the hot path), nor when the
    /// generation has moved on.
    #[inline(always)]
    pub(crate) fn success_to_record(&self, ticket: Ticket) -> bool {
        ticket.trial || self.shared.backend.success_to_record(ticket.generation)
    }

    /// Records a panic as the failure of the call admitted with `ticket`,
    /// then continues the panic.
    #[cold]
    #[inline(never)]
    pub(crate) fn fail_with_panic(&self, ticket: Ticket, panic: Panic) -> ! {
        let recorded = self.apply_failure(ticket);
        self.report_panic(&*panic, recorded);
        resume_unwind(panic)
    }

    /// Records an error result: a success if excluded, else a failure.
    #[cold]
    #[inline(never)]
    pub(crate) fn finish_err<E, V, X>(
        &self,
        ticket: Ticket,
        error: E,
        view: &V,
        site_excluded: &X,
    ) -> Error<E>
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    {
        if self.excluded_or_fail(ticket, &error, view, site_excluded) {
            self.finish_excluded(ticket, &error, view);
            return Error::Inner(error);
        }
        self.finish_failure(ticket, error, view)
    }

    /// Whether `error` is excluded. That is decided by user code (predicates,
    /// `source()`, a view); if it panics, the call admitted with `ticket` is
    /// recorded as a failure and the panic continues, so a trial never
    /// keeps its place.
    pub(crate) fn excluded_or_fail<E, V, X>(
        &self,
        ticket: Ticket,
        error: &E,
        view: &V,
        site_excluded: &X,
    ) -> bool
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    {
        match catch_unwind(AssertUnwindSafe(|| {
            self.excludes(error, view, site_excluded)
        })) {
            Ok(excluded) => excluded,
            Err(panic) => self.fail_with_panic(ticket, panic),
        }
    }

    /// Records a failure that is not excluded.
    pub(crate) fn finish_failure<E, V>(&self, ticket: Ticket, error: E, view: &V) -> Error<E>
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    {
        let recorded = self.apply_failure(ticket);
        self.report_failure(error, view, recorded)
    }

    /// Whether the breaker's exclusions or the call site's exclude `error`.
    /// Inline up to the breaker's list: a breaker without exclusions asks
    /// the call site only.
    #[inline(always)]
    pub(crate) fn excludes<E, V, X>(&self, error: &E, view: &V, site_excluded: &X) -> bool
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    {
        let as_error = view(error);
        if self.shared.excluding.load(Ordering::Acquire) {
            return self.excludes_listed(error, as_error, site_excluded);
        }
        site_excluded(error, as_error)
    }

    /// `excludes` for a breaker with exclusions of its own.
    #[inline(never)]
    fn excludes_listed<E, X>(
        &self,
        error: &E,
        as_error: Option<&(dyn StdError + 'static)>,
        site_excluded: &X,
    ) -> bool
    where
        E: fmt::Debug + 'static,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    {
        // The breaker's exclusions first, the call site's last: the site's
        // hints (debug builds) are then given only when nothing matched.
        let list = self.shared.exclusions.load();
        if list.iter().any(|x| x.matches(error as &dyn Any, as_error))
            || site_excluded(error, as_error)
        {
            return true;
        }
        if cfg!(debug_assertions) {
            let name = self.shared.name.as_str();
            list.iter()
                .for_each(|x| x.hint_if_missed(name, error, as_error));
        }
        false
    }

    /// Tells listeners of a success and of the transition it made.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_success(&self, recorded: Option<Recorded>) {
        let heard = self.each_listener(Hooks::SUCCESS, |l| l.success(self));
        let changed = match recorded {
            Some(recorded) => self.announce(recorded),
            None => Ok(()),
        };
        if let Err(panic) = heard.and(changed) {
            resume_unwind(panic);
        }
    }

    /// Records an excluded error: a success, told as `excluded`.
    #[cold]
    #[inline(never)]
    fn finish_excluded<E, V>(&self, ticket: Ticket, error: &E, view: &V)
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    {
        self.record_success_in_window(ticket);
        let recorded = self
            .success_to_record(ticket)
            .then(|| self.apply(success_op(ticket)));
        self.report_excluded(error, view, recorded);
    }

    /// Tells listeners of an excluded error (a success) and of the
    /// transition it made.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_excluded<E, V>(&self, error: &E, view: &V, recorded: Option<Recorded>)
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    {
        let heard = self.each_listener(Hooks::EXCLUDED | Hooks::SUCCESS, |l| {
            l.excluded(self, &Failure::error(error, view(error)))
        });
        let changed = match recorded {
            Some(recorded) => self.announce(recorded),
            None => Ok(()),
        };
        if let Err(panic) = heard.and(changed) {
            resume_unwind(panic);
        }
    }

    /// Tells listeners of a failure and its transition; the error to return.
    pub(crate) fn report_failure<E, V>(&self, error: E, view: &V, recorded: Recorded) -> Error<E>
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    {
        self.carry_if_evicted();
        let heard = self.each_listener(Hooks::FAILURE, |l| {
            l.failure(self, &Failure::error(&error, view(&error)))
        });
        let (outcome, after) = (recorded.applied.outcome, recorded.applied.after);
        let changed = self.announce(recorded);
        if let Err(panic) = heard.and(changed) {
            resume_unwind(panic);
        }
        match outcome {
            Outcome::Counted {
                tripped: Some(reason),
            } if self.throw_new_error_on_trip() => {
                // From the `opened_at` this failure stamped.
                let retry_after = self
                    .retry_after_of(&after, self.now())
                    .or_else(|| Some(self.open_period(&after)));
                Error::Tripped(self.error(State::Open, reason, retry_after), error)
            }
            _ => Error::Inner(error),
        }
    }

    /// Tells listeners of a panic and its transition. The guarded function's
    /// panic continues, so a listener's panic here is dropped.
    pub(crate) fn report_panic(&self, panic: &(dyn Any + Send), recorded: Recorded) {
        self.carry_if_evicted();
        let _ = self.each_listener(Hooks::FAILURE, |l| l.failure(self, &Failure::panic(panic)));
        let _ = self.announce(recorded);
    }

    /// The flag word, as a call starting now reads it (`flags.rs`).
    #[inline(always)]
    pub(crate) fn path(&self) -> Path {
        self.shared.flags.path()
    }

    /// Whether some listener declared one of `hook`: the hot path reads
    /// the flag word, not the list.
    #[inline(always)]
    pub(crate) fn hears(&self, hook: Hooks) -> bool {
        self.path().hears(hook)
    }

    /// Runs `event` on every listener that declared one of `hook`; a
    /// panicking listener does not stop the others, and the first panic is
    /// handed back to be resumed.
    #[inline(always)]
    pub(crate) fn each_listener(
        &self,
        hook: Hooks,
        event: impl FnMut(&dyn Listener),
    ) -> Result<(), Panic> {
        if !self.hears(hook) {
            return Ok(());
        }
        self.shared.listeners.each(hook, event)
    }

    /// Tells listeners of a transition a storage reports itself
    /// ([`Binding::notify_transition`](crate::storage::Binding::notify_transition));
    /// the first listener panic is resumed once every listener has run.
    pub(crate) fn notify_state_change(&self, old: State, new: State) {
        if let Err(panic) =
            self.each_listener(Hooks::STATE_CHANGE, |l| l.state_change(self, old, new))
        {
            resume_unwind(panic);
        }
    }

    /// Frees a trial place that will not report a result.
    ///
    /// It runs from `Drop` impls, maybe while a panic unwinds: nothing in it
    /// may panic. A cancel changes no state, so there is nothing to
    /// announce, and a clock's panic is dropped (a cancel needs no time).
    pub(crate) fn cancel(&self, ticket: Ticket) {
        if ticket.trial {
            let _no_transition = self.apply(Op::Cancel {
                generation: ticket.generation,
            });
        }
    }
}

/// Frees a trial place when dropped: after what is dropped before it, even
/// if that panics.
pub(crate) struct CancelOnDrop<'cb>(pub(crate) &'cb CircuitBreaker, pub(crate) Ticket);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cancel(self.1);
        self.0.tell_cancelled();
    }
}

pub(crate) fn success_op(ticket: Ticket) -> Op {
    Op::Success {
        generation: ticket.generation,
        trial: ticket.trial,
    }
}

pub(crate) fn failure_op(ticket: Ticket) -> Op {
    Op::Failure {
        generation: ticket.generation,
        trial: ticket.trial,
    }
}
