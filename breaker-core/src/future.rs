//! The future of `call_async`: a hand-written state machine whose path on
//! the memory storage never awaits anything but the guarded future.
//!
//! An `async fn` would hold every `apply_async` await point in its state, and
//! await a boxed future even where the storage answers at once. Here the
//! memory storage's operations are applied in place, as `call` applies them;
//! only a custom storage's answer is awaited, in the `Admitting` and
//! `Recording` stages. On a closed circuit the first poll does what `call`
//! does: one atomic load before the guarded future's poll, one after.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use crate::admission::{Decision, Ticket};
use crate::breaker::CircuitBreaker;
use crate::call::default_view;
use crate::detach;
use crate::error::Error;
use crate::inspect::{is_slow, FailedValue, Judge, Started, Timed};
use crate::listener::Hooks;
use crate::recording::{success_op, Applying, CancelOnDrop, Panic, Recorded};
use crate::state::Op;
use crate::storage::ApplyFuture;

pin_project! {
    /// `fut` run as one call through `cb`: admitted at the first poll, its
    /// output recorded as a success or failure, and neither if dropped while
    /// it runs (a half-open trial place is freed).
    #[project = Projected]
    pub(crate) struct GuardedFuture<'cb, Fut, T, E, V, X, J> {
        cb: &'cb CircuitBreaker,
        // `None` once dropped early, in `drop` below.
        #[pin]
        fut: Option<Fut>,
        // `Copy`, so that moving between stages drops nothing; what a custom
        // storage's stages hold is kept apart, boxed (its future is boxed
        // already), so the memory storage's future stays small.
        stage: Stage,
        // Dropped by hand in `drop` below: an inline null check, where the
        // field's own drop glue is an out-of-line call on every call.
        waiting: ManuallyDrop<Option<Box<Waiting<T, E>>>>,
        view: V,
        site_excluded: X,
        judge: J,
        // `Some` when the breaker inspects the call (`inspect.rs`): its
        // start, if timed.
        watch: Option<Started>,
    }

    impl<'cb, Fut, T, E, V, X, J> PinnedDrop for GuardedFuture<'cb, Fut, T, E, V, X, J> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Only while `fut` runs: once its output is handed to the storage
            // it is the call's one report, applied even if this future is
            // dropped meanwhile. A cancel sent after a success that kept the
            // circuit half-open (below `success_threshold`) would free the
            // place of the next trial, admitted under the same generation.
            //
            // The guarded future is dropped first, while the place is still
            // held: whatever it holds for its trial (a connection, a guard)
            // is gone before the next trial can be admitted. The cancel runs
            // even if that drop panics.
            if let Stage::Running(ticket) = *this.stage {
                let _cancel = CancelOnDrop(this.cb, ticket);
                this.fut.set(None);
            }
            // Only a custom storage's stages wait (never on the memory
            // storage's path).
            if this.waiting.is_some() {
                drop_waiting(this.cb, *this.stage, this.waiting);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Stage {
    /// Not polled yet.
    Start,
    /// A custom storage is applying `Op::Admit`.
    Admitting,
    /// The guarded future runs under this ticket.
    Running(Ticket),
    /// A custom storage is recording the result.
    Recording,
    /// The output has been returned.
    Done,
}

/// What a custom storage's stages wait for.
struct Waiting<T, E> {
    applying: ApplyFuture<'static>,
    /// The clock's panic while reading the time for the operation.
    clock_panic: Option<Panic>,
    /// How the guarded future ended (`None` while admitting).
    ending: Option<Ending<T, E>>,
    /// How long it took, if timed.
    timed: Option<Timed>,
}

impl<T, E> Waiting<T, E> {
    /// What the operation did, once the storage has answered.
    fn recorded(&mut self, applied: crate::storage::Applied) -> Recorded {
        Recorded {
            applied,
            clock_panic: self.clock_panic.take(),
        }
    }
}

/// How the guarded future ended, to report once its result is recorded.
enum Ending<T, E> {
    Success(T),
    /// An `Ok` value the judge accepted: a failure, returned as `Ok`.
    Judged(T),
    Excluded(E),
    Failure(E),
    Panic(Box<dyn Any + Send>),
}

impl<'cb, Fut, T, E, V, X, J> GuardedFuture<'cb, Fut, T, E, V, X, J> {
    pub(crate) fn new(
        cb: &'cb CircuitBreaker,
        fut: Fut,
        view: V,
        site_excluded: X,
        judge: J,
    ) -> Self {
        GuardedFuture {
            cb,
            fut: Some(fut),
            stage: Stage::Start,
            waiting: ManuallyDrop::new(None),
            view,
            site_excluded,
            judge,
            watch: None,
        }
    }
}

impl<Fut, T, E, V, X, J> Future for GuardedFuture<'_, Fut, T, E, V, X, J>
where
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    J: Judge<T>,
{
    type Output = Result<T, Error<E>>;

    /// The path of a closed circuit on the memory storage is straight-line
    /// code, as `call`'s is: one atomic load to admit, the guarded future's
    /// poll, one atomic load to see that a success has nothing to record.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let cb = self.cb;
        let ticket = match self.stage {
            Stage::Running(ticket) => ticket,
            Stage::Start => {
                let path = cb.path();
                // An inspected call is admitted off the hot path, which
                // notes its start; told apart first, as `run` does, so the
                // state is loaded on the plain path alone.
                let closed = match J::AT_SITE || path.inspected() {
                    true => None,
                    false => cb.closed_ticket(),
                };
                match closed {
                    Some(ticket) => {
                        cb.before_call_on(path, ticket);
                        *self.as_mut().project().stage = Stage::Running(ticket);
                        ticket
                    }
                    None => ready!(self.as_mut().admit(cx))?,
                }
            }
            Stage::Admitting => ready!(self.as_mut().admit(cx))?,
            Stage::Recording => return self.poll_recording(cx),
            Stage::Done => panic!("a `call_async` future polled after it completed"),
        };
        let this = self.as_mut().project();
        let fut = this.fut.as_pin_mut().expect("the guarded future runs");
        let polled = catch_unwind(AssertUnwindSafe(|| fut.poll(cx)));
        if let Ok(Poll::Pending) = polled {
            return Poll::Pending;
        }
        *this.stage = Stage::Done;
        if J::AT_SITE || this.watch.is_some() {
            let polled = match polled {
                Ok(Poll::Ready(result)) => Ok(result),
                Ok(Poll::Pending) => return Poll::Pending,
                Err(panic) => Err(panic),
            };
            return self.end_inspected(polled, ticket, cx);
        }
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(value))) => {
                let path = cb.path();
                if path.windowed() {
                    cb.record_success_in_window(ticket);
                }
                if cb.success_to_record(ticket) || path.hears(Hooks::SUCCESS) {
                    return self.end(Ending::Success(value), ticket, None, cx);
                }
                Poll::Ready(Ok(value))
            }
            Ok(Poll::Ready(Err(error))) => self.end_err(error, ticket, None, cx),
            Err(panic) => self.end(Ending::Panic(panic), ticket, None, cx),
        }
    }
}

