//! Admission: every way a call is let in or rejected.
//!
//! A call is admitted with a [`Ticket`] (the generation it reports under,
//! and whether it is the half-open trial) or rejected with a
//! [`CircuitBreakerError`]. From the cheapest case to the dearest:
//!
//! 1. closed, on the memory storage: one atomic load
//!    ([`closed_ticket`](CircuitBreaker::closed_ticket), inlined into every
//!    call);
//! 2. closed, on a custom storage: its [`closed_hint`](crate::storage::Storage::closed_hint);
//! 3. open on the memory storage, far from the deadline: integer arithmetic
//!    on the coarse clock;
//! 4. anything else: a snapshot decides, and when the call may run as a
//!    trial, `Op::Admit` is applied (only it can take the trial place, as
//!    one atomic step).
//!
//! Every rejection is made by [`reject`](CircuitBreaker::reject), which
//! tells the `rejected` listeners.
//!
//! `call` and the attribute's iterators admit with [`admit`](CircuitBreaker::admit);
//! `call_async` uses [`decide`](CircuitBreaker::decide) and applies `Op::Admit`
//! itself, so that a custom storage's answer is awaited, not blocked on.

use std::panic::resume_unwind;
use std::time::Duration;

use crate::backend::Glance;
use crate::breaker::CircuitBreaker;
use crate::error::CircuitBreakerError;
use crate::flags::Path;
use crate::listener::Hooks;
use crate::recording::Recorded;
use crate::state::{Op, Outcome, Reason, State};
use crate::sync::Ordering;

/// Admission to run one call: the generation it reports under, and whether it
/// runs as the half-open trial.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    pub(crate) generation: u64,
    pub(crate) trial: bool,
}

impl Ticket {
    fn closed(generation: u64) -> Self {
        Ticket {
            generation,
            trial: false,
        }
    }
}

/// What admission decides, built where the caller wants it: `call`'s
/// `Result` (a rejection written straight into its return slot, and a
/// trial admitted at once) or `call_async`'s [`Decision`].
pub(crate) trait Verdict {
    fn admitted(ticket: Ticket) -> Self;
    fn rejected(error: CircuitBreakerError) -> Self;
    /// The call may run as a trial: `Op::Admit` decides, atomically.
    fn trial(cb: &CircuitBreaker) -> Self;
}

impl Verdict for Result<Ticket, CircuitBreakerError> {
    #[inline(always)]
    fn admitted(ticket: Ticket) -> Self {
        Ok(ticket)
    }
    #[inline(always)]
    fn rejected(error: CircuitBreakerError) -> Self {
        Err(error)
    }
    fn trial(cb: &CircuitBreaker) -> Self {
        cb.admit_trial()
    }
}

/// What admission decided short of applying `Op::Admit`, for `call_async`
/// (which applies it itself, awaiting a custom storage's answer).
pub(crate) enum Decision {
    Admitted(Ticket),
    Rejected(CircuitBreakerError),
    /// The call may run as a trial: `Op::Admit` decides, atomically.
    Apply,
}

impl Verdict for Decision {
    #[inline(always)]
    fn admitted(ticket: Ticket) -> Self {
        Decision::Admitted(ticket)
    }
    #[inline(always)]
    fn rejected(error: CircuitBreakerError) -> Self {
        Decision::Rejected(error)
    }
    fn trial(_: &CircuitBreaker) -> Self {
        Decision::Apply
    }
}

impl CircuitBreaker {
    /// Admission for a call: on the hot path, one atomic load.
    #[inline(always)]
    pub(crate) fn admit(&self) -> Result<Ticket, CircuitBreakerError> {
        match self.closed_ticket() {
            Some(ticket) => Ok(ticket),
            None => self.admit_slow(),
        }
    }

    /// Admission in every state but closed-on-memory: a rejection here is
    /// one function call away from the hot path.
    #[inline(never)]
    pub(crate) fn admit_slow(&self) -> Result<Ticket, CircuitBreakerError> {
        self.decide()
    }

    #[cold]
    #[inline(never)]
    fn admit_trial(&self) -> Result<Ticket, CircuitBreakerError> {
        self.admitted(self.apply(Op::Admit))
    }

    /// The hot path: a closed circuit on the memory storage admits on one
    /// atomic load (on a storage with a closed hint, one call).
    #[inline(always)]
    pub(crate) fn closed_ticket(&self) -> Option<Ticket> {
        self.shared.backend.closed_generation().map(Ticket::closed)
    }

    /// Admission once [`closed_ticket`](Self::closed_ticket) said no.
    #[inline(always)]
    pub(crate) fn decide<V: Verdict>(&self) -> V {
        let timeout = self.reset_timeout_nanos();
        let backoff = self.growing_backoff();
        match self
            .shared
            .backend
            .glance(timeout, backoff.as_ref(), &self.shared.clock)
        {
            Glance::Closed(generation) => V::admitted(Ticket::closed(generation)),
            Glance::Open(retry_nanos) => self.reject(|| {
                CircuitBreakerError::with_retry_nanos(
                    self.shared.name,
                    State::Open,
                    Reason::TimeoutNotElapsed,
                    retry_nanos,
                )
            }),
            Glance::Unknown => self.decide_from_snapshot(),
        }
    }

