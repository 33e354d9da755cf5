//! A [`tower`](https://docs.rs/tower) layer: a breaker in front of any
//! `Service` (axum, tonic, hyper, reqwest stacks).
//!
//! [`CircuitBreakerLayer::new`] takes a [`CircuitBreaker`], an
//! `Arc<CircuitBreaker>`, a `&'static CircuitBreaker` (a `static`, say:
//! then a request's future holds a plain reference), or the name of a
//! breaker in the [`registry`](crate::registry) (then it returns a
//! `Result`: a name that is not registered is an error here, not a panic on
//! the first request).
//!
//! A request's future owns a handle on the breaker (tower's futures are
//! `'static`). For a breaker shared in an `Arc`, that handle comes from
//! spares its thread keeps, not from a clone of the `Arc`: a clone and a
//! drop per request would be two locked writes to the breaker's one
//! reference count, a cache line every thread answering requests writes.
//! A thread keeps spares of the last 4 shared breakers it answered
//! requests for, so a breaker whose layers, services and futures are all
//! dropped may live on until each thread that kept spares of it exits or
//! answers requests for 4 other breakers. One whose last layer, service or
//! future is dropped on the thread holding every spare left goes at once
//! (as in a program that makes and drops its layers on one thread).
//! The service's error is [`Error<S::Error>`](crate::Error):
//! [`Error::Open`] for a rejected request, [`Error::Inner`] or
//! [`Error::Tripped`] for the inner service's error, as
//! [`CircuitBreaker::call`] gives them.
//!
//! # Readiness
//!
//! `poll_ready` is the inner service's: a breaker does not make a service
//! unready, so load balancers and buffers in front of it keep working, and
//! an open circuit costs a caller no waiting. A request is admitted or
//! rejected in `call`; a rejected request's future is ready at once with
//! [`Error::Open`], whose [`retry_after`](crate::CircuitBreakerError::retry_after)
//! says when the next trial may run (an HTTP server answers 503 with
//! `Retry-After`). An error from the inner service's `poll_ready` is
//! returned as [`Error::Inner`] and is not recorded: no call was made.
//!
//! # Outcomes
//!
//! A request's future is recorded when it completes: `Ok` is a success,
//! unless [`fail_if`](CircuitBreakerLayer::fail_if) accepts the response,
//! which is then a failure and still returned as `Ok` (listeners see the
//! failure as a [`FailedResponse`]). An `Err` is a failure unless the
//! breaker excludes it (boxed errors are searched as
//! [`call`](CircuitBreaker::call) searches them). A panic while polling is
//! a failure and continues. A future dropped before it completes counts as
//! neither and gives a half-open trial place back.
//!
//! On a breaker with a [`slow_call_duration`](CircuitBreaker::slow_call_duration),
//! a request is timed from `call` to its response: a slow one is recorded
//! as slow (success or failure), and `call_duration` listeners hear how
//! long it took.
//!
//! A breaker's own [`fail_if`](crate::CircuitBreakerBuilder::fail_if) (from
//! its builder) judges responses too, after the layer's, when it names the
//! response type (in debug builds a [`hint`](crate::hint) says once when it
//! names another): a response either accepts is a failure, still returned
//! as `Ok`, and listeners see a [`FailedResponse`] for the layer's, a
//! [`FailedValue`] for the breaker's. To be judged by type, a response
//! must be `'static`, so the service takes `S::Response: 'static` (as
//! [`call`](CircuitBreaker::call) takes `T: 'static`).
//!
//! ```
//! use breaker::tower::CircuitBreakerLayer;
//! use breaker::{CircuitBreaker, Error};
//! use std::convert::Infallible;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cb = CircuitBreaker::builder("backend").fail_max(1).build();
//! let mut svc = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(cb).fail_if(|status: &u16| *status >= 500))
//!     .service(service_fn(|status: u16| async move { Ok::<_, Infallible>(status) }));
//!
//! let ok = svc.ready().await.unwrap().call(200).await;
//! assert_eq!(ok.unwrap(), 200);
//! let failed = svc.ready().await.unwrap().call(503).await;
//! assert_eq!(failed.unwrap(), 503); // a failure, still returned: it opened the circuit
//! let rejected = svc.ready().await.unwrap().call(200).await;
//! assert!(matches!(rejected, Err(Error::Open(e)) if e.retry_after().is_some()));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::admission::Ticket;
use crate::breaker::CircuitBreaker;
use crate::call::{default_view, no_site_exclusions};
use crate::error::{CircuitBreakerError, Error};
use crate::flags::Path;
use crate::inspect::{is_slow, ByBreaker, FailedValue, Judge, Started};
use crate::recording::CancelOnDrop;

