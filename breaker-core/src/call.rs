//! Calling through a breaker: `call` for closures, `call_async` for futures.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::breaker::{CircuitBreaker, Panic, Precheck, Recorded, Ticket};
use crate::error::{CircuitBreakerError, Error};
use crate::exclude::{container_view, is_container};
use crate::future::GuardedFuture;
use crate::listener::Failure;
use crate::state::{Op, Outcome, State};

/// How the breaker sees an error of type `E` as `dyn Error`, to match
/// exclusions along its `source()` chain.
pub type ErrorView<E> = fn(&E) -> Option<&(dyn StdError + 'static)>;

/// The view `call` uses: boxed errors, `io::Error` (and `anyhow::Error`) are
/// seen through; other types match exclusions by their own type only.
#[inline(always)]
fn default_view<E: 'static>(e: &E) -> Option<&(dyn StdError + 'static)> {
    match is_container::<E>() {
        true => container_view(e),
        false => None,
    }
}

/// No exclusions beyond the breaker's own.
pub(crate) fn no_site_exclusions<E>(_: &E, _: Option<&(dyn StdError + 'static)>) -> bool {
    false
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
        self.run(f, &default_view::<E>, &no_site_exclusions::<E>)
    }

    /// [`call`](Self::call), with `view` telling how to see `E` as
    /// `dyn Error` so exclusions match along its `source()` chain.
    ///
    /// `call` sees through boxed errors by itself; a concrete error type needs
    /// this (the `#[circuit_breaker]` attribute does it for you).
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
    /// fn view(e: &QueryError) -> Option<&(dyn Error + 'static)> {
    ///     Some(e)
    /// }
    /// let _ = cb.call_with_view(|| Err::<(), _>(QueryError(Invalid)), view);
    /// assert_eq!(cb.fail_counter(), 0);
    /// ```
    #[inline]
    pub fn call_with_view<T, E, F>(&self, f: F, view: ErrorView<E>) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: fmt::Debug + 'static,
    {
        self.run(f, &view, &no_site_exclusions::<E>)
    }

    /// Awaits `fut` through the breaker, with the same outcomes as
    /// [`call`](Self::call). Admission happens when the returned future is
    /// first polled.
    ///
    /// Dropping the returned future before it finishes counts as neither
    /// success nor failure and frees a half-open trial place. It needs no
    /// particular executor, and on the default in-memory storage it awaits
    /// nothing but `fut`: it is `Send` when `fut` is, and costs what
    /// [`call`](Self::call) costs.
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
    #[inline]
    pub fn call_async<T, E, Fut>(
        &self,
        fut: Fut,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, Fut>
    where
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Debug + 'static,
    {
        GuardedFuture::new(self, fut, default_view::<E>, no_site_exclusions::<E>)
    }

    /// [`call_async`](Self::call_async) with an [`ErrorView`], as
    /// [`call_with_view`](Self::call_with_view).
    #[inline]
    pub fn call_async_with_view<T, E, Fut>(
        &self,
        fut: Fut,
        view: ErrorView<E>,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, Fut>
    where
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Debug + 'static,
    {
        GuardedFuture::new(self, fut, view, no_site_exclusions::<E>)
    }

    /// The engine of `call`: `view` sees `E` as `dyn Error`, `site_excluded`
    /// adds exclusions of the call site (the attribute's) to the breaker's.
    #[inline]
    pub(crate) fn run<T, E, F, V, X>(
        &self,
        f: F,
        view: &V,
        site_excluded: &X,
    ) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    {
        let ticket = self.admit().map_err(Error::Open)?;
        self.before_call(ticket);
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(value)) => {
                self.finish_ok(ticket);
                Ok(value)
            }
            Ok(Err(error)) => Err(self.finish_err(ticket, error, view, site_excluded)),
            Err(panic) => self.fail_with_panic(ticket, panic),
        }
    }

    /// Admission for a call: the hot path is one atomic load.
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
    fn admit_slow(&self) -> Result<Ticket, CircuitBreakerError> {
        if let Some(ticket) = self.custom_closed_ticket() {
            return Ok(ticket);
        }
        if let Some(retry_nanos) = self.open_rejection() {
            return Err(self.open_error(retry_nanos));
        }
        self.admit_slower()
    }

    #[cold]
    #[inline(never)]
    fn admit_slower(&self) -> Result<Ticket, CircuitBreakerError> {
        match self.precheck_slow() {
            Precheck::Admitted(ticket) => Ok(ticket),
            Precheck::Rejected(e) => Err(e),
            Precheck::Apply => self.admitted(self.apply(Op::Admit)),
        }
    }

    #[inline(always)]
    pub(crate) fn before_call(&self, ticket: Ticket) {
        if self.listening() {
            self.before_call_slow(ticket);
        }
    }

    #[cold]
    #[inline(never)]
    fn before_call_slow(&self, ticket: Ticket) {
        if let Err(panic) = self.each_listener(|l| l.before_call(self)) {
            self.cancel(ticket);
            resume_unwind(panic);
        }
    }

    /// Records a success: on the hot path, one atomic load and nothing else.
    #[inline(always)]
    pub(crate) fn finish_ok(&self, ticket: Ticket) {
        if self.success_is_news(ticket) || self.listening() {
            self.finish_ok_slow(ticket);
        }
    }

    #[cold]
    #[inline(never)]
    fn finish_ok_slow(&self, ticket: Ticket) {
        let applied = self
            .success_is_news(ticket)
            .then(|| self.apply(success_op(ticket)));
        self.report_success(applied);
    }

    /// Records a panic as the failure of the call admitted with `ticket`,
    /// then continues the panic.
    #[cold]
    #[inline(never)]
    pub(crate) fn fail_with_panic(&self, ticket: Ticket, panic: Panic) -> ! {
        let recorded = self.apply(failure_op(ticket));
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
            self.finish_ok_slow(ticket);
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
        E: 'static,
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
        let recorded = self.apply(failure_op(ticket));
        self.report_failure(error, view, recorded)
    }

    /// Whether the breaker's exclusions or the call site's exclude `error`.
    pub(crate) fn excludes<E, V, X>(&self, error: &E, view: &V, site_excluded: &X) -> bool
    where
        E: 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    {
        let as_error = view(error);
        site_excluded(error, as_error) || self.is_excluded(error as &dyn Any, as_error)
    }

    /// Tells listeners of a success and of the transition it made.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_success(&self, recorded: Option<Recorded>) {
        let heard = self.each_listener(|l| l.success(self));
        let changed = match recorded {
            Some(recorded) => self.announce(recorded).1,
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
        let heard = self.each_listener(|l| l.failure(self, &Failure::error(&error, view(&error))));
        let (applied, changed) = self.announce(recorded);
        if let Err(panic) = heard.and(changed) {
            resume_unwind(panic);
        }
        match applied.outcome {
            Outcome::Counted {
                tripped: Some(reason),
            } if self.throw_new_error_on_trip() => {
                // From the `opened_at` this failure stamped (rounded up to the
                // millisecond), so waiting this long does admit the next trial.
                let retry_after = applied
                    .after
                    .retry_after(self.reset_timeout(), self.now())
                    .or(Some(self.reset_timeout()));
                Error::Tripped(self.error(State::Open, reason, retry_after), error)
            }
            _ => Error::Inner(error),
        }
    }

    /// Tells listeners of a panic and its transition. The guarded function's
    /// panic continues, so a listener's panic here is dropped.
    pub(crate) fn report_panic(&self, panic: &(dyn Any + Send), recorded: Recorded) {
        let _ = self.each_listener(|l| l.failure(self, &Failure::panic(panic)));
        let _ = self.announce(recorded);
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
