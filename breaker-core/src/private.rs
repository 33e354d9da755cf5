//! Not public API. Referenced by code that `#[circuit_breaker]` generates;
//! may change in any release.
//!
//! Each annotated function expands to a [`Declaration`] (its settings, made
//! at compile time), registered at link time through `inventory`, and a
//! [`Site`] static that resolves the declared breaker once (all owned by the
//! registry); every call then goes through [`call`], [`call_async`] or
//! [`iter`].
//!
//! A function with a `fail_if = |r: &T| ..` key goes through the `_judged`
//! forms ([`call_judged`], [`call_async_judged`], [`run_judged`],
//! [`run_async_judged`], [`stream_judged`]), which take the predicate typed
//! against the function's `Ok` type, so borrowed returns (`Result<&u64, E>`)
//! are judged too. The forms without it pass a zero-sized judge that
//! accepts nothing and compiles away. (The breaker's own `fail_if`, from
//! its builder, is applied by the public call family only: it needs a
//! `'static` value type.)

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

pub use inventory;

pub use crate::autoref::{
    as_any, predicate, Check, CheckAny, CheckError, CheckSame, Excludable, Probe, ProbeAny,
    ProbeError, ViewAny, ViewAsRef, ViewError, Wrap,
};
pub use crate::builder::CircuitBreakerBuilder as Builder;
pub use crate::inspect::{AtSite, Judge, Unjudged};
pub use crate::iter::{GuardedIter, Held};
pub use crate::registry::declared::{Configure, Declaration, KeyedSite, Registration, Site};
pub use crate::state::Backoff;
pub use crate::stream::GuardedStream;

use crate::breaker::CircuitBreaker;
use crate::error::{CircuitBreakerError, Error};
use crate::future::GuardedFuture;

use pin_project_lite::pin_project;

/// Calls `body` through `cb`, converting the breaker's errors into `E`.
#[inline(always)]
pub fn call<T, E, F, V, X>(cb: &CircuitBreaker, body: F, view: V, excluded: X) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
{
    cb.run(body, &view, &excluded, &Unjudged)
        .map_err(into_user_error)
}

/// [`call`] with the function's `fail_if`: an `Ok` value `judge` accepts is
/// recorded as a failure and still returned.
#[inline(always)]
pub fn call_judged<T, E, F, V, X, J>(
    cb: &CircuitBreaker,
    body: F,
    view: V,
    excluded: X,
    judge: J,
) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    J: Fn(&T) -> bool,
{
    cb.run(body, &view, &excluded, &AtSite(judge))
        .map_err(into_user_error)
}

/// Awaits `body` through `cb`, converting the breaker's errors into `E`.
#[inline]
pub fn call_async<'cb, T, E, Fut, V, X>(
    cb: &'cb CircuitBreaker,
    body: Fut,
    view: V,
    excluded: X,
) -> impl Future<Output = Result<T, E>> + use<'cb, T, E, Fut, V, X>
where
    Fut: Future<Output = Result<T, E>>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
{
    IntoUserError {
        inner: GuardedFuture::new(cb, body, view, excluded, Unjudged),
    }
}

/// [`call_async`] with the function's `fail_if`, as [`call_judged`].
#[inline]
pub fn call_async_judged<'cb, T, E, Fut, V, X, J>(
    cb: &'cb CircuitBreaker,
    body: Fut,
    view: V,
    excluded: X,
    judge: J,
) -> impl Future<Output = Result<T, E>> + use<'cb, T, E, Fut, V, X, J>
where
    Fut: Future<Output = Result<T, E>>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    J: Fn(&T) -> bool,
{
    IntoUserError {
        inner: GuardedFuture::new(cb, body, view, excluded, AtSite(judge)),
    }
}

/// [`call`] for a function with a `fallback`: `Err` is the rejection, for
/// the generated code to call the fallback with the function's arguments.
#[inline(always)]
pub fn run<T, E, F, V, X>(
    cb: &CircuitBreaker,
    body: F,
    view: V,
    excluded: X,
) -> Result<Result<T, E>, CircuitBreakerError>
where
    F: FnOnce() -> Result<T, E>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
{
    match cb.run(body, &view, &excluded, &Unjudged) {
        Err(Error::Open(rejected)) => Err(rejected),
        other => Ok(other.map_err(into_user_error)),
    }
}

/// [`run`] with the function's `fail_if`, as [`call_judged`].
#[inline(always)]
pub fn run_judged<T, E, F, V, X, J>(
    cb: &CircuitBreaker,
    body: F,
    view: V,
    excluded: X,
    judge: J,
) -> Result<Result<T, E>, CircuitBreakerError>
where
    F: FnOnce() -> Result<T, E>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    J: Fn(&T) -> bool,
{
    match cb.run(body, &view, &excluded, &AtSite(judge)) {
        Err(Error::Open(rejected)) => Err(rejected),
        other => Ok(other.map_err(into_user_error)),
    }
}

