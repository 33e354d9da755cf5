//! Listeners: code that runs on a breaker's events, and closures as
//! one-event listeners ([`on_state_change`], [`on_rejected`], ...).

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::breaker::CircuitBreaker;
use crate::error::CircuitBreakerError;
use crate::exclude::{find, ErasedError};
use crate::state::State;

crate::forward::trait_with_forwarding! {
    /// Code run on a breaker's events; every method does nothing by default.
    ///
    /// Listeners run on the thread of the call that caused the event, after the
    /// breaker's state is committed and outside any lock, in the order they were
    /// added. For one call the order is `before_call`, then `success` or
    /// `failure` (or `excluded`), then `state_change` if that call changed
    /// the state, then, if the breaker timed it, `slow_call` (when slow) and
    /// `call_duration`; a rejected call gets `rejected` alone (after the
    /// `state_change` of the transition its admission made, if any); a call
    /// dropped before it finished gets `cancelled`.
    ///
    /// On the default [`MemoryStorage`](crate::MemoryStorage), `state_change` is
    /// reported in the order the transitions were made, one at a time: each
    /// `old` is the previous report's `new`. When transitions race, the thread
    /// that reports one also reports those made meanwhile by other threads (so a
    /// racing caller may return before its transition is reported, and a panic
    /// in that report continues in the reporting thread); a transition made by
    /// a listener is reported once the current report is done. `RedisStorage`
    /// (feature `redis`) does the same, in the order this process's view of the
    /// shared state saw the transitions, those made by other processes included
    /// (heard from a background thread of the storage, or from a caller that
    /// reports them after its own). Other storages shared with other processes
    /// report each transition once, in the order their
    /// [`Storage::announce`](crate::storage::Storage::announce) gives.
    ///
    /// A listener that panics leaves the breaker consistent: the other listeners
    /// still run, then the first panic continues in the caller.
    ///
    /// A listener that overrides only some methods says which in
    /// [`hooks`](Listener::hooks): the engine then calls nothing else, and
    /// an event no listener of the breaker declared costs what it costs
    /// with no listener at all (a `state_change`-only listener costs a
    /// closed-state success nothing).
    ///
    /// ```
    /// use breaker::{CircuitBreaker, Listener, State};
    ///
    /// struct Log;
    /// impl Listener for Log {
    ///     fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
    ///         println!("{}: {old} -> {new}", cb.name());
    ///     }
    /// }
    ///
    /// let cb = CircuitBreaker::builder("db").listener(Log).build();
    /// cb.open(); // prints "db: closed -> open"
    /// ```
    pub trait Listener: Send + Sync {
        /// The methods this listener overrides: the engine calls only
        /// those. Read once, when the listener is added; by default
        /// [`Hooks::ALL`], so a listener that leaves it alone hears
        /// everything.
        ///
        /// `excluded` is called on a listener that declares
        /// [`Hooks::EXCLUDED`] or [`Hooks::SUCCESS`] (its default calls
        /// `success`). A method overridden but not declared is not called.
        ///
        /// ```
        /// use breaker::listener::Hooks;
        /// use breaker::{CircuitBreaker, Listener, State};
        ///
        /// struct Transitions;
        /// impl Listener for Transitions {
        ///     fn hooks(&self) -> Hooks {
        ///         Hooks::STATE_CHANGE
        ///     }
        ///     fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
        ///         println!("{}: {old} -> {new}", cb.name());
        ///     }
        /// }
        /// assert_eq!(Transitions.hooks(), Hooks::STATE_CHANGE);
        /// ```
        fn hooks(&self) -> Hooks {
            Hooks::ALL
        }

        /// Before an admitted call runs (not for rejected calls).
        fn before_call(&self, cb: &CircuitBreaker) {
            let _ = cb;
        }

        /// After a call was rejected without running (open, or half-open
        /// with no trial place left), with the error the caller gets: by
        /// `call`, `call_async`, their `_or_else` forms (before the
        /// fallback runs), guarded iterators and streams, the attribute and
        /// the tower layer alike.
        fn rejected(&self, cb: &CircuitBreaker, error: &CircuitBreakerError) {
            let _ = (cb, error);
        }

        /// After a call failed with an error the breaker excludes: a success
        /// to the breaker, told here instead of `success`. By default it
        /// calls `success`, so a listener that does not tell the two apart
        /// hears every success there.
        fn excluded(&self, cb: &CircuitBreaker, error: &Failure<'_>) {
            let _ = error;
            self.success(cb);
        }

        /// After an admitted call was dropped before it finished (a
        /// `call_async` future, a guarded iterator, a tower request): it
        /// counts as neither success nor failure. A panic here is dropped
        /// (this runs from `Drop`, maybe while a panic unwinds).
        fn cancelled(&self, cb: &CircuitBreaker) {
            let _ = cb;
        }

        /// After a transition, once per transition.
        fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
            let _ = (cb, old, new);
        }

        /// After a call failed with an error that is not excluded, or panicked.
        fn failure(&self, cb: &CircuitBreaker, error: &Failure<'_>) {
            let _ = (cb, error);
        }

        /// After a call succeeded (or failed with an excluded error).
        fn success(&self, cb: &CircuitBreaker) {
            let _ = cb;
        }

        /// After a call that took longer than the breaker's
        /// [`slow_call_duration`](crate::CircuitBreakerBuilder::slow_call_duration)
        /// completed (success or failure), with how long it took; told
        /// after its `success` or `failure` and the `state_change` it
        /// caused, before [`call_duration`](Listener::call_duration).
        ///
        /// ```
        /// use breaker::{clock::ManualClock, listener, CircuitBreaker, Listener};
        /// use std::time::Duration;
        ///
        /// struct Slow;
        /// impl Listener for Slow {
        ///     fn slow_call(&self, cb: &CircuitBreaker, elapsed: Duration) {
        ///         println!("{}: a call took {elapsed:?}", cb.name());
        ///     }
        /// }
        ///
        /// let clock = ManualClock::new();
        /// let cb = CircuitBreaker::builder("api")
        ///     .slow_call_duration(Duration::from_secs(1))
        ///     .clock(clock.clone())
        ///     .listener(Slow)
        ///     .build();
        /// let _ = cb.call(|| {
        ///     clock.advance(Duration::from_secs(3));
        ///     Ok::<_, ()>(())
        /// }); // prints "api: a call took 3s"
        /// ```
        fn slow_call(&self, cb: &CircuitBreaker, elapsed: Duration) {
            let _ = (cb, elapsed);
        }

        /// After each completed call (success, failure or panic; not a
        /// rejected or cancelled one) of a breaker that times its calls,
        /// with how long it took. A breaker times calls while a slow-call
        /// duration is set or a listener attached to it
        /// [`wants_durations`](Listener::wants_durations); timing costs two
        /// readings of its clock per call, which a breaker that does not
        /// time never makes.
        ///
        /// ```
        /// use breaker::{CircuitBreaker, Listener};
        /// use std::time::Duration;
        ///
        /// struct Latency;
        /// impl Listener for Latency {
        ///     fn wants_durations(&self) -> bool {
        ///         true
        ///     }
        ///     fn call_duration(&self, cb: &CircuitBreaker, elapsed: Duration) {
        ///         println!("{}: {elapsed:?}", cb.name());
        ///     }
        /// }
        ///
        /// let cb = CircuitBreaker::builder("api").listener(Latency).build();
        /// let _ = cb.call(|| Ok::<_, ()>(())); // prints "api: 1.2µs" or so
        /// ```
        fn call_duration(&self, cb: &CircuitBreaker, elapsed: Duration) {
            let _ = (cb, elapsed);
        }

        /// Whether the breaker should time every call for this listener's
        /// [`call_duration`](Listener::call_duration) (default `false`: it
        /// hears durations only while a slow-call duration makes the
        /// breaker time calls anyway). Asked when the listener is attached.
        ///
        /// ```
        /// use breaker::Listener;
        ///
        /// struct Quiet;
        /// impl Listener for Quiet {}
        /// assert!(!Quiet.wants_durations());
        /// ```
        fn wants_durations(&self) -> bool {
            false
        }
    }
}

