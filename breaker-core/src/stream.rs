//! A guarded stream: the whole stream is one call through the breaker, as a
//! guarded iterator's iteration is.

use std::error::Error as StdError;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::admission::Ticket;
use crate::breaker::CircuitBreaker;
use crate::call::default_view;
use crate::error::{CircuitBreakerError, Error};
use crate::inspect::{FailedValue, Judge, Unjudged};
use crate::recording::CancelOnDrop;

/// Where a guarded stream is in its one call.
enum Phase {
    /// Admitted on its first poll (`call_stream`).
    Waiting,
    /// Rejected: the error is yielded once, then the stream ends.
    Rejected(Option<CircuitBreakerError>),
    /// Admitted; its result is not recorded yet.
    Running(Ticket),
    /// Its result is recorded: what is left passes through.
    Reported,
}

pin_project! {
    /// A stream of `Result`s run as one call through a breaker: failed by
    /// its first `Err` item that is not excluded (or a panic in its
    /// `poll_next`), succeeded by reaching its end, neither if dropped before
    /// either (a trial place it held is given back). Items are
    /// `Result<T, Error<E>>`: a rejected call yields one `Error::Open` and
    /// ends; the failing item is `Error::Tripped` when it opened the circuit
    /// (with `throw_new_error_on_trip` on), else `Error::Inner`. An `Ok`
    /// item the judge accepts fails the call too, and is still yielded.
    pub struct GuardedStream<'cb, S, V, X, J = Unjudged> {
        cb: &'cb CircuitBreaker,
        phase: Phase,
        #[pin]
        inner: Option<Inner<S>>,
        view: V,
        excluded: X,
        judge: J,
    }

    impl<S, V, X, J> PinnedDrop for GuardedStream<'_, S, V, X, J> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Phase::Running(ticket) = *this.phase {
                // The inner stream goes first, while the trial place is
                // still held.
                let _cancel = CancelOnDrop(this.cb, ticket);
                this.inner.set(None);
            }
        }
    }
}

pin_project! {
    /// The guarded stream itself (pinned in place inside `Option`).
    struct Inner<S> {
        #[pin]
        stream: S,
    }
}

impl<'cb, S, V, X, J> GuardedStream<'cb, S, V, X, J> {
    /// Admitted on its first poll.
    pub(crate) fn lazy(cb: &'cb CircuitBreaker, stream: S, view: V, excluded: X, judge: J) -> Self {
        GuardedStream {
            cb,
            phase: Phase::Waiting,
            inner: Some(Inner { stream }),
            view,
            excluded,
            judge,
        }
    }

    /// Admitted already, under `ticket`.
    pub(crate) fn running(
        cb: &'cb CircuitBreaker,
        stream: S,
        ticket: Ticket,
        view: V,
        excluded: X,
        judge: J,
    ) -> Self {
        GuardedStream {
            cb,
            phase: Phase::Running(ticket),
            inner: Some(Inner { stream }),
            view,
            excluded,
            judge,
        }
    }

    /// Rejected before the stream was made.
    pub(crate) fn rejected(
        cb: &'cb CircuitBreaker,
        error: CircuitBreakerError,
        view: V,
        excluded: X,
        judge: J,
    ) -> Self {
        GuardedStream {
            cb,
            phase: Phase::Rejected(Some(error)),
            inner: None,
            view,
            excluded,
            judge,
        }
    }
}

impl<S, T, E, V, X, J> Stream for GuardedStream<'_, S, V, X, J>
where
    S: Stream<Item = Result<T, E>>,
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    J: Judge<T>,
{
    type Item = Result<T, Error<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let cb: &CircuitBreaker = this.cb;
        if let Phase::Waiting = this.phase {
            match cb.admit() {
                Ok(ticket) => {
                    cb.before_call(ticket);
                    *this.phase = Phase::Running(ticket);
                }
                Err(rejected) => {
                    this.inner.set(None);
                    *this.phase = Phase::Reported;
                    return Poll::Ready(Some(Err(Error::Open(rejected))));
                }
            }
        }
        let ticket = match this.phase {
            Phase::Waiting => unreachable!("admitted above"),
            Phase::Rejected(error) => {
                return Poll::Ready(error.take().map(|e| Err(Error::Open(e))))
            }
            Phase::Reported => {
                return match this.inner.as_mut().as_pin_mut() {
                    Some(inner) => inner
                        .project()
                        .stream
                        .poll_next(cx)
                        .map(|item| item.map(|r| r.map_err(Error::Inner))),
                    None => Poll::Ready(None),
                };
            }
            Phase::Running(ticket) => *ticket,
        };
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            unreachable!("a running stream has its inner stream");
        };
        // A panic in the guarded stream, or in deciding whether its error is
        // excluded, is the call's failure: recorded, then continued.
        let polled = catch_unwind(AssertUnwindSafe(|| inner.project().stream.poll_next(cx)));
        let item = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(item)) => item,
            Err(panic) => {
                *this.phase = Phase::Reported;
                cb.fail_with_panic(ticket, panic)
            }
        };
        match item {
            None => {
                *this.phase = Phase::Reported;
                cb.finish_ok(ticket);
                Poll::Ready(None)
            }
            Some(Ok(value)) if J::AT_SITE || cb.inspecting() => {
                // User code decides: a panic there is the call's failure.
                match catch_unwind(AssertUnwindSafe(|| this.judge.fails(cb, &value))) {
                    Ok(false) => {}
                    Ok(true) => {
                        *this.phase = Phase::Reported;
                        let _ =
                            cb.finish_failure(ticket, FailedValue, &default_view::<FailedValue>);
                    }
                    Err(panic) => {
                        *this.phase = Phase::Reported;
                        cb.fail_with_panic(ticket, panic)
                    }
                }
                Poll::Ready(Some(Ok(value)))
            }
            Some(Ok(value)) => Poll::Ready(Some(Ok(value))),
            Some(Err(e)) => {
                let excluded = catch_unwind(AssertUnwindSafe(|| {
                    cb.excludes(&e, &*this.view, &*this.excluded)
                }));
                match excluded {
                    Ok(true) => Poll::Ready(Some(Err(Error::Inner(e)))),
                    Ok(false) => {
                        *this.phase = Phase::Reported;
                        Poll::Ready(Some(Err(cb.finish_failure(ticket, e, &*this.view))))
                    }
                    Err(panic) => {
                        *this.phase = Phase::Reported;
                        cb.fail_with_panic(ticket, panic)
                    }
                }
            }
        }
    }
}

impl<S, V, X, J> fmt::Debug for GuardedStream<'_, S, V, X, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Waiting => "waiting",
            Phase::Rejected(_) => "rejected",
            Phase::Running(_) => "running",
            Phase::Reported => "reported",
        };
        f.debug_struct("GuardedStream")
            .field("breaker", &self.cb.name())
            .field("phase", &phase)
            .finish_non_exhaustive()
    }
}