mod spares;
use spares::Spare;

/// A [`tower_layer::Layer`] that guards a service with a breaker.
///
/// ```
/// use breaker::tower::CircuitBreakerLayer;
/// use breaker::{registry, CircuitBreaker};
/// use std::sync::Arc;
///
/// let direct = CircuitBreakerLayer::new(CircuitBreaker::new("layer-direct"));
/// let shared = CircuitBreakerLayer::new(Arc::new(CircuitBreaker::new("layer-arc")));
/// registry::register(CircuitBreaker::new("layer-named")).unwrap();
/// let named = CircuitBreakerLayer::new("layer-named").unwrap();
/// assert_eq!(named.breaker().name(), "layer-named");
/// assert!(CircuitBreakerLayer::new("no-such-breaker").is_err());
/// ```
#[derive(Clone)]
pub struct CircuitBreakerLayer<C = NoFailures> {
    breaker: Handle,
    classify: C,
}

/// How a layer, its services and their futures hold the breaker: a
/// `Shared` one's clones and drops go through the thread's spares
/// (`spares.rs`), so a request writes no shared count.
#[derive(Clone)]
enum Handle {
    Static(&'static CircuitBreaker),
    Shared(Spare),
}

impl Handle {
    fn shared(breaker: Arc<CircuitBreaker>) -> Self {
        Handle::Shared(Spare::new(breaker))
    }
}

impl std::ops::Deref for Handle {
    type Target = CircuitBreaker;

    #[inline(always)]
    fn deref(&self) -> &CircuitBreaker {
        match self {
            Handle::Static(cb) => cb,
            Handle::Shared(cb) => cb,
        }
    }
}

impl CircuitBreakerLayer {
    /// A layer guarding with `breaker`: a [`CircuitBreaker`], an
    /// `Arc<CircuitBreaker>` or a `&'static CircuitBreaker` gives the layer;
    /// a registry name gives `Result<CircuitBreakerLayer, UnknownBreaker>`.
    ///
    /// ```
    /// use breaker::tower::CircuitBreakerLayer;
    ///
    /// let err = CircuitBreakerLayer::new("not-registered").err().unwrap();
    /// assert!(err.to_string().contains("'not-registered'"));
    /// ```
    // `new` is the name API.md fixes; for a registry name it must give a
    // `Result` (an unknown name is an error here), so it gives `B::Layer`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<B: IntoLayer>(breaker: B) -> B::Layer {
        breaker.into_layer()
    }

    fn of(breaker: Handle) -> Self {
        CircuitBreakerLayer {
            breaker,
            classify: NoFailures,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Responses `fail_if` accepts are failures (and still returned as `Ok`):
    /// `|r: &http::Response<_>| r.status().is_server_error()`, or
    /// [`server_error`]. A panic in it is the request's failure, then
    /// continues.
    ///
    /// ```
    /// use breaker::tower::CircuitBreakerLayer;
    /// use breaker::CircuitBreaker;
    ///
    /// let layer = CircuitBreakerLayer::new(CircuitBreaker::new("fail-if"))
    ///     .fail_if(|r: &http::Response<String>| r.status().is_server_error());
    /// # let _ = layer;
    /// ```
    pub fn fail_if<F>(self, fail_if: F) -> CircuitBreakerLayer<F> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify: fail_if,
        }
    }

