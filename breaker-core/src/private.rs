//! Not public API. Referenced by code that `#[circuit_breaker]` generates;
//! may change in any release.
//!
//! Each annotated function expands to a [`Declaration`] (its settings, made
//! at compile time), registered at link time through `inventory`, and a
//! [`Site`] static that resolves the declared breaker once (all owned by the
//! registry); every call then goes through [`call`], [`call_async`] or
//! [`iter`].
//!
//! Each of [`call`], [`call_async`], [`run`] and [`run_async`] takes a
//! judge: a function with a `fail_if = |r: &T| ..` key passes its
//! predicate, typed against the function's `Ok` type, through
//! [`fail_if`] (so borrowed returns, `Result<&u64, E>`, are judged too);
//! one without passes [`Unjudged`], which accepts nothing and compiles
//! away. (The breaker's own `fail_if`, from
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
pub use crate::state::{Backoff, WindowShape};
pub use crate::stream::GuardedStream;

use crate::breaker::CircuitBreaker;
use crate::error::{CircuitBreakerError, Error};
use crate::future::GuardedFuture;

use pin_project_lite::pin_project;

/// Calls `body` through `cb`, converting the breaker's errors into `E` with
/// `convert` (the generated code's `FromBreakerError` conversion, spanned at
/// the function's error type, so a missing `From` is reported there alone).
#[inline(always)]
pub fn call<T, E, F, V, X, C, J>(
    cb: &CircuitBreaker,
    body: F,
    view: V,
    excluded: X,
    convert: C,
    judge: J,
) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E>,
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    C: Fn(CircuitBreakerError) -> E,
    J: Judge<T>,
{
    cb.run(body, &view, &excluded, &judge)
        .map_err(|e| into_user_error(e, &convert))
}

/// Awaits `body` through `cb`, converting the breaker's errors into `E`.
#[inline]
pub fn call_async<'cb, T, E, Fut, V, X, C, J>(
    cb: &'cb CircuitBreaker,
    body: Fut,
    view: V,
    excluded: X,
    convert: C,
    judge: J,
) -> impl Future<Output = Result<T, E>> + use<'cb, T, E, Fut, V, X, C, J>
where
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    C: Fn(CircuitBreakerError) -> E,
    J: Judge<T>,
{
    IntoUserError {
        inner: GuardedFuture::new(cb, body, view, excluded, judge),
        convert,
    }
}

/// [`call`] for a function with a `fallback`: `Err` is the rejection, for
/// the generated code to call the fallback with the function's arguments.
#[inline(always)]
pub fn run<T, E, F, V, X, C, J>(
    cb: &CircuitBreaker,
    body: F,
    view: V,
    excluded: X,
    convert: C,
    judge: J,
) -> Result<Result<T, E>, CircuitBreakerError>
where
    F: FnOnce() -> Result<T, E>,
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    C: Fn(CircuitBreakerError) -> E,
    J: Judge<T>,
{
    match cb.run(body, &view, &excluded, &judge) {
        Err(Error::Open(rejected)) => Err(rejected),
        other => Ok(other.map_err(|e| into_user_error(e, &convert))),
    }
}

/// [`call_async`] for a function with a `fallback`, as [`run`].
#[inline]
pub fn run_async<'cb, T, E, Fut, V, X, C, J>(
    cb: &'cb CircuitBreaker,
    body: Fut,
    view: V,
    excluded: X,
    convert: C,
    judge: J,
) -> impl Future<Output = Result<Result<T, E>, CircuitBreakerError>> + use<'cb, T, E, Fut, V, X, C, J>
where
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    C: Fn(CircuitBreakerError) -> E,
    J: Judge<T>,
{
    let guarded = GuardedFuture::new(cb, body, view, excluded, judge);
    async move {
        match guarded.await {
            Err(Error::Open(rejected)) => Err(rejected),
            other => Ok(other.map_err(|e| into_user_error(e, &convert))),
        }
    }
}