/// [`call_async`] for a function with a `fallback`, as [`run`].
#[inline]
pub fn run_async<'cb, T, E, Fut, V, X>(
    cb: &'cb CircuitBreaker,
    body: Fut,
    view: V,
    excluded: X,
) -> impl Future<Output = Result<Result<T, E>, CircuitBreakerError>> + use<'cb, T, E, Fut, V, X>
where
    Fut: Future<Output = Result<T, E>>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
{
    let guarded = GuardedFuture::new(cb, body, view, excluded, Unjudged);
    async move {
        match guarded.await {
            Err(Error::Open(rejected)) => Err(rejected),
            other => Ok(other.map_err(into_user_error)),
        }
    }
}

/// [`run_async`] with the function's `fail_if`, as [`call_judged`].
#[inline]
pub fn run_async_judged<'cb, T, E, Fut, V, X, J>(
    cb: &'cb CircuitBreaker,
    body: Fut,
    view: V,
    excluded: X,
    judge: J,
) -> impl Future<Output = Result<Result<T, E>, CircuitBreakerError>> + use<'cb, T, E, Fut, V, X, J>
where
    Fut: Future<Output = Result<T, E>>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    J: Fn(&T) -> bool,
{
    let guarded = GuardedFuture::new(cb, body, view, excluded, AtSite(judge));
    async move {
        match guarded.await {
            Err(Error::Open(rejected)) => Err(rejected),
            other => Ok(other.map_err(into_user_error)),
        }
    }
}

/// Typed identity: `future`, whose output is `O` (named by the function's
/// return type).
#[inline(always)]
pub fn future_of<O, F: Future<Output = O>>(future: F) -> F {
    future
}

/// `Box::pin`, for a function returning `Pin<Box<dyn Future<..>>>`.
#[inline(always)]
pub fn pin_box<F>(future: F) -> Pin<Box<F>> {
    Box::pin(future)
}

/// The function's arguments, kept for its body or its fallback, whichever
/// runs (exactly one does).
#[inline(always)]
pub fn take<A>(slot: &mut Option<A>) -> A {
    match slot.take() {
        Some(args) => args,
        None => unreachable!("the body or the fallback takes the arguments, once"),
    }
}

pin_project! {
    /// The future of [`call_async`]: the breaker's errors turned into the
    /// function's own error type.
    struct IntoUserError<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for IntoUserError<F>
where
    F: Future<Output = Result<T, Error<E>>>,
    E: FromBreakerError,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map(|r| r.map_err(into_user_error))
    }
}

/// Runs `body` (which makes an iterator) as one guarded call, through a
/// declared breaker (`&'static`) or a key's (an owned handle).
pub fn iter<B, I, T, E, F, V, X>(
    cb: B,
    item: PhantomData<Result<T, E>>,
    body: F,
    view: V,
    excluded: X,
) -> GuardedIter<'static, I::IntoIter, V, X>
where
    B: Into<Held<'static>>,
    F: FnOnce() -> I,
    I: IntoIterator<Item = Result<T, E>>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
{
    let _ = item;
    let cb: Held<'static> = cb.into();
    match cb.admit() {
        Err(rejected) => GuardedIter::rejected(cb, rejected, view, excluded),
        Ok(ticket) => {
            cb.before_call(ticket);
            // A body that panics before it returns the iterator fails the call.
            let inner = catch_unwind(AssertUnwindSafe(|| body().into_iter()))
                .unwrap_or_else(|panic| cb.fail_with_panic(ticket, panic));
            GuardedIter::running(cb, inner, ticket, view, excluded)
        }
    }
}

pin_project! {
    /// A guarded stream of the attribute: its errors are the function's own
    /// type (`E::from(CircuitBreakerError)` for the breaker's).
    pub struct UserStream<S> {
        #[pin]
        inner: S,
    }
}

impl<S, T, E> futures_core::Stream for UserStream<S>
where
    S: futures_core::Stream<Item = Result<T, Error<E>>>,
    E: From<CircuitBreakerError>,
{
    type Item = Result<T, E>;

    #[inline]
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.project()
            .inner
            .poll_next(cx)
            .map(|item| item.map(|r| r.map_err(into_user_error)))
    }
}

/// Runs `body` (which makes a stream) as one guarded call, admitted now,
/// through a declared breaker (`&'static`) or a key's (an owned handle).
pub fn stream<B, S, T, E, F, V, X>(
    cb: B,
    item: PhantomData<Result<T, E>>,
    body: F,
    view: V,
    excluded: X,
) -> UserStream<GuardedStream<'static, S, V, X>>
where
    B: Into<Held<'static>>,
    F: FnOnce() -> S,
    S: futures_core::Stream<Item = Result<T, E>>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
{
    let _ = item;
    UserStream {
        inner: guarded_stream(cb.into(), body, view, excluded, Unjudged),
    }
}