/// Which of a [`Listener`]'s methods it overrides, returned by
/// [`Listener::hooks`]: the engine calls only those. Combine them with `|`.
///
/// ```
/// use breaker::listener::Hooks;
///
/// let hooks = Hooks::STATE_CHANGE | Hooks::REJECTED;
/// assert!(hooks.contains(Hooks::REJECTED));
/// assert!(!hooks.contains(Hooks::SUCCESS));
/// assert!(Hooks::ALL.contains(hooks));
/// assert_eq!(format!("{hooks:?}"), "Hooks(rejected | state_change)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hooks(u32);

impl Hooks {
    /// None: the listener is never called.
    pub const NONE: Hooks = Hooks(0);
    /// [`Listener::before_call`].
    pub const BEFORE_CALL: Hooks = Hooks(1);
    /// [`Listener::success`].
    pub const SUCCESS: Hooks = Hooks(1 << 1);
    /// [`Listener::failure`].
    pub const FAILURE: Hooks = Hooks(1 << 2);
    /// [`Listener::excluded`].
    pub const EXCLUDED: Hooks = Hooks(1 << 3);
    /// [`Listener::rejected`].
    pub const REJECTED: Hooks = Hooks(1 << 4);
    /// [`Listener::cancelled`].
    pub const CANCELLED: Hooks = Hooks(1 << 5);
    /// [`Listener::state_change`].
    pub const STATE_CHANGE: Hooks = Hooks(1 << 6);
    /// [`Listener::slow_call`].
    pub const SLOW_CALL: Hooks = Hooks(1 << 7);
    /// [`Listener::call_duration`].
    pub const CALL_DURATION: Hooks = Hooks(1 << 8);
    /// Every method, those added to [`Listener`] later included.
    pub const ALL: Hooks = Hooks(u32::MAX);
    /// Every method named above (those [`Debug`](fmt::Debug) names).
    pub(crate) const NAMED: Hooks = {
        let (mut all, mut i) = (0, 0);
        while i < Hooks::NAMES.len() {
            all |= Hooks::NAMES[i].0 .0;
            i += 1;
        }
        Hooks(all)
    };