/// The attribute's `fail_if` predicate as the shims' judge: an `Ok` value
/// it accepts is recorded as a failure and still returned.
#[inline(always)]
pub fn fail_if<T, P: Fn(&T) -> bool>(predicate: P) -> AtSite<P> {
    AtSite(predicate)
}

/// Typed identity: `future`, whose output is `O` (named by the function's
/// return type).
#[inline(always)]
pub fn future_of<O, F: Future<Output = O>>(future: F) -> F {
    future
}

/// `future` with its output passed through `map`: the generated code's
/// `GuardedResult` conversions around an `async fn`'s body.
#[inline(always)]
pub fn map_output<F, M, R>(future: F, map: M) -> MapOutput<F, M>
where
    F: Future,
    M: Fn(F::Output) -> R,
{
    MapOutput { future, map }
}

pin_project! {
    /// The future of [`map_output`].
    pub struct MapOutput<F, M> {
        #[pin]
        future: F,
        map: M,
    }
}

impl<F, M, R> Future for MapOutput<F, M>
where
    F: Future,
    M: Fn(F::Output) -> R,
{
    type Output = R;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.project();
        this.future.poll(cx).map(&*this.map)
    }
}

/// `stream` with each item passed through `map`: the generated code's
/// `GuardedResult` conversions around a function returning a stream.
#[inline(always)]
pub fn map_items<S, M, R>(stream: S, map: M) -> MapItems<S, M>
where
    S: futures_core::Stream,
    M: Fn(S::Item) -> R,
{
    MapItems { stream, map }
}

pin_project! {
    /// The stream of [`map_items`].
    pub struct MapItems<S, M> {
        #[pin]
        stream: S,
        map: M,
    }
}

impl<S, M, R> futures_core::Stream for MapItems<S, M>
where
    S: futures_core::Stream,
    M: Fn(S::Item) -> R,
{
    type Item = R;

    #[inline(always)]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<R>> {
        let this = self.project();
        let map = &*this.map;
        this.stream.poll_next(cx).map(|item| item.map(map))
    }
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
    struct IntoUserError<F, C> {
        #[pin]
        inner: F,
        convert: C,
    }
}

impl<F, T, E, C> Future for IntoUserError<F, C>
where
    F: Future<Output = Result<T, Error<E>>>,
    C: Fn(CircuitBreakerError) -> E,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let convert = &*this.convert;
        this.inner
            .poll(cx)
            .map(|r| r.map_err(|e| into_user_error(e, convert)))
    }
}

/// A guarded iterator of the attribute: its errors are the function's own
/// type (`convert`ed from `CircuitBreakerError` for the breaker's).
pub struct UserIter<I, C> {
    inner: I,
    convert: C,
}

impl<I, T, E, C> Iterator for UserIter<I, C>
where
    I: Iterator<Item = Result<T, Error<E>>>,
    C: Fn(CircuitBreakerError) -> E,
{
    type Item = Result<T, E>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let convert = &self.convert;
        self.inner
            .next()
            .map(|item| item.map_err(|e| into_user_error(e, convert)))
    }
}

/// The iterator an attribute function returns.
pub type AttributeIter<I, V, X, C> = UserIter<GuardedIter<'static, I, V, X>, C>;

/// Runs `body` (which makes an iterator) as one guarded call, through a
/// declared breaker (`&'static`) or a key's (an owned handle).
pub fn iter<B, I, T, E, F, V, X, C>(
    cb: B,
    item: PhantomData<Result<T, E>>,
    body: F,
    view: V,
    excluded: X,
    convert: C,
) -> AttributeIter<I::IntoIter, V, X, C>
where
    B: Into<Held<'static>>,
    F: FnOnce() -> I,
    I: IntoIterator<Item = Result<T, E>>,
    E: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    C: Fn(CircuitBreakerError) -> E,
{
    let _ = item;
    let cb: Held<'static> = cb.into();
    let inner = match cb.admit() {
        Err(rejected) => GuardedIter::rejected(cb, rejected, view, excluded),
        Ok(ticket) => {
            cb.before_call(ticket);
            // A body that panics before it returns the iterator fails the call.
            let inner = catch_unwind(AssertUnwindSafe(|| body().into_iter()))
                .unwrap_or_else(|panic| cb.fail_with_panic(ticket, panic));
            GuardedIter::running(cb, inner, ticket, view, excluded)
        }
    };
    UserIter { inner, convert }
}