/// [`stream`] with the function's `fail_if`: the first `Ok` item `judge`
/// accepts fails the call (and is still yielded).
pub fn stream_judged<B, S, T, E, F, V, X, J>(
    cb: B,
    item: PhantomData<Result<T, E>>,
    body: F,
    view: V,
    excluded: X,
    judge: J,
) -> UserStream<GuardedStream<'static, S, V, X, AtSite<J>>>
where
    B: Into<Held<'static>>,
    F: FnOnce() -> S,
    S: futures_core::Stream<Item = Result<T, E>>,
    E: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    J: Fn(&T) -> bool,
{
    let _ = item;
    UserStream {
        inner: guarded_stream(cb.into(), body, view, excluded, AtSite(judge)),
    }
}

/// `body`'s stream, admitted now.
fn guarded_stream<S, F, V, X, J>(
    cb: Held<'static>,
    body: F,
    view: V,
    excluded: X,
    judge: J,
) -> GuardedStream<'static, S, V, X, J>
where
    F: FnOnce() -> S,
{
    match cb.admit() {
        Err(rejected) => GuardedStream::rejected(cb, rejected, view, excluded, judge),
        Ok(ticket) => {
            cb.before_call(ticket);
            // A body that panics before it returns the stream fails the call.
            let stream = catch_unwind(AssertUnwindSafe(body))
                .unwrap_or_else(|panic| cb.fail_with_panic(ticket, panic));
            GuardedStream::running(cb, stream, ticket, view, excluded, judge)
        }
    }
}

/// Runs `body` (which makes `Result<iterator, E2>`) as one guarded call: an
/// outer `Err` is the call's result; an `Ok` iterator carries the call on.
#[allow(clippy::too_many_arguments)]
pub fn iter_in_result<B, I, T, E, E2, F, V, X, V2, X2>(
    cb: B,
    item: PhantomData<Result<T, E>>,
    body: F,
    view: V,
    excluded: X,
    outer_view: V2,
    outer_excluded: X2,
) -> Result<GuardedIter<'static, I::IntoIter, V, X>, E2>
where
    B: Into<Held<'static>>,
    F: FnOnce() -> Result<I, E2>,
    I: IntoIterator<Item = Result<T, E>>,
    E: FromBreakerError,
    E2: FromBreakerError,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    V2: Fn(&E2) -> Option<&(dyn StdError + 'static)>,
    X2: Fn(&E2, Option<&(dyn StdError + 'static)>) -> bool,
{
    let _ = item;
    let cb: Held<'static> = cb.into();
    let ticket = cb.admit().map_err(E2::from)?;
    cb.before_call(ticket);
    // A body that panics before it returns the iterator fails the call.
    let made = catch_unwind(AssertUnwindSafe(|| body().map(IntoIterator::into_iter)))
        .unwrap_or_else(|panic| cb.fail_with_panic(ticket, panic));
    match made {
        Ok(inner) => Ok(GuardedIter::running(cb, inner, ticket, view, excluded)),
        Err(error) => Err(into_user_error(cb.finish_err(
            ticket,
            error,
            &outer_view,
            &outer_excluded,
        ))),
    }
}

/// Whether hints are given (debug builds of `breaker`), so generated code
/// spends nothing on them otherwise.
pub const HINTS: bool = cfg!(debug_assertions);

/// An exclusion of the attribute (`excluded`, as written) whose type `T` is
/// not in the failing `error`: a hint, when one can tell why.
#[cold]
pub fn exclusion_missed<E: fmt::Debug + 'static, T: 'static>(
    cb: &CircuitBreaker,
    error: &E,
    chain: Option<&(dyn StdError + 'static)>,
    excluded: &str,
) {
    crate::hint::missed(
        cb.shared.name.as_str(),
        error,
        chain,
        excluded,
        std::any::TypeId::of::<T>(),
    );
}

fn into_user_error<E: From<CircuitBreakerError>>(e: Error<E>) -> E {
    match e {
        Error::Open(cbe) | Error::Tripped(cbe, _) => E::from(cbe),
        Error::Inner(e) => e,
    }
}

/// The error type of a guarded function: it must be able to carry the
/// breaker's own error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry the circuit breaker's error",
    label = "the error type of a `#[circuit_breaker]` function",
    note = "add `impl From<breaker::CircuitBreakerError> for {Self}` (or a `#[from] breaker::CircuitBreakerError` variant with thiserror) so rejected calls can return it",
    note = "if `{Self}` is not a type of your crate (the orphan rule forbids that impl), return an error type of your own that wraps it and `breaker::CircuitBreakerError`, or `anyhow::Error`"
)]
pub trait FromBreakerError: From<CircuitBreakerError> + fmt::Debug + 'static {}

impl<E: From<CircuitBreakerError> + fmt::Debug + 'static> FromBreakerError for E {}
