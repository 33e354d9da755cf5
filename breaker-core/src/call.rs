//! Calling through a breaker: `call` for closures, `call_async` for futures.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::pin;

use crate::breaker::{CircuitBreaker, Precheck, Ticket};
use crate::error::Error;
use crate::exclude::container_view;
use crate::listener::Failure;
use crate::state::{Op, Outcome, State};
use crate::storage::Applied;

/// How the breaker sees an error of type `E` as `dyn Error`, to match
/// exclusions along its `source()` chain.
pub type ErrorView<E> = fn(&E) -> Option<&(dyn StdError + 'static)>;

/// The view `call` uses: boxed errors (and `anyhow::Error`) are seen through;
/// other types match exclusions by their own type only.
fn default_view<E: 'static>(e: &E) -> Option<&(dyn StdError + 'static)> {
    container_view(e)
}

impl CircuitBreaker {
    /// Runs `f` through the breaker.
    ///
    /// - Rejected (open, or half-open with the trial place taken): `f` does
    ///   not run; [`Error::Open`].
    /// - `Ok`: a success.
    /// - `Err` of an excluded type: a success, returned as [`Error::Inner`].
    /// - Other `Err`: a failure, returned as [`Error::Inner`], or as
    ///   [`Error::Tripped`] when it opened the circuit and
    ///   `throw_new_error_on_trip` is on.
    /// - Panic: a failure; the panic continues.
    ///
    /// ```
    /// use breaker_core::CircuitBreaker;
    ///
    /// let cb = CircuitBreaker::new("math");
    /// assert_eq!(cb.call(|| "42".parse::<i32>()).unwrap(), 42);
    /// assert!(cb.call(|| "x".parse::<i32>()).is_err());
    /// assert_eq!(cb.fail_counter(), 1);
    /// ```
    #[inline]
    pub fn call<T, E, F>(&self, f: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: fmt::Debug + 'static,
    {
        self.call_with_view(f, default_view::<E>)
    }

    /// [`call`](Self::call), with `view` telling how to see `E` as
    /// `dyn Error` so exclusions match along its `source()` chain.
    ///
    /// ```
    /// use breaker_core::CircuitBreaker;
    /// use std::error::Error;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("invalid input")]
    /// struct Invalid;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("query failed")]
    /// struct QueryError(#[source] Invalid);
    ///
    /// let cb = CircuitBreaker::builder("db").exclude::<Invalid>().build();
    /// let view = |e: &QueryError| Some(e as &(dyn Error + 'static));
    /// let _ = cb.call_with_view(|| Err::<(), _>(QueryError(Invalid)), view);
    /// assert_eq!(cb.fail_counter(), 0);
    /// ```
    #[inline]
    pub fn call_with_view<T, E, F>(&self, f: F, view: ErrorView<E>) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: fmt::Debug + 'static,
    {
        let ticket = match self.precheck() {
            Precheck::Admitted(ticket) => ticket,
            Precheck::Rejected(e) => return Err(Error::Open(e)),
            Precheck::Apply => self.admitted(self.apply(Op::Admit)).map_err(Error::Open)?,
        };
        self.before_call(ticket);
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(value)) => {
                self.on_success(ticket, None);
                Ok(value)
            }
            Ok(Err(error)) => Err(self.on_error(ticket, error, view, None)),
            Err(panic) => {
                self.on_panic(ticket, &*panic, None);
                resume_unwind(panic)
            }
        }
    }

    /// Awaits `fut` through the breaker, with the same outcomes as
    /// [`call`](Self::call). Admission happens when the returned future is
    /// first polled.
    ///
    /// Dropping the returned future before it finishes counts as neither
    /// success nor failure and frees a half-open trial place. It works on any
    /// executor.
    ///
    /// ```
    /// use breaker_core::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cb = CircuitBreaker::new("api");
    /// let body = cb.call_async(async { Ok::<_, std::io::Error>("pong") }).await;
    /// assert_eq!(body.unwrap(), "pong");
    /// # }
    /// ```
    pub async fn call_async<T, E, Fut>(&self, fut: Fut) -> Result<T, Error<E>>
    where
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Debug + 'static,
    {
        self.call_async_with_view(fut, default_view::<E>).await
    }

    /// [`call_async`](Self::call_async) with an [`ErrorView`], as
    /// [`call_with_view`](Self::call_with_view).
    pub async fn call_async_with_view<T, E, Fut>(
        &self,
        fut: Fut,
        view: ErrorView<E>,
    ) -> Result<T, Error<E>>
    where
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Debug + 'static,
    {
        let ticket = match self.precheck() {
            Precheck::Admitted(ticket) => ticket,
            Precheck::Rejected(e) => return Err(Error::Open(e)),
            Precheck::Apply => self
                .admitted(self.apply_async(Op::Admit).await)
                .map_err(Error::Open)?,
        };
        let mut guard = CancelGuard {
            cb: self,
            ticket: Some(ticket),
        };
        self.before_call(ticket);
        let mut fut = pin!(fut);
        let outcome =
            poll_fn(
                |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(poll) => poll.map(Ok),
                    Err(panic) => std::task::Poll::Ready(Err(panic)),
                },
            )
            .await;
        // The guard stays armed until the result is recorded: dropped while
        // the storage records it, the call still frees its trial place.
        match outcome {
            Ok(Ok(value)) => {
                let applied = if self.success_is_news(ticket) {
                    Some(self.apply_async(success_op(ticket)).await)
                } else {
                    None
                };
                guard.ticket = None;
                self.on_success(ticket, Some(applied));
                Ok(value)
            }
            Ok(Err(error)) => {
                let excluded = self.excluded(&error, view);
                let applied = if excluded {
                    self.success_is_news(ticket)
                        .then_some(self.apply_async(success_op(ticket)))
                } else {
                    Some(self.apply_async(failure_op(ticket)))
                };
                let applied = match applied {
                    Some(fut) => Some(fut.await),
                    None => None,
                };
                guard.ticket = None;
                Err(self.on_error(ticket, error, view, Some(applied)))
            }
            Err(panic) => {
                let applied = self.apply_async(failure_op(ticket)).await;
                guard.ticket = None;
                self.on_panic(ticket, &*panic, Some(applied));
                resume_unwind(panic)
            }
        }
    }

    fn before_call(&self, ticket: Ticket) {
        if let Err(panic) = self.each_listener(|l| l.before_call(self)) {
            self.cancel(ticket);
            resume_unwind(panic);
        }
    }

    /// Records a success. `applied` is `Some` when the caller already applied
    /// the operation (the async path), holding `None` if nothing needed it.
    #[inline]
    fn on_success(&self, ticket: Ticket, applied: Option<Option<Applied>>) {
        let applied = match applied {
            Some(applied) => applied,
            None => self
                .success_is_news(ticket)
                .then(|| self.apply(success_op(ticket))),
        };
        if applied.is_none() && !self.listening() {
            return;
        }
        self.success_slow(applied);
    }

    #[cold]
    #[inline(never)]
    fn success_slow(&self, applied: Option<Applied>) {
        let heard = self.each_listener(|l| l.success(self));
        let changed = match &applied {
            Some(applied) => self.after_transition(applied),
            None => Ok(()),
        };
        if let Err(panic) = heard.and(changed) {
            resume_unwind(panic);
        }
    }

    fn excluded<E: 'static>(&self, error: &E, view: ErrorView<E>) -> bool {
        self.is_excluded(error as &dyn Any, view(error))
    }

    #[cold]
    #[inline(never)]
    fn on_error<E>(
        &self,
        ticket: Ticket,
        error: E,
        view: ErrorView<E>,
        applied: Option<Option<Applied>>,
    ) -> Error<E>
    where
        E: fmt::Debug + 'static,
    {
        let as_error = view(&error);
        if self.is_excluded(&error as &dyn Any, as_error) {
            self.on_success(ticket, applied);
            return Error::Inner(error);
        }
        let applied = match applied {
            Some(Some(applied)) => applied,
            _ => self.apply(failure_op(ticket)),
        };
        let heard = self.each_listener(|l| l.failure(self, &Failure::error(&error, as_error)));
        let changed = self.after_transition(&applied);
        if let Err(panic) = heard.and(changed) {
            resume_unwind(panic);
        }
        match applied.outcome {
            Outcome::Counted {
                tripped: Some(reason),
            } if self.throw_new_error_on_trip() => {
                let retry_after = Some(self.reset_timeout());
                Error::Tripped(self.error(State::Open, reason, retry_after), error)
            }
            _ => Error::Inner(error),
        }
    }

    #[cold]
    #[inline(never)]
    fn on_panic(&self, ticket: Ticket, panic: &(dyn Any + Send), applied: Option<Applied>) {
        let applied = applied.unwrap_or_else(|| self.apply(failure_op(ticket)));
        // The guarded function's panic continues; a listener's panic here is
        // dropped rather than replacing it.
        let _ = self.each_listener(|l| l.failure(self, &Failure::panic(panic)));
        let _ = self.after_transition(&applied);
    }
}

fn success_op(ticket: Ticket) -> Op {
    Op::Success {
        generation: ticket.generation,
        trial: ticket.trial,
    }
}

fn failure_op(ticket: Ticket) -> Op {
    Op::Failure {
        generation: ticket.generation,
        trial: ticket.trial,
    }
}

/// Frees the trial place of a `call_async` future dropped before it finished.
struct CancelGuard<'a> {
    cb: &'a CircuitBreaker,
    ticket: Option<Ticket>,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.cb.cancel(ticket);
        }
    }
}