    /// The breaker this layer guards with.
    ///
    /// ```
    /// use breaker::tower::CircuitBreakerLayer;
    /// use breaker::CircuitBreaker;
    ///
    /// let layer = CircuitBreakerLayer::new(CircuitBreaker::new("api"));
    /// assert_eq!(layer.breaker().name(), "api");
    /// ```
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl<C> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker.name())
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// What [`CircuitBreakerLayer::new`] takes: a breaker, an `Arc` of one, a
/// `&'static` one, or a registry name (which may be unknown, so it gives a
/// `Result`).
///
/// ```
/// use breaker::tower::{CircuitBreakerLayer, IntoLayer};
/// use breaker::CircuitBreaker;
///
/// fn layer_of(b: impl IntoLayer<Layer = CircuitBreakerLayer>) -> CircuitBreakerLayer {
///     b.into_layer()
/// }
/// assert_eq!(layer_of(CircuitBreaker::new("x")).breaker().name(), "x");
/// ```
pub trait IntoLayer {
    /// The layer, or a `Result` of it.
    type Layer;
    /// The layer guarding with this breaker.
    fn into_layer(self) -> Self::Layer;
}

impl IntoLayer for CircuitBreaker {
    type Layer = CircuitBreakerLayer;
    fn into_layer(self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::of(Handle::shared(Arc::new(self)))
    }
}

impl IntoLayer for Arc<CircuitBreaker> {
    type Layer = CircuitBreakerLayer;
    fn into_layer(self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::of(Handle::shared(self))
    }
}

impl IntoLayer for &Arc<CircuitBreaker> {
    type Layer = CircuitBreakerLayer;
    fn into_layer(self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::of(Handle::shared(Arc::clone(self)))
    }
}

impl IntoLayer for &'static CircuitBreaker {
    type Layer = CircuitBreakerLayer;
    fn into_layer(self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::of(Handle::Static(self))
    }
}

impl IntoLayer for &str {
    type Layer = Result<CircuitBreakerLayer, UnknownBreaker>;
    fn into_layer(self) -> Self::Layer {
        match crate::registry::try_get(self) {
            Some(cb) => Ok(CircuitBreakerLayer::of(Handle::shared(cb))),
            None => Err(UnknownBreaker {
                name: self.to_owned(),
                known: crate::registry::names(),
            }),
        }
    }
}

/// A layer was asked for a breaker the registry does not have.
///
/// ```
/// use breaker::tower::CircuitBreakerLayer;
///
/// let err = CircuitBreakerLayer::new("typo").unwrap_err();
/// assert_eq!(err.name(), "typo");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no circuit breaker named '{name}' in the registry (registered: {})", known_list(.known))]
pub struct UnknownBreaker {
    name: String,
    known: Vec<String>,
}

impl UnknownBreaker {
    /// The name asked for.
    ///
    /// ```
    /// # let err = breaker::tower::CircuitBreakerLayer::new("typo").unwrap_err();
    /// assert_eq!(err.name(), "typo");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn known_list(known: &[String]) -> String {
    match known.is_empty() {
        true => "none".to_owned(),
        false => known.join(", "),
    }
}

/// Decides whether a response is a failure; implemented by closures
/// `Fn(&R) -> bool` and by [`NoFailures`].
///
/// ```
/// use breaker::tower::Classify;
///
/// let five_hundreds = |status: &u16| *status >= 500;
/// assert!(five_hundreds.is_failure(&503));
/// ```
pub trait Classify<R> {
    /// True when `response` is a failure.
    fn is_failure(&self, response: &R) -> bool;
}

impl<R, F: Fn(&R) -> bool> Classify<R> for F {
    fn is_failure(&self, response: &R) -> bool {
        self(response)
    }
}

/// The default classifier: every response is a success.
///
/// ```
/// use breaker::tower::{Classify, NoFailures};
///
/// assert!(!NoFailures.is_failure(&500));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFailures;

impl<R> Classify<R> for NoFailures {
    #[inline(always)]
    fn is_failure(&self, _: &R) -> bool {
        false
    }
}