    const NAMES: [(Hooks, &'static str); 9] = [
        (Hooks::BEFORE_CALL, "before_call"),
        (Hooks::SUCCESS, "success"),
        (Hooks::FAILURE, "failure"),
        (Hooks::EXCLUDED, "excluded"),
        (Hooks::REJECTED, "rejected"),
        (Hooks::CANCELLED, "cancelled"),
        (Hooks::STATE_CHANGE, "state_change"),
        (Hooks::SLOW_CALL, "slow_call"),
        (Hooks::CALL_DURATION, "call_duration"),
    ];

    /// The methods of both.
    ///
    /// ```
    /// use breaker::listener::Hooks;
    ///
    /// const HOOKS: Hooks = Hooks::FAILURE.union(Hooks::STATE_CHANGE);
    /// assert_eq!(HOOKS, Hooks::FAILURE | Hooks::STATE_CHANGE);
    /// ```
    pub const fn union(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    /// Whether every method of `other` is among these.
    ///
    /// ```
    /// use breaker::listener::Hooks;
    ///
    /// assert!(Hooks::ALL.contains(Hooks::SUCCESS));
    /// assert!(!Hooks::SUCCESS.contains(Hooks::SUCCESS | Hooks::FAILURE));
    /// ```
    pub const fn contains(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any method of `other` is among these.
    ///
    /// ```
    /// use breaker::listener::Hooks;
    ///
    /// assert!(Hooks::SUCCESS.intersects(Hooks::SUCCESS | Hooks::FAILURE));
    /// assert!(!Hooks::NONE.intersects(Hooks::ALL));
    /// ```
    pub const fn intersects(self, other: Hooks) -> bool {
        self.0 & other.0 != 0
    }

    pub(crate) const fn bits(self) -> u32 {
        self.0
    }

    pub(crate) const fn from_bits(bits: u32) -> Hooks {
        Hooks(bits)
    }
}

impl std::ops::BitOr for Hooks {
    type Output = Hooks;
    fn bitor(self, other: Hooks) -> Hooks {
        self.union(other)
    }
}

impl std::ops::BitOrAssign for Hooks {
    fn bitor_assign(&mut self, other: Hooks) {
        *self = self.union(other);
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Hooks::ALL {
            return f.write_str("Hooks(ALL)");
        }
        f.write_str("Hooks(")?;
        let mut names = Hooks::NAMES
            .iter()
            .filter(|(hook, _)| self.contains(*hook))
            .map(|(_, name)| *name);
        match names.next() {
            None => f.write_str("none")?,
            Some(first) => {
                f.write_str(first)?;
                for name in names {
                    write!(f, " | {name}")?;
                }
            }
        }
        f.write_str(")")
    }
}

/// The failure a [`Listener`] is told about: an error or a panic.
///
/// ```
/// use breaker::{CircuitBreaker, Failure, Listener};
///
/// struct Audit;
/// impl Listener for Audit {
///     fn failure(&self, _: &CircuitBreaker, failure: &Failure<'_>) {
///         if let Some(e) = failure.downcast_ref::<std::io::Error>() {
///             println!("io error: {e}");
///         } else {
///             println!("failure: {failure:?}");
///         }
///     }
/// }
/// # let _ = Audit;
/// ```
pub struct Failure<'a> {
    kind: Kind<'a>,
}

enum Kind<'a> {
    Error {
        error: &'a (dyn ErasedError + 'static),
        as_error: Option<&'a (dyn StdError + 'static)>,
    },
    Panic(&'a (dyn Any + Send)),
}

