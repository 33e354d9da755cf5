//! Calling through a breaker: `call` for closures, `call_async` for futures.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::admission::Ticket;
use crate::breaker::CircuitBreaker;
use crate::error::{CircuitBreakerError, Error};
use crate::exclude::{container_view, is_container};
use crate::flags::Path;
use crate::future::GuardedFuture;
use crate::inspect::{is_slow, ByBreaker, FailedValue, Judge, Timed};

/// How the breaker sees an error of type `E` as `dyn Error`, to match
/// exclusions along its `source()` chain.
pub type ErrorView<E> = fn(&E) -> Option<&(dyn StdError + 'static)>;

/// The view `call` uses: boxed errors, `io::Error` (and `anyhow::Error`) are
/// seen through; other types match exclusions by their own type only.
#[inline(always)]
pub(crate) fn default_view<E: 'static>(e: &E) -> Option<&(dyn StdError + 'static)> {
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
    /// Excluded types are searched for in boxed errors, `io::Error` (and
    /// `anyhow::Error` with the `anyhow` feature) and their `source()`
    /// chains; any other error type is matched as itself only (use
    /// [`call_with_view`](Self::call_with_view) to search its chain). In
    /// debug builds, a failure that may hold an excluded type out of reach
    /// gives a [`hint`](crate::hint) saying so, once per breaker and type.
    ///
    /// ```
    /// use breaker::CircuitBreaker;
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
        T: 'static,
        E: fmt::Debug + 'static,
    {
        self.run(f, &default_view::<E>, &no_site_exclusions::<E>, &ByBreaker)
    }

    /// [`call`](Self::call), with `view` telling how to see `E` as
    /// `dyn Error` so exclusions match along its `source()` chain.
    ///
    /// `call` sees through boxed errors by itself; a concrete error type needs
    /// this (the `#[circuit_breaker]` attribute does it for you).
    ///
    /// ```
    /// use breaker::CircuitBreaker;
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
        T: 'static,
        E: fmt::Debug + 'static,
    {
        self.run(f, &view, &no_site_exclusions::<E>, &ByBreaker)
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
    /// use breaker::CircuitBreaker;
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
        T: 'static,
        E: fmt::Debug + 'static,
    {
        GuardedFuture::new(
            self,
            fut,
            default_view::<E>,
            no_site_exclusions::<E>,
            ByBreaker,
        )
    }

    /// Runs a whole stream of `Result`s through the breaker as one call, as
    /// the attribute guards a function returning `impl Stream`: admitted on
    /// its first poll, failed by its first `Err` item that is not excluded
    /// (or a panic while it is polled), succeeded by reaching its end, and
    /// neither if dropped before either (a half-open trial place it held is
    /// given back).
    ///
    /// Items are `Result<T, Error<E>>`: a rejected call yields one
    /// [`Error::Open`] and ends; the failing item is [`Error::Tripped`] when
    /// it opened the circuit (with `throw_new_error_on_trip` on), else
    /// [`Error::Inner`], as are excluded errors and every item after the
    /// result was recorded. Exclusions are searched as [`call`](Self::call)
    /// searches them.
    ///
    /// ```
    /// use breaker::{CircuitBreaker, Error};
    /// use std::future::poll_fn;
    /// use std::pin::pin;
    /// use futures_core::Stream;
    ///
    /// /// Three pages, the last one failing.
    /// struct Pages(u32);
    /// impl Stream for Pages {
    ///     type Item = Result<u32, &'static str>;
    ///     fn poll_next(
    ///         mut self: std::pin::Pin<&mut Self>,
    ///         _: &mut std::task::Context<'_>,
    ///     ) -> std::task::Poll<Option<Self::Item>> {
    ///         self.0 += 1;
    ///         std::task::Poll::Ready(match self.0 {
    ///             1 | 2 => Some(Ok(self.0)),
    ///             3 => Some(Err("page 3: timeout")),
    ///             _ => None,
    ///         })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cb = CircuitBreaker::builder("pages").fail_max(1).build();
    /// let mut pages = pin!(cb.call_stream(Pages(0)));
    /// let mut seen = Vec::new();
    /// while let Some(page) = poll_fn(|cx| pages.as_mut().poll_next(cx)).await {
    ///     seen.push(page);
    /// }
    /// assert!(matches!(seen[..], [Ok(1), Ok(2), Err(Error::Tripped(_, "page 3: timeout"))]));
    /// assert!(cb.call(|| Ok::<_, ()>(())).unwrap_err().is_open());
    /// # }
    /// ```
    pub fn call_stream<T, E, S>(
        &self,
        stream: S,
    ) -> impl futures_core::Stream<Item = Result<T, Error<E>>> + use<'_, T, E, S>
    where
        S: futures_core::Stream<Item = Result<T, E>>,
        T: 'static,
        E: fmt::Debug + 'static,
    {
        crate::stream::GuardedStream::lazy(
            self,
            stream,
            default_view::<E>,
            no_site_exclusions::<E>,
            ByBreaker,
        )
    }

    /// [`call_async`](Self::call_async) with an [`ErrorView`], as
    /// [`call_with_view`](Self::call_with_view).
    ///
    /// ```
    /// use breaker::CircuitBreaker;
    /// use std::error::Error;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("invalid input")]
    /// struct Invalid;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("request failed")]
    /// struct RequestError(#[source] Invalid);
    ///
    /// fn view(e: &RequestError) -> Option<&(dyn Error + 'static)> {
    ///     Some(e)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cb = CircuitBreaker::builder("api").exclude::<Invalid>().build();
    /// let result = cb
    ///     .call_async_with_view(async { Err::<(), _>(RequestError(Invalid)) }, view)
    ///     .await;
    /// assert!(result.is_err());
    /// assert_eq!(cb.fail_counter(), 0); // `Invalid` was found in the source chain
    /// # }
    /// ```
    #[inline]
    pub fn call_async_with_view<T, E, Fut>(
        &self,
        fut: Fut,
        view: ErrorView<E>,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, Fut>
    where
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: fmt::Debug + 'static,
    {
        GuardedFuture::new(self, fut, view, no_site_exclusions::<E>, ByBreaker)
    }

    /// [`call`](Self::call), with `fallback` giving the value of a rejected
    /// call: `f` does not run, nothing is recorded, and `Ok(fallback(e))`
    /// is returned instead of [`Error::Open`]. Every other outcome is
    /// `call`'s.
    ///
    /// ```
    /// use breaker::CircuitBreaker;
    ///
    /// let cb = CircuitBreaker::builder("prices").fail_max(1).build();
    /// let _ = cb.call(|| Err::<u32, _>("down"));
    /// let price = cb.call_or_else(|| Ok::<u32, &str>(42), |_rejected| 0);
    /// assert_eq!(price.unwrap(), 0); // the cached or default value
    /// ```
    #[inline]
    pub fn call_or_else<T, E, F, G>(&self, f: F, fallback: G) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        G: FnOnce(CircuitBreakerError) -> T,
        T: 'static,
        E: fmt::Debug + 'static,
    {
        match self.call(f) {
            Err(Error::Open(rejected)) => Ok(fallback(rejected)),
            other => other,
        }
    }

    /// [`call_async`](Self::call_async), with `fallback` making the future
    /// of a rejected call's value, as [`call_or_else`](Self::call_or_else).
    ///
    /// ```
    /// use breaker::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cb = CircuitBreaker::builder("prices").fail_max(1).build();
    /// let _ = cb.call_async(async { Err::<u32, _>("down") }).await;
    /// let price = cb
    ///     .call_async_or_else(async { Ok::<u32, &str>(42) }, |_rejected| async { 0 })
    ///     .await;
    /// assert_eq!(price.unwrap(), 0);
    /// # }
    /// ```
    #[inline]
    pub fn call_async_or_else<T, E, Fut, G, FB>(
        &self,
        fut: Fut,
        fallback: G,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, Fut, G, FB>
    where
        Fut: Future<Output = Result<T, E>>,
        G: FnOnce(CircuitBreakerError) -> FB,
        FB: Future<Output = T>,
        T: 'static,
        E: fmt::Debug + 'static,
    {
        let guarded = self.call_async(fut);
        async move {
            match guarded.await {
                Err(Error::Open(rejected)) => Ok(fallback(rejected).await),
                other => other,
            }
        }
    }

    /// The engine of `call`: `view` sees `E` as `dyn Error`, `site_excluded`
    /// adds exclusions of the call site (the attribute's) to the breaker's,
    /// `judge` says which `Ok` values are failures (`inspect.rs`). A breaker
    /// that inspects its calls (or a call site that judges) is told apart
    /// before admission, so the plain path is the one it always was.
    ///
    /// The flag word is read once, here (`flags.rs`). A call admitted on
    /// the hot path (closed, memory storage: never the trial) runs inline;
    /// one admitted otherwise (a trial, a custom storage) runs out of line,
    /// so the hot path holds no trial flag across `f`.
    #[inline]
    pub(crate) fn run<T, E, F, V, X, J>(
        &self,
        f: F,
        view: &V,
        site_excluded: &X,
        judge: &J,
    ) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
        J: Judge<T>,
    {
        let path = self.path();
        if J::AT_SITE || path.inspected() {
            return self.run_inspected(f, view, site_excluded, judge);
        }
        match self.closed_ticket() {
            Some(ticket) => self.run_admitted(path, ticket, f, view, site_excluded),
            None => match self.admit_slow() {
                Ok(ticket) => self.run_admitted_elsewhere(path, ticket, f, view, site_excluded),
                Err(rejected) => Err(Error::Open(rejected)),
            },
        }
    }

    /// [`run_admitted`](Self::run_admitted) out of line, for a call
    /// admitted off the hot path.
    #[cold]
    #[inline(never)]
    fn run_admitted_elsewhere<T, E, F, V, X>(
        &self,
        path: Path,
        ticket: Ticket,
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
        self.run_admitted(path, ticket, f, view, site_excluded)
    }

    /// Runs `f`, admitted with `ticket`, for a call that read `path`.
    #[inline(always)]
    fn run_admitted<T, E, F, V, X>(
        &self,
        path: Path,
        ticket: Ticket,
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
        self.before_call_on(path, ticket);
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(value)) => {
                self.finish_ok_on(path.windowed_by(self.path()), ticket);
                Ok(value)
            }
            Ok(Err(error)) => Err(self.finish_err(ticket, error, view, site_excluded)),
            Err(panic) => self.fail_with_panic(ticket, panic),
        }
    }

    /// `run` for a breaker that inspects its calls: timed, and judged.
    #[cold]
    #[inline(never)]
    fn run_inspected<T, E, F, V, X, J>(
        &self,
        f: F,
        view: &V,
        site_excluded: &X,
        judge: &J,
    ) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
        J: Judge<T>,
    {
        let ticket = self.admit().map_err(Error::Open)?;
        self.before_call(ticket);
        let started = self.start();
        let result = catch_unwind(AssertUnwindSafe(f));
        let timed = self.stop(started);
        self.complete(ticket, result, timed, view, site_excluded, judge)
    }

    /// Records and reports the result of an inspected call: an `Ok` that
    /// `judge` accepts is a failure (and still returned), and the listeners
    /// hear how long the call took once its result is reported.
    #[cold]
    #[inline(never)]
    pub(crate) fn complete<T, E, V, X, J>(
        &self,
        ticket: Ticket,
        result: std::thread::Result<Result<T, E>>,
        timed: Option<Timed>,
        view: &V,
        site_excluded: &X,
        judge: &J,
    ) -> Result<T, Error<E>>
    where
        E: fmt::Debug + 'static,
        V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
        X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
        J: Judge<T>,
    {
        let slow = is_slow(timed);
        let output = match result {
            Ok(Ok(value)) => match catch_unwind(AssertUnwindSafe(|| judge.fails(self, &value))) {
                Ok(false) => {
                    self.finish_ok_as(ticket, slow);
                    Ok(value)
                }
                Ok(true) => {
                    let view = &default_view::<FailedValue>;
                    let _ = self.finish_failure_as(ticket, FailedValue, view, slow);
                    Ok(value)
                }
                Err(panic) => self.fail_inspected_with_panic(ticket, panic, timed),
            },
            Ok(Err(error)) => Err(self.finish_err_as(ticket, error, view, site_excluded, slow)),
            Err(panic) => self.fail_inspected_with_panic(ticket, panic, timed),
        };
        self.tell_duration(timed);
        output
    }
}