/// A classifier for HTTP: a 5xx status is a failure.
///
/// ```
/// use breaker::tower::{server_error, CircuitBreakerLayer};
/// use breaker::CircuitBreaker;
///
/// let layer = CircuitBreakerLayer::new(CircuitBreaker::new("http"))
///     .fail_if(server_error::<String>);
/// let response = http::Response::builder().status(503).body(String::new()).unwrap();
/// assert!(server_error(&response));
/// # let _ = layer;
/// ```
pub fn server_error<B>(response: &http::Response<B>) -> bool {
    response.status().is_server_error()
}

/// What a [`Listener`](crate::Listener)'s `failure` is given for a response
/// that `fail_if` accepted (`failure.downcast_ref::<FailedResponse>()`).
///
/// ```
/// use breaker::tower::FailedResponse;
///
/// assert_eq!(format!("{FailedResponse:?}"), "a response `fail_if` counts as a failure");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedResponse;

impl fmt::Debug for FailedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a response `fail_if` counts as a failure")
    }
}

/// The service [`CircuitBreakerLayer`] makes.
///
/// ```
/// use breaker::tower::CircuitBreakerService;
/// use breaker::CircuitBreaker;
/// use tower::{service_fn, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = CircuitBreakerService::new(
///     CircuitBreaker::new("svc"),
///     service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }),
/// );
/// assert_eq!(svc.oneshot(1).await.unwrap(), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreakerService<S, C = NoFailures> {
    inner: S,
    breaker: Handle,
    classify: C,
}

impl<S> CircuitBreakerService<S> {
    /// `inner` guarded by `breaker` (a [`CircuitBreaker`] or an `Arc` of one).
    ///
    /// ```
    /// use breaker::tower::CircuitBreakerService;
    /// use breaker::CircuitBreaker;
    /// use std::sync::Arc;
    ///
    /// let svc = CircuitBreakerService::new(Arc::new(CircuitBreaker::new("a")), ());
    /// assert_eq!(svc.breaker().name(), "a");
    /// ```
    pub fn new(breaker: impl Into<Arc<CircuitBreaker>>, inner: S) -> Self {
        CircuitBreakerService {
            inner,
            breaker: Handle::shared(breaker.into()),
            classify: NoFailures,
        }
    }
}

impl<S, C> CircuitBreakerService<S, C> {
    /// The breaker this service guards with.
    ///
    /// ```
    /// # use breaker::tower::CircuitBreakerService;
    /// # let svc = CircuitBreakerService::new(breaker::CircuitBreaker::new("b"), ());
    /// assert_eq!(svc.breaker().name(), "b");
    /// ```
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The guarded service.
    ///
    /// ```
    /// # use breaker::tower::CircuitBreakerService;
    /// let svc = CircuitBreakerService::new(breaker::CircuitBreaker::new("c"), 7);
    /// assert_eq!(*svc.get_ref(), 7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreakerService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker.name())
            .finish_non_exhaustive()
    }
}

impl<S, R, C> Service<R> for CircuitBreakerService<S, C>
where
    S: Service<R>,
    S::Response: 'static,
    S::Error: fmt::Debug + 'static,
    C: Classify<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    /// The inner service's readiness (see the [module](self) docs).
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    /// Admits the request or rejects it (its future then gives
    /// [`Error::Open`] at once).
    #[inline]
    fn call(&mut self, request: R) -> Self::Future {
        let cb: &CircuitBreaker = &self.breaker;
        // The flag word, read once for the request as `call` reads it.
        let path = cb.path();
        if path.inspected() {
            return self.call_timed(request);
        }
        let ticket = match cb.closed_ticket() {
            Some(ticket) => ticket,
            None => match cb.admit_slow() {
                Ok(ticket) => ticket,
                Err(rejected) => return self.rejected(rejected),
            },
        };
        // A panicking `before_call` listener gives the trial place back
        // itself; from here on the guard does, while the inner `call` runs
        // (it may panic), then the future.
        cb.before_call_on(path, ticket);
        let guard = CancelOnDrop(cb, ticket);
        let inner = self.inner.call(request);
        std::mem::forget(guard);
        ResponseFuture {
            inner: Some(inner),
            breaker: self.breaker.clone(),
            stage: Stage::Running(ticket, path),
            classify: self.classify.clone(),
        }
    }
}