impl<'a> Failure<'a> {
    pub(crate) fn error(
        error: &'a (dyn ErasedError + 'static),
        as_error: Option<&'a (dyn StdError + 'static)>,
    ) -> Self {
        Failure {
            kind: Kind::Error { error, as_error },
        }
    }

    pub(crate) fn panic(payload: &'a (dyn Any + Send)) -> Self {
        Failure {
            kind: Kind::Panic(payload),
        }
    }

    /// The error itself as a `T`, if it is one.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match &self.kind {
            Kind::Error { error, .. } => (**error).as_any().downcast_ref::<T>(),
            Kind::Panic(_) => None,
        }
    }

    /// The first `T` among the error itself, the error inside a boxed error,
    /// and their `source()` chain: what exclusion by type matches.
    pub fn find<T: StdError + 'static>(&self) -> Option<&T> {
        match &self.kind {
            Kind::Error { error, as_error } => find::<T>((**error).as_any(), *as_error),
            Kind::Panic(_) => None,
        }
    }

    /// The error as `dyn Error`, when the breaker can see it as one (boxed
    /// errors, `anyhow::Error`, and concrete types through the attribute).
    pub fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            Kind::Error { as_error, .. } => *as_error,
            Kind::Panic(_) => None,
        }
    }

    /// True when the guarded function panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panic(_))
    }

    /// The panic's message, when it panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match &self.kind {
            Kind::Panic(p) => p
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
            Kind::Error { .. } => None,
        }
    }
}

impl fmt::Debug for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Error { error, .. } => (**error).fmt(f),
            Kind::Panic(_) => match self.panic_message() {
                Some(msg) => write!(f, "panic: {msg:?}"),
                None => f.write_str("panic"),
            },
        }
    }
}

