//! Isolation for tests: a scope in which the current thread (or one future)
//! sees fresh instances of declared breakers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::breaker::CircuitBreaker;
use crate::clock::ManualClock;

/// How many threads are inside an isolated scope right now: while none is,
/// a declared breaker's call site pays one relaxed load for isolation.
static ISOLATING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The scopes the current thread is in, innermost last.
    static SCOPES: RefCell<Vec<Arc<Scope>>> = const { RefCell::new(Vec::new()) };
}

/// One isolated scope: its clock and the fresh breakers made in it.
#[derive(Debug, Default)]
struct Scope {
    clock: Option<ManualClock>,
    /// Leaked so call sites get `&'static` breakers as they do outside: a
    /// test's worth of memory, for the life of the process.
    breakers: Mutex<HashMap<String, &'static CircuitBreaker>>,
}

impl Scope {
    fn breaker(&self, name: &str) -> Option<&'static CircuitBreaker> {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cb) = breakers.get(name) {
            return Some(cb);
        }
        let built = super::declared::build_fresh(name, self.clock.as_ref())?;
        let cb: &'static CircuitBreaker = Box::leak(Box::new(
            built.unwrap_or_else(|message| panic!("{message}")),
        ));
        breakers.insert(name.to_owned(), cb);
        Some(cb)
    }
}

#[inline(always)]
pub(super) fn active() -> bool {
    ISOLATING.load(Ordering::Relaxed) != 0
}

/// The current thread's isolated instance of the declared breaker `name`,
/// if the thread is in a scope and something declares `name`.
#[cold]
pub(super) fn declared(name: &str) -> Option<&'static CircuitBreaker> {
    let scope = SCOPES.with(|scopes| scopes.borrow().last().cloned())?;
    scope.breaker(name)
}

/// A scope in which declared breakers (`#[circuit_breaker]`) are fresh
/// instances, closed with no failures, for the current thread (or one
/// future): their call sites, [`get`](super::get), [`try_get`](super::try_get)
/// and [`reset`](super::reset) see them instead of the process-wide ones, so
/// tests that trip the same name can run in parallel. Optionally they run on
/// a [`ManualClock`].
///
/// Threads and tasks spawned inside the scope do not inherit it; breakers
/// made with [`register`](super::register) are not isolated.
///
/// ```
/// use breaker::clock::ManualClock;
/// use breaker::registry::{self, Isolation};
/// use breaker::{circuit_breaker, CircuitBreakerError, State};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct DbError;
///
/// impl From<CircuitBreakerError> for DbError {
///     fn from(_: CircuitBreakerError) -> Self {
///         DbError
///     }
/// }
///
/// #[circuit_breaker(name = "isolation-doc", fail_max = 1, reset_timeout = "30s")]
/// fn query(ok: bool) -> Result<(), DbError> {
///     if ok { Ok(()) } else { Err(DbError) }
/// }
///
/// let clock = ManualClock::new();
/// Isolation::new().clock(clock.clone()).run(|| {
///     let _ = query(false);
///     assert_eq!(registry::get("isolation-doc").current_state(), State::Open);
///     clock.advance(Duration::from_secs(30));
///     assert!(query(true).is_ok()); // the trial closes it
/// });
/// // Outside the scope, the process-wide breaker never saw these calls.
/// assert_eq!(registry::get("isolation-doc").fail_counter(), 0);
/// ```
#[derive(Debug, Default)]
#[must_use = "an isolation does nothing until it runs"]
pub struct Isolation {
    clock: Option<ManualClock>,
}

impl Isolation {
    /// A scope with breakers on the system clock.
    ///
    /// ```
    /// let _ = breaker::registry::Isolation::new();
    /// ```
    pub fn new() -> Self {
        Isolation::default()
    }

    /// The breakers of the scope run on `clock`.
    ///
    /// ```
    /// use breaker::clock::ManualClock;
    /// let _ = breaker::registry::Isolation::new().clock(ManualClock::new());
    /// ```
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    fn scope(self) -> Arc<Scope> {
        Arc::new(Scope {
            clock: self.clock,
            breakers: Mutex::default(),
        })
    }

    /// Runs `f` in the scope, on the current thread.
    ///
    /// ```
    /// let two = breaker::registry::Isolation::new().run(|| 1 + 1);
    /// assert_eq!(two, 2);
    /// ```
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let _entered = Entered::new(self.scope());
        f()
    }

    /// Enters the scope on the current thread until the guard is dropped.
    ///
    /// ```
    /// let _isolated = breaker::registry::Isolation::new().enter();
    /// // the rest of the test
    /// ```
    pub fn enter(self) -> IsolationGuard {
        IsolationGuard {
            _entered: Entered::new(self.scope()),
        }
    }

    /// `fut`, polled in the scope wherever it runs: for an async test on
    /// any runtime, the future (not the thread) is isolated.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = breaker::registry::Isolation::new()
    ///     .run_async(async { 7 })
    ///     .await;
    /// assert_eq!(out, 7);
    /// # }
    /// ```
    pub fn run_async<F: Future>(self, fut: F) -> Isolated<F> {
        Isolated {
            scope: self.scope(),
            inner: fut,
        }
    }
}

/// [`Isolation::new().run(f)`](Isolation::run): `f` on the current thread,
/// seeing fresh instances of declared breakers.
///
/// ```
/// breaker::registry::isolate(|| {
///     // trip, reset and inspect declared breakers freely
/// });
/// ```
pub fn isolate<R>(f: impl FnOnce() -> R) -> R {
    Isolation::new().run(f)
}

/// The current thread is in an isolated scope until this is dropped; see
/// [`Isolation::enter`].
#[derive(Debug)]
#[must_use = "the scope ends when the guard is dropped"]
pub struct IsolationGuard {
    _entered: Entered,
}

/// On the current thread's stack of scopes while alive (not `Send`: it
/// leaves the thread it entered).
#[derive(Debug)]
struct Entered(PhantomData<*const ()>);

impl Entered {
    fn new(scope: Arc<Scope>) -> Self {
        SCOPES.with(|scopes| scopes.borrow_mut().push(scope));
        ISOLATING.fetch_add(1, Ordering::Relaxed);
        Entered(PhantomData)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        ISOLATING.fetch_sub(1, Ordering::Relaxed);
        SCOPES.with(|scopes| scopes.borrow_mut().pop());
    }
}

pin_project! {
    /// The future of [`Isolation::run_async`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Isolated<F> {
        scope: Arc<Scope>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Isolated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Entered::new(Arc::clone(this.scope));
        this.inner.poll(cx)
    }
}