impl<S, C: Clone> CircuitBreakerService<S, C> {
    /// `call` on a breaker that inspects its calls: the request is timed
    /// from here to its response (if the breaker times calls).
    #[cold]
    #[inline(never)]
    fn call_timed<R>(&mut self, request: R) -> ResponseFuture<S::Future, C>
    where
        S: Service<R>,
    {
        let cb: &CircuitBreaker = &self.breaker;
        let ticket = match cb.admit() {
            Ok(ticket) => ticket,
            Err(rejected) => return self.rejected(rejected),
        };
        cb.before_call(ticket);
        let guard = CancelOnDrop(cb, ticket);
        let started = cb.start();
        let inner = self.inner.call(request);
        std::mem::forget(guard);
        ResponseFuture {
            inner: Some(inner),
            breaker: self.breaker.clone(),
            stage: Stage::Timed(ticket, started),
            classify: self.classify.clone(),
        }
    }

    /// The future of a rejected request: ready at once with the error.
    #[cold]
    #[inline(never)]
    fn rejected<F>(&self, error: CircuitBreakerError) -> ResponseFuture<F, C> {
        ResponseFuture {
            inner: None,
            breaker: self.breaker.clone(),
            stage: Stage::Rejected(error),
            classify: self.classify.clone(),
        }
    }
}

pin_project! {
    /// The future of a [`CircuitBreakerService`]'s response: `Send` when the
    /// inner service's future is.
    pub struct ResponseFuture<F, C> {
        // `None` for a rejected request; set to `None` by `drop` below.
        // Kept once it completed (as `call_async`'s future keeps its own):
        // dropping it there would put its drop on every request's path.
        #[pin]
        inner: Option<F>,
        breaker: Handle,
        stage: Stage,
        classify: C,
    }

    impl<F, C> PinnedDrop for ResponseFuture<F, C> {
        /// A request dropped before it completed (cancelled) counts as
        /// neither success nor failure: it gives a half-open trial place
        /// back and tells the `cancelled` listeners. The inner future is
        /// dropped first, while the place is still held, so whatever a
        /// trial holds is gone before the next one can be admitted; the
        /// place is given back even if that drop panics.
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Stage::Running(ticket, _) | Stage::Timed(ticket, _) = *this.stage {
                let _cancel = CancelOnDrop(this.breaker, ticket);
                this.inner.set(None);
            }
        }
    }
}

/// Where a request is.
enum Stage {
    /// Admitted with this ticket, on the flag word as `call` read it; not
    /// recorded yet.
    Running(Ticket, Path),
    /// The same on a breaker that inspects its calls: when it started.
    Timed(Ticket, Started),
    /// Rejected in `call`, with this error.
    Rejected(CircuitBreakerError),
    /// The output has been returned.
    Done,
}

impl<F, T: 'static, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: fmt::Debug + 'static,
    C: Classify<T>,
{
    type Output = Result<T, Error<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (ticket, path) = match self.stage {
            Stage::Running(ticket, path) => (ticket, path),
            _ => return self.poll_other(cx),
        };
        let this = self.project();
        let Some(polled) = poll_inner(this.inner, cx) else {
            return Poll::Pending;
        };
        // Recorded below, so a drop has nothing left to give back.
        *this.stage = Stage::Done;
        let cb: &CircuitBreaker = this.breaker;
        let output = match polled {
            Ok(output) => output,
            Err(panic) => cb.fail_with_panic(ticket, panic),
        };
        let result = match output {
            Ok(response) => {
                let classify = &*this.classify;
                match catch_unwind(AssertUnwindSafe(|| classify.is_failure(&response))) {
                    // `call`'s own record of a success: a rate policy
                    // turned on while the request ran counts it.
                    Ok(false) => cb.finish_ok_on(path.windowed_by(cb.path()), ticket),
                    Ok(true) => {
                        let _ = cb.finish_failure(
                            ticket,
                            FailedResponse,
                            &default_view::<FailedResponse>,
                        );
                    }
                    Err(panic) => cb.fail_with_panic(ticket, panic),
                }
                Ok(response)
            }
            Err(error) => {
                Err(cb.finish_err(ticket, error, &default_view::<E>, &no_site_exclusions::<E>))
            }
        };
        Poll::Ready(result)
    }
}

