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
use crate::keyed::KeyedBreakers;

/// How many threads are inside an isolated scope right now: while none is,
/// a declared breaker's call site pays one relaxed load for isolation.
static ISOLATING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The scopes the current thread is in, innermost last.
    static SCOPES: RefCell<Vec<Arc<Scope>>> = const { RefCell::new(Vec::new()) };
}

/// One isolated scope: its clock and the fresh breakers and keyed groups
/// made in it.
#[derive(Debug, Default)]
struct Scope {
    clock: Option<ManualClock>,
    /// Leaked so call sites get `&'static` breakers as they do outside (an
    /// iterator or a spawned thread may keep using one after the scope):
    /// one breaker per declared name the scope uses, for the life of the
    /// process.
    breakers: Mutex<HashMap<String, &'static CircuitBreaker>>,
    /// Leaked for the same reason, one group per keyed name the scope uses;
    /// when the scope ends its idle keys are evicted, so a leaked group
    /// keeps only keys with state (open, failing, or still held).
    groups: Mutex<HashMap<String, &'static KeyedBreakers<String>>>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let groups = self.groups.get_mut().unwrap_or_else(|p| p.into_inner());
        for group in groups.values() {
            group.evict_idle();
        }
    }
}

impl Scope {
    fn group(&self, name: &str) -> Option<&'static KeyedBreakers<String>> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(group) = groups.get(name) {
            return Some(group);
        }
        let built = super::declared::build_fresh_group(name, self.clock.as_ref())?;
        let group: &'static KeyedBreakers<String> = Box::leak(Box::new(
            built.unwrap_or_else(|message| panic!("{message}")),
        ));
        groups.insert(name.to_owned(), group);
        Some(group)
    }

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
    current()?.breaker(name)
}

/// The current thread's isolated instance of the keyed group `name`
/// declared with `key = ..`, if the thread is in a scope and something
/// declares `name` so.
#[cold]
pub(super) fn declared_group(name: &str) -> Option<&'static KeyedBreakers<String>> {
    current()?.group(name)
}

fn current() -> Option<Arc<Scope>> {
    SCOPES.with(|scopes| scopes.borrow().last().cloned())
}

/// A scope in which declared breakers (`#[circuit_breaker]`) are fresh
/// instances, closed with no failures, for the current thread (or one
/// future): their call sites, [`get`](super::get), [`try_get`](super::try_get)
/// and [`reset`](super::reset) see them instead of the process-wide ones, so
/// tests that trip the same name can run in parallel. Optionally they run on
/// a [`ManualClock`].
///
/// Keyed groups declared with `#[circuit_breaker(key = ..)]` are isolated
/// the same way: the scope has a fresh group per name, which the functions,
/// [`keys`](super::keys) and [`get_key`](super::get_key) see. Breakers and
/// groups made with [`register`](super::register) and
/// [`register_keyed`](super::register_keyed) are not isolated.
///
/// Threads and tasks spawned inside the scope do not inherit it by
/// themselves (a thread-local and a future's wrapper are all a scope is):
/// take [`Isolation::current`] before spawning and enter it in the thread
/// (`.run(..)`) or wrap the task's future (`.run_async(..)`), as below.
///
/// Memory: a scope's breakers and groups are leaked (call sites hold them
/// as `&'static`, and an iterator or a thread may use one after the scope
/// ends): one breaker per declared name a scope uses, a few hundred bytes
/// each, and one group per keyed name, whose idle keys are evicted when the
/// scope ends. A test suite leaks at most tests × names of them, for the
/// life of the test process.
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
    /// The scope to enter again (from [`Isolation::current`]), else a new one.
    join: Option<Arc<Scope>>,
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

    /// The scope the current thread (or future) is in, to enter again on
    /// another thread or task: `run`, `enter` and `run_async` on it see the
    /// same isolated breakers (its clock is the scope's: `clock` is
    /// ignored). `None` outside a scope.
    ///
    /// ```
    /// use breaker::registry::{self, Isolation};
    /// use breaker::{circuit_breaker, CircuitBreakerError, State};
    ///
    /// # #[derive(Debug)] struct DbError;
    /// # impl From<CircuitBreakerError> for DbError { fn from(_: CircuitBreakerError) -> Self { DbError } }
    /// #[circuit_breaker(name = "isolation-current-doc", fail_max = 1)]
    /// fn query() -> Result<(), DbError> {
    ///     Err(DbError)
    /// }
    ///
    /// registry::isolate(|| {
    ///     let scope = Isolation::current().unwrap();
    ///     std::thread::spawn(move || scope.run(|| query())).join().unwrap().unwrap_err();
    ///     // The thread tripped this scope's breaker.
    ///     assert_eq!(registry::get("isolation-current-doc").current_state(), State::Open);
    /// });
    /// assert_eq!(registry::get("isolation-current-doc").current_state(), State::Closed);
    /// ```
    pub fn current() -> Option<Isolation> {
        Some(Isolation {
            clock: None,
            join: Some(current()?),
        })
    }

    fn scope(self) -> Arc<Scope> {
        match self.join {
            Some(scope) => scope,
            None => Arc::new(Scope {
                clock: self.clock,
                breakers: Mutex::default(),
                groups: Mutex::default(),
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_that_ends_evicts_its_groups_idle_keys() {
        let group: &'static KeyedBreakers<String> = Box::leak(Box::new(
            KeyedBreakers::builder("iso-unit", |b| b.fail_max(3)).build(),
        ));
        group.get("idle").call(|| Ok::<_, &str>(())).unwrap();
        let _ = group.get("failing").call(|| Err::<(), _>("down"));
        let scope = Scope::default();
        scope
            .groups
            .lock()
            .unwrap()
            .insert("iso-unit".to_owned(), group);
        assert_eq!(group.keys(), ["failing", "idle"]);
        drop(scope);
        // Only the key with state is kept by the leaked group.
        assert_eq!(group.keys(), ["failing"]);
    }
}
