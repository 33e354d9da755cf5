//! Calling through a breaker: `call` for closures, `call_async` for futures.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::breaker::CircuitBreaker;
use crate::error::{CircuitBreakerError, Error};
use crate::exclude::{container_view, is_container};
use crate::future::GuardedFuture;

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
        E: fmt::Debug + 'static,
    {
        GuardedFuture::new(self, fut, default_view::<E>, no_site_exclusions::<E>)
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
        E: fmt::Debug + 'static,
    {
        GuardedFuture::new(self, fut, view, no_site_exclusions::<E>)
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
}