pin_project! {
    /// A guarded stream of the attribute: its errors are the function's own
    /// type (`convert`ed from `CircuitBreakerError` for the breaker's).
    pub struct UserStream<S, C> {
        #[pin]
        inner: S,
        convert: C,
    }
}

impl<S, T, E, C> futures_core::Stream for UserStream<S, C>
where
    S: futures_core::Stream<Item = Result<T, Error<E>>>,
    C: Fn(CircuitBreakerError) -> E,
{
    type Item = Result<T, E>;

    #[inline]
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.project();
        let convert = &*this.convert;
        this.inner
            .poll_next(cx)
            .map(|item| item.map(|r| r.map_err(|e| into_user_error(e, convert))))
    }
}

/// Runs `body` (which makes a stream) as one guarded call, admitted now,
/// through a declared breaker (`&'static`) or a key's (an owned handle).
pub fn stream<B, S, T, E, F, V, X, C>(
    cb: B,
    item: PhantomData<Result<T, E>>,
    body: F,
    view: V,
    excluded: X,
    convert: C,
) -> UserStream<GuardedStream<'static, S, V, X, Unjudged>, C>
where
    B: Into<Held<'static>>,
    F: FnOnce() -> S,
    S: futures_core::Stream<Item = Result<T, E>>,
    E: fmt::Debug + 'static,
    C: Fn(CircuitBreakerError) -> E,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
{
    let _ = item;
    UserStream {
        inner: guarded_stream(cb.into(), body, view, excluded, Unjudged),
        convert,
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
pub fn iter_in_result<B, I, T, E, E2, F, V, X, C, V2, X2, C2>(
    cb: B,
    item: PhantomData<Result<T, E>>,
    body: F,
    view: V,
    excluded: X,
    convert: C,
    outer_view: V2,
    outer_excluded: X2,
    outer_convert: C2,
) -> Result<AttributeIter<I::IntoIter, V, X, C>, E2>
where
    B: Into<Held<'static>>,
    F: FnOnce() -> Result<I, E2>,
    I: IntoIterator<Item = Result<T, E>>,
    E: fmt::Debug + 'static,
    E2: fmt::Debug + 'static,
    V: Fn(&E) -> Option<&(dyn StdError + 'static)>,
    X: Fn(&E, Option<&(dyn StdError + 'static)>) -> bool,
    C: Fn(CircuitBreakerError) -> E,
    V2: Fn(&E2) -> Option<&(dyn StdError + 'static)>,
    X2: Fn(&E2, Option<&(dyn StdError + 'static)>) -> bool,
    C2: Fn(CircuitBreakerError) -> E2,
{
    let _ = item;
    let cb: Held<'static> = cb.into();
    let ticket = cb.admit().map_err(&outer_convert)?;
    cb.before_call(ticket);
    // A body that panics before it returns the iterator fails the call.
    let made = catch_unwind(AssertUnwindSafe(|| body().map(IntoIterator::into_iter)))
        .unwrap_or_else(|panic| cb.fail_with_panic(ticket, panic));
    match made {
        Ok(inner) => Ok(UserIter {
            inner: GuardedIter::running(cb, inner, ticket, view, excluded),
            convert,
        }),
        Err(error) => Err(into_user_error(
            cb.finish_err(ticket, error, &outer_view, &outer_excluded),
            &outer_convert,
        )),
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

#[inline(always)]
fn into_user_error<E, C: Fn(CircuitBreakerError) -> E>(e: Error<E>, convert: C) -> E {
    match e {
        Error::Open(cbe) | Error::Tripped(cbe, _) => convert(cbe),
        Error::Inner(e) => e,
    }
}