impl CircuitBreaker {
    /// Tells the `cancelled` listeners; from `Drop`, so their panics are
    /// dropped.
    #[inline(always)]
    pub(crate) fn tell_cancelled(&self) {
        if self.hears(Hooks::CANCELLED) {
            self.tell_cancelled_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn tell_cancelled_slow(&self) {
        let _dropped = self.each_listener(Hooks::CANCELLED, |l| l.cancelled(self));
    }
}

macro_rules! closure_listeners {
    ($(
        $(#[$doc:meta])*
        $func:ident -> $name:ident, $method:ident ( $($arg:ident : $ty:ty),* ), $hook:ident;
    )*) => {$(
        $(#[$doc])*
        pub fn $func<F>(f: F) -> $name<F>
        where
            F: Fn(&CircuitBreaker $(, $ty)*) + Send + Sync + 'static,
        {
            $name(f)
        }

        #[doc = concat!("A closure as a [`Listener`] of `", stringify!($method), "` alone; made by [`", stringify!($func), "`].")]
        #[derive(Clone, Copy)]
        pub struct $name<F>(F);

        // Kept out of "the following types implement `Listener`" lists, so a
        // wrong `listeners = [..]` function's error reads the same whatever
        // the features (breaker-macros/tests/ui/fail/wrong-setting-function).
        #[diagnostic::do_not_recommend]
        impl<F> Listener for $name<F>
        where
            F: Fn(&CircuitBreaker $(, $ty)*) + Send + Sync + 'static,
        {
            fn hooks(&self) -> Hooks {
                Hooks::$hook
            }

            fn $method(&self, cb: &CircuitBreaker $(, $arg: $ty)*) {
                (self.0)(cb $(, $arg)*)
            }
        }

        impl<F> fmt::Debug for $name<F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    )*};
}

closure_listeners! {
    /// A listener that runs `f` after each transition.
    ///
    /// ```
    /// use breaker::{listener, CircuitBreaker};
    ///
    /// let cb = CircuitBreaker::builder("db")
    ///     .listener(listener::on_state_change(|cb, from, to| {
    ///         println!("{}: {from} -> {to}", cb.name());
    ///     }))
    ///     .build();
    /// cb.open(); // prints "db: closed -> open"
    /// ```
    on_state_change -> OnStateChange, state_change(old: State, new: State), STATE_CHANGE;

    /// A listener that runs `f` for each rejected call.
    ///
    /// ```
    /// use breaker::{listener, CircuitBreaker};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let rejected = Arc::new(AtomicU64::new(0));
    /// let count = Arc::clone(&rejected);
    /// let cb = CircuitBreaker::builder("db")
    ///     .listener(listener::on_rejected(move |_cb, _error| {
    ///         count.fetch_add(1, Ordering::Relaxed);
    ///     }))
    ///     .build();
    /// cb.open();
    /// assert!(cb.call(|| Ok::<_, ()>(1)).unwrap_err().is_open());
    /// assert_eq!(rejected.load(Ordering::Relaxed), 1);
    /// ```
    on_rejected -> OnRejected, rejected(error: &CircuitBreakerError), REJECTED;

    /// A listener that runs `f` for each failure.
    ///
    /// ```
    /// use breaker::{listener, CircuitBreaker};
    ///
    /// let cb = CircuitBreaker::builder("db")
    ///     .listener(listener::on_failure(|cb, failure| {
    ///         eprintln!("{} failed: {failure:?}", cb.name());
    ///     }))
    ///     .build();
    /// let _ = cb.call(|| Err::<(), _>("refused")); // prints "db failed: \"refused\""
    /// ```
    on_failure -> OnFailure, failure(error: &Failure<'_>), FAILURE;

    /// A listener that runs `f` after each success.
    ///
    /// ```
    /// use breaker::{listener, CircuitBreaker};
    ///
    /// let cb = CircuitBreaker::builder("db")
    ///     .listener(listener::on_success(|cb| println!("{} ok", cb.name())))
    ///     .build();
    /// let _ = cb.call(|| Ok::<_, ()>(())); // prints "db ok"
    /// ```
    on_success -> OnSuccess, success(), SUCCESS;

    /// A listener that runs `f` before each admitted call.
    ///
    /// ```
    /// use breaker::{listener, CircuitBreaker};
    ///
    /// let cb = CircuitBreaker::builder("db")
    ///     .listener(listener::on_before_call(|cb| println!("calling {}", cb.name())))
    ///     .build();
    /// let _ = cb.call(|| Ok::<_, ()>(())); // prints "calling db"
    /// ```
    on_before_call -> OnBeforeCall, before_call(), BEFORE_CALL;
}