impl<Fut, T, E, V, X, J> GuardedFuture<'_, Fut, T, E, V, X, J>
where
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    J: Judge<T>,
{
    /// The end of an inspected call: timed, and its `Ok` judged (a panic
    /// in the judge is the call's failure).
    #[cold]
    #[inline(never)]
    fn end_inspected(
        self: Pin<&mut Self>,
        result: std::thread::Result<Result<T, E>>,
        ticket: Ticket,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Error<E>>> {
        let cb = self.cb;
        let timed = self.watch.and_then(|started| cb.stop(started));
        let ending = match result {
            Ok(Ok(value)) => {
                match catch_unwind(AssertUnwindSafe(|| self.judge.fails(cb, &value))) {
                    Ok(false) => {
                        // Counted in the window here, slow or not.
                        let op = cb.success_op_as(ticket, is_slow(timed));
                        return self.end_with(Ending::Success(value), op, timed, cx);
                    }
                    Ok(true) => Ending::Judged(value),
                    Err(panic) => Ending::Panic(panic),
                }
            }
            Ok(Err(error)) => return self.end_err(error, ticket, timed, cx),
            Err(panic) => Ending::Panic(panic),
        };
        self.end(ending, ticket, timed, cx)
    }

    /// Admission off the hot path: every state but closed-on-memory, and a
    /// custom storage's answer to `Op::Admit`. Ready with the ticket once
    /// `before_call` has run and the stage is `Running`.
    #[inline(never)]
    fn admit(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Ticket, Error<E>>> {
        let this = self.project();
        let cb = *this.cb;
        if let Stage::Start = *this.stage {
            match cb.decide::<Decision>() {
                Decision::Admitted(ticket) => {
                    // Not armed yet: a panicking `before_call` listener frees
                    // the trial place itself.
                    cb.before_call(ticket);
                    *this.stage = Stage::Running(ticket);
                    *this.watch = cb.inspecting().then(|| cb.start());
                    return Poll::Ready(Ok(ticket));
                }
                Decision::Rejected(e) => {
                    *this.stage = Stage::Done;
                    return Poll::Ready(Err(Error::Open(e)));
                }
                Decision::Apply => match cb.applying(Op::Admit) {
                    Applying::Now(recorded) => return this.admitted(cb, recorded),
                    Applying::Later(applying, clock_panic) => {
                        **this.waiting = Some(Box::new(Waiting {
                            applying,
                            clock_panic,
                            ending: None,
                            timed: None,
                        }));
                        *this.stage = Stage::Admitting;
                    }
                },
            }
        }
        let applied = ready!(applying(this.waiting).poll(cx));
        let recorded = this.waiting.take().map(|mut w| w.recorded(applied));
        this.admitted(cb, recorded.expect("an admitting stage has a future"))
    }

    /// The guarded future's error: a success if excluded, else a failure.
    #[cold]
    #[inline(never)]
    fn end_err(
        self: Pin<&mut Self>,
        error: E,
        ticket: Ticket,
        timed: Option<Timed>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Error<E>>> {
        let cb = self.cb;
        // User code decides (predicates, `source()`): a panic there is the
        // call's failure, recorded before the panic continues.
        let excluded = catch_unwind(AssertUnwindSafe(|| {
            cb.excludes(&error, &self.view, &self.site_excluded)
        }));
        let excluded = match excluded {
            Ok(excluded) => excluded,
            Err(panic) => return self.end(Ending::Panic(panic), ticket, timed, cx),
        };
        if !excluded {
            return self.end(Ending::Failure(error), ticket, timed, cx);
        }
        // A success, counted in the window here.
        match cb.success_op_as(ticket, is_slow(timed)) {
            None => {
                cb.report_excluded(&error, &self.view, None);
                cb.tell_duration(timed);
                Poll::Ready(Err(Error::Inner(error)))
            }
            op => self.end_with(Ending::Excluded(error), op, timed, cx),
        }
    }

    /// Records how the call ended, then reports it.
    #[cold]
    #[inline(never)]
    fn end(
        self: Pin<&mut Self>,
        ending: Ending<T, E>,
        ticket: Ticket,
        timed: Option<Timed>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Error<E>>> {
        let cb = self.cb;
        let op = match ending {
            // Counted in the window by the caller.
            Ending::Success(_) => cb.success_to_record(ticket).then(|| success_op(ticket)),
            Ending::Excluded(_) => Some(success_op(ticket)),
            Ending::Judged(_) | Ending::Failure(_) | Ending::Panic(_) => {
                Some(cb.failure_op_as(ticket, is_slow(timed)))
            }
        };
        self.end_with(ending, op, timed, cx)
    }

    /// Applies `op` (`None`: a success with nothing to record), then
    /// reports how the call ended.
    fn end_with(
        self: Pin<&mut Self>,
        ending: Ending<T, E>,
        op: Option<Op>,
        timed: Option<Timed>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Error<E>>> {
        let this = self.project();
        let cb = *this.cb;
        let Some(op) = op else {
            // Only listeners to tell.
            return Poll::Ready(report(cb, ending, None, this.view, timed));
        };
        match cb.applying(op) {
            Applying::Now(recorded) => {
                Poll::Ready(report(cb, ending, Some(recorded), this.view, timed))
            }
            Applying::Later(applying, clock_panic) => {
                **this.waiting = Some(Box::new(Waiting {
                    applying,
                    clock_panic,
                    ending: Some(ending),
                    timed,
                }));
                *this.stage = Stage::Recording;
                this.poll_recording(cx)
            }
        }
    }

    /// Waits for a custom storage to record the result, then reports it.
    fn poll_recording(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, Error<E>>> {
        self.project().poll_recording(cx)
    }
}

impl<Fut, T, E, V, X, J> Projected<'_, '_, Fut, T, E, V, X, J>
where
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
{
    /// The verdict of an applied `Op::Admit`; running if admitted.
    fn admitted(self, cb: &CircuitBreaker, recorded: Recorded) -> Poll<Result<Ticket, Error<E>>> {
        *self.stage = Stage::Done;
        let ticket = cb.admitted(recorded).map_err(Error::Open)?;
        cb.before_call(ticket);
        *self.stage = Stage::Running(ticket);
        *self.watch = cb.inspecting().then(|| cb.start());
        Poll::Ready(Ok(ticket))
    }

    fn poll_recording(self, cx: &mut Context<'_>) -> Poll<Result<T, Error<E>>> {
        let applied = ready!(applying(self.waiting).poll(cx));
        *self.stage = Stage::Done;
        let mut waiting = self.waiting.take().expect("a recording stage has a future");
        let recorded = waiting.recorded(applied);
        let ending = waiting.ending.expect("a recording call keeps how it ended");
        Poll::Ready(report(
            self.cb,
            ending,
            Some(recorded),
            self.view,
            waiting.timed,
        ))
    }
}

/// Drops what a custom storage's stage waits for. An admission is applied
/// by the storage anyway (its contract), so it is finished elsewhere
/// ([`detach::admission`]), which frees the trial place it may take.
#[cold]
#[inline(never)]
fn drop_waiting<T, E>(cb: &CircuitBreaker, stage: Stage, waiting: &mut Option<Box<Waiting<T, E>>>) {
    if let (Stage::Admitting, Some(waiting)) = (stage, waiting.take()) {
        detach::admission(cb, waiting.applying);
    }
}

/// The custom storage's future a waiting stage polls.
fn applying<'a, T, E>(
    waiting: &'a mut Option<Box<Waiting<T, E>>>,
) -> Pin<&'a mut (dyn Future<Output = crate::storage::Applied> + Send + 'static)> {
    let waiting = waiting.as_mut().expect("a waiting stage has a future");
    waiting.applying.as_mut()
}

/// Tells listeners how the call ended and what its result did (`None`: a
/// success with nothing to record), then how long it took if timed; the
/// output.
fn report<T, E, V>(
    cb: &CircuitBreaker,
    ending: Ending<T, E>,
    recorded: Option<Recorded>,
    view: &V,
    timed: Option<Timed>,
) -> Result<T, Error<E>>
where
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
{
    let output = match (ending, recorded) {
        (Ending::Success(value), recorded) => {
            cb.report_success(recorded);
            Ok(value)
        }
        (Ending::Excluded(error), recorded) => {
            cb.report_excluded(&error, view, recorded);
            Err(Error::Inner(error))
        }
        (Ending::Judged(value), Some(recorded)) => {
            let _ = cb.report_failure(FailedValue, &default_view::<FailedValue>, recorded);
            Ok(value)
        }
        (Ending::Failure(error), Some(recorded)) => Err(cb.report_failure(error, view, recorded)),
        (Ending::Panic(panic), Some(recorded)) => {
            let _dropped = cb.told_duration(timed);
            cb.report_panic(&*panic, recorded);
            resume_unwind(panic)
        }
        (Ending::Judged(_) | Ending::Failure(_) | Ending::Panic(_), None) => {
            unreachable!("a failure is always recorded")
        }
    };
    cb.tell_duration(timed);
    output
}