impl<F, T: 'static, E, C> ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: fmt::Debug + 'static,
    C: Classify<T>,
{
    /// `poll` for a request timed on a breaker that inspects its calls, a
    /// rejected one, or one that completed; out of line so the plain
    /// request's path stays short.
    #[cold]
    #[inline(never)]
    fn poll_other(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, Error<E>>> {
        let this = self.project();
        if let Stage::Timed(ticket, started) = *this.stage {
            let Some(polled) = poll_inner(this.inner, cx) else {
                return Poll::Pending;
            };
            // Recorded below, so a drop has nothing left to give back.
            *this.stage = Stage::Done;
            let classify = &*this.classify;
            return Poll::Ready(end_timed(this.breaker, ticket, started, polled, classify));
        }
        match std::mem::replace(this.stage, Stage::Done) {
            Stage::Rejected(error) => Poll::Ready(Err(Error::Open(error))),
            Stage::Done => panic!("a `CircuitBreakerService` future polled after it completed"),
            Stage::Running(..) | Stage::Timed(..) => {
                unreachable!("`poll` polls a running request itself")
            }
        }
    }
}

/// Polls an admitted request's inner future, a panic caught: `None` while
/// it is pending.
#[inline(always)]
fn poll_inner<F: Future>(
    inner: Pin<&mut Option<F>>,
    cx: &mut Context<'_>,
) -> Option<std::thread::Result<F::Output>> {
    let inner = inner.as_pin_mut().expect("an admitted request's future");
    match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
        Ok(Poll::Pending) => None,
        Ok(Poll::Ready(output)) => Some(Ok(output)),
        Err(panic) => Some(Err(panic)),
    }
}

/// The end of a request on a breaker that times its calls: recorded as
/// slow or not, and the listeners told how long it took once its result is
/// reported (as `call` does).
#[cold]
#[inline(never)]
fn end_timed<T: 'static, E, C>(
    cb: &CircuitBreaker,
    ticket: Ticket,
    started: Started,
    polled: std::thread::Result<Result<T, E>>,
    classify: &C,
) -> Result<T, Error<E>>
where
    E: fmt::Debug + 'static,
    C: Classify<T>,
{
    let timed = cb.stop(started);
    let slow = is_slow(timed);
    let output = match polled {
        Ok(output) => output,
        Err(panic) => cb.fail_inspected_with_panic(ticket, panic, timed),
    };
    let result = match output {
        Ok(response) => {
            // The layer's `fail_if`, then the breaker's own.
            let judged = catch_unwind(AssertUnwindSafe(|| match classify.is_failure(&response) {
                true => Some(true),
                false => ByBreaker.fails(cb, &response).then_some(false),
            }));
            match judged {
                Ok(None) => cb.finish_ok_as(ticket, slow),
                Ok(Some(true)) => {
                    let view = &default_view::<FailedResponse>;
                    let _ = cb.finish_failure_as(ticket, FailedResponse, view, slow);
                }
                Ok(Some(false)) => {
                    let view = &default_view::<FailedValue>;
                    let _ = cb.finish_failure_as(ticket, FailedValue, view, slow);
                }
                Err(panic) => cb.fail_inspected_with_panic(ticket, panic, timed),
            }
            Ok(response)
        }
        Err(error) => Err(cb.finish_err_as(
            ticket,
            error,
            &default_view::<E>,
            &no_site_exclusions::<E>,
            slow,
        )),
    };
    cb.tell_duration(timed);
    result
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match &self.stage {
            Stage::Running(..) | Stage::Timed(..) => "running",
            Stage::Rejected(_) => "rejected",
            Stage::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("stage", &stage)
            .finish_non_exhaustive()
    }
}