    #[cold]
    #[inline(never)]
    fn decide_from_snapshot<V: Verdict>(&self) -> V {
        let snap = self.snapshot();
        match snap.state {
            State::Closed => V::admitted(Ticket::closed(snap.generation)),
            State::Open => {
                // Far from the deadline, the cheap coarse reading decides;
                // near it, the precise one, so the trial is never early.
                let (coarse, lag) = self.shared.clock.coarse_nanos();
                let coarse = self.retry_after_of(&snap, Duration::from_nanos(coarse));
                if coarse.is_some_and(|d| d > Duration::from_nanos(lag)) {
                    return self.reject(|| self.open_error(coarse));
                }
                let retry_after = self.retry_after_of(&snap, self.now());
                if retry_after == Some(Duration::ZERO) {
                    V::trial(self)
                } else {
                    self.reject(|| self.open_error(retry_after))
                }
            }
            State::HalfOpen if snap.running_trials() >= self.half_open_calls_now() => {
                self.reject(|| self.error(State::HalfOpen, Reason::TrialInProgress, None))
            }
            State::HalfOpen => V::trial(self),
        }
    }

    /// The verdict of an applied `Op::Admit`, after telling listeners of the
    /// open to half-open transition it may have made.
    pub(crate) fn admitted(&self, recorded: Recorded) -> Result<Ticket, CircuitBreakerError> {
        let (outcome, after) = (recorded.applied.outcome, recorded.applied.after);
        let notified = self.announce(recorded);
        let verdict = match outcome {
            Outcome::Admitted { generation, trial } => Ok(Ticket { generation, trial }),
            Outcome::Rejected { reason } => {
                let retry_after = self.retry_after_of(&after, self.now());
                Err(self.error(after.state, reason, retry_after))
            }
            other => unreachable!("Op::Admit cannot give {other:?}"),
        };
        if let Err(panic) = notified {
            if let Ok(ticket) = verdict {
                self.cancel(ticket);
            }
            resume_unwind(panic);
        }
        match verdict {
            Ok(ticket) => Ok(ticket),
            Err(error) => self.reject(|| error),
        }
    }

    /// A rejection, once the `rejected` listeners have heard of it; one
    /// flag's load when nobody listens. A panic among them continues once
    /// they have all run (a rejected call holds nothing to give back).
    /// Built in the caller's return slot when nobody listens.
    #[inline(always)]
    fn reject<V: Verdict>(&self, error: impl FnOnce() -> CircuitBreakerError) -> V {
        if self.hears(Hooks::REJECTED) {
            return V::rejected(self.told_rejected(error()));
        }
        V::rejected(error())
    }

    #[cold]
    #[inline(never)]
    fn told_rejected(&self, error: CircuitBreakerError) -> CircuitBreakerError {
        if let Err(panic) = self.each_listener(Hooks::REJECTED, |l| l.rejected(self, &error)) {
            resume_unwind(panic);
        }
        error
    }

    /// Tells the `before_call` listeners; a panic among them gives the
    /// trial place back before it continues.
    #[inline(always)]
    pub(crate) fn before_call(&self, ticket: Ticket) {
        self.before_call_on(self.path(), ticket);
    }

    /// [`before_call`](Self::before_call) for a call that read `path` when
    /// it started.
    #[inline(always)]
    pub(crate) fn before_call_on(&self, path: Path, ticket: Ticket) {
        if path.hears(Hooks::BEFORE_CALL) {
            match ticket.trial {
                true => self.before_trial(ticket),
                false => self.tell_before_call(),
            }
        }
    }

    /// Tells the `before_call` listeners of a call that holds no trial
    /// place (nothing to give back if one panics).
    #[inline(never)]
    fn tell_before_call(&self) {
        self.shared
            .listeners
            .tell::<{ Hooks::BEFORE_CALL.bits() }>(|l| l.before_call(self));
    }

    /// Tells the `before_call` listeners of a trial; a panic among them
    /// gives the trial place back before it continues.
    #[cold]
    #[inline(never)]
    fn before_trial(&self, ticket: Ticket) {
        let told = self
            .shared
            .listeners
            .each(Hooks::BEFORE_CALL, |l| l.before_call(self));
        if let Err(panic) = told {
            self.cancel(ticket);
            resume_unwind(panic);
        }
    }

    /// The rejection of an open circuit.
    fn open_error(&self, retry_after: Option<Duration>) -> CircuitBreakerError {
        self.error(State::Open, Reason::TimeoutNotElapsed, retry_after)
    }

    /// Trials half-open admits at once, read on the consecutive policy's
    /// path from one flag.
    fn half_open_calls_now(&self) -> u32 {
        if self.shared.default_policy.load(Ordering::Relaxed) {
            1
        } else {
            self.half_open_calls()
        }
    }

    /// An error of this breaker; `retry_after` comes clamped to the open
    /// period in force ([`retry_after_of`](Self::retry_after_of): a
    /// millisecond's rounding of when the circuit opened, or the coarse
    /// clock's lag, would otherwise show through).
    pub(crate) fn error(
        &self,
        state: State,
        reason: Reason,
        retry_after: Option<Duration>,
    ) -> CircuitBreakerError {
        CircuitBreakerError::new(self.shared.name, state, reason, retry_after)
    }
}
