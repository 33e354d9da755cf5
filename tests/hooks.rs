//! `Listener::hooks`: a listener is called only for the methods it
//! declares; the built-in listeners declare none of the success path's
//! when they do not need it; and the per-thread cache of listener lists
//! never runs a list that is not the breaker's current one, even when
//! listeners call through other breakers or the list changes on another
//! thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use breaker::listener::{self, Hooks};
use breaker::{CircuitBreaker, Failure, Listener, State};

mod common;
use common::recorder::{new_log, take, Log, Recorder};

/// A [`Recorder`] that declares only `hooks` (it overrides more).
struct Declared(Recorder, Hooks);

impl Listener for Declared {
    fn hooks(&self) -> Hooks {
        self.1
    }
    fn before_call(&self, cb: &CircuitBreaker) {
        self.0.before_call(cb)
    }
    fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
        self.0.state_change(cb, old, new)
    }
    fn failure(&self, cb: &CircuitBreaker, error: &Failure<'_>) {
        self.0.failure(cb, error)
    }
    fn success(&self, cb: &CircuitBreaker) {
        self.0.success(cb)
    }
}

fn declared(hooks: Hooks, log: &Log) -> Declared {
    Declared(Recorder::new(log), hooks)
}

#[test]
fn a_listener_is_called_only_for_the_hooks_it_declares() {
    let log = new_log();
    let cb = CircuitBreaker::builder("hooks-declared")
        .fail_max(1)
        .listener(declared(Hooks::STATE_CHANGE, &log))
        .build();
    cb.call(|| Ok::<_, &str>(())).unwrap();
    assert_eq!(take(&log), Vec::<String>::new());
    let _ = cb.call(|| Err::<(), _>("refused"));
    assert_eq!(take(&log), ["state_change closed->open"]);

    // Two listeners: each hears its own hooks, in order.
    let cb = CircuitBreaker::builder("hooks-two")
        .listener(declared(Hooks::SUCCESS, &log))
        .listener(declared(Hooks::BEFORE_CALL | Hooks::FAILURE, &log))
        .build();
    cb.call(|| Ok::<_, &str>(())).unwrap();
    let _ = cb.call(|| Err::<(), _>("refused"));
    assert_eq!(
        take(&log),
        [
            "before_call",
            "success",
            "before_call",
            "failure \"refused\""
        ]
    );
}

#[test]
fn a_listener_that_declares_nothing_is_never_called_and_default_hooks_hear_everything() {
    let log = new_log();
    let cb = CircuitBreaker::builder("hooks-none")
        .listener(declared(Hooks::NONE, &log))
        .listener(Recorder::tagged("all", &log))
        .build();
    assert_eq!(cb.listeners()[1].hooks(), Hooks::ALL);
    cb.call(|| Ok::<_, &str>(())).unwrap();
    cb.open();
    assert_eq!(
        take(&log),
        [
            "all:before_call",
            "all:success",
            "all:state_change closed->open"
        ]
    );
}

#[test]
fn a_success_only_listener_hears_excluded_errors_through_its_success() {
    #[derive(Debug, thiserror::Error)]
    #[error("invalid")]
    struct Invalid;

    let successes = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&successes);
    let cb = CircuitBreaker::builder("hooks-excluded")
        .exclude::<Invalid>()
        .listener(listener::on_success(move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        }))
        .build();
    assert_eq!(cb.listeners()[0].hooks(), Hooks::SUCCESS);
    let _ = cb.call(|| Err::<(), _>(Invalid));
    cb.call(|| Ok::<_, Invalid>(())).unwrap();
    assert_eq!(successes.load(Ordering::Relaxed), 2);
}

#[test]
fn closure_listeners_declare_their_one_hook() {
    let cases: [(Arc<dyn Listener>, Hooks); 5] = [
        (
            Arc::new(listener::on_state_change(|_, _, _| {})),
            Hooks::STATE_CHANGE,
        ),
        (Arc::new(listener::on_rejected(|_, _| {})), Hooks::REJECTED),
        (Arc::new(listener::on_failure(|_, _| {})), Hooks::FAILURE),
        (Arc::new(listener::on_success(|_| {})), Hooks::SUCCESS),
        (
            Arc::new(listener::on_before_call(|_| {})),
            Hooks::BEFORE_CALL,
        ),
    ];
    for (listener, hooks) in cases {
        assert_eq!(listener.hooks(), hooks);
    }
}

#[cfg(feature = "tracing")]
#[test]
fn the_tracing_listener_stays_off_the_success_path() {
    let hooks = breaker::tracing::TracingListener.hooks();
    assert!(!hooks.intersects(Hooks::SUCCESS | Hooks::BEFORE_CALL | Hooks::EXCLUDED));
    assert!(hooks.contains(Hooks::STATE_CHANGE | Hooks::REJECTED | Hooks::FAILURE));
}

/// The router counts successes for `/metrics` (on a stripe per thread),
/// but never hears `before_call`.
#[cfg(feature = "admin")]
#[test]
fn the_admin_router_hears_successes_but_not_before_call() {
    let cb = breaker::registry::register(CircuitBreaker::new("hooks-admin")).unwrap();
    let _router = breaker::admin::router().build();
    let listeners = cb.listeners();
    assert_eq!(listeners.len(), 1, "the router attached its listener");
    let hooks = listeners[0].hooks();
    assert!(!hooks.intersects(Hooks::BEFORE_CALL));
    assert!(hooks.contains(Hooks::SUCCESS | Hooks::STATE_CHANGE | Hooks::FAILURE | Hooks::REJECTED));
}

/// Counts successes and failures.
#[derive(Default)]
struct Counts {
    successes: AtomicU64,
    failures: AtomicU64,
}

impl Listener for Counts {
    fn success(&self, _: &CircuitBreaker) {
        self.successes.fetch_add(1, Ordering::Relaxed);
    }
    fn failure(&self, _: &CircuitBreaker, _: &Failure<'_>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Calls through every breaker of `fanout` from its `success`: each call
/// of the outer breaker runs more listener lists than a thread caches,
/// while the outer one's list is being walked.
struct Fanout {
    fanout: Arc<Vec<CircuitBreaker>>,
}

impl Listener for Fanout {
    fn hooks(&self) -> Hooks {
        Hooks::SUCCESS
    }
    fn success(&self, _: &CircuitBreaker) {
        for cb in self.fanout.iter() {
            cb.call(|| Ok::<_, ()>(())).unwrap();
        }
    }
}

#[test]
fn listeners_calling_through_other_breakers_hear_every_event_once() {
    let counts: Vec<Arc<Counts>> = (0..40).map(|_| Arc::default()).collect();
    let fanout: Arc<Vec<CircuitBreaker>> = Arc::new(
        counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                CircuitBreaker::builder(format!("hooks-fanout-{i}"))
                    .listener_arc(c.clone())
                    .build()
            })
            .collect(),
    );
    let outer_counts = Arc::new(Counts::default());
    let outer = CircuitBreaker::builder("hooks-fanout-outer")
        .listener(Fanout {
            fanout: Arc::clone(&fanout),
        })
        .listener_arc(outer_counts.clone())
        .build();
    for round in 1..=50u64 {
        outer.call(|| Ok::<_, ()>(())).unwrap();
        // And each inner breaker on its own, between the outer's calls.
        for cb in fanout.iter().rev() {
            let _ = cb.call(|| Err::<(), _>("refused"));
            cb.call(|| Ok::<_, ()>(())).unwrap();
        }
        for c in &counts {
            assert_eq!(c.successes.load(Ordering::Relaxed), 2 * round);
            assert_eq!(c.failures.load(Ordering::Relaxed), round);
        }
        assert_eq!(outer_counts.successes.load(Ordering::Relaxed), round);
    }
}

#[test]
fn a_listener_removed_on_one_thread_is_not_called_on_another() {
    let counts = Arc::new(Counts::default());
    let as_listener: Arc<dyn Listener> = counts.clone();
    let cb = Arc::new(
        CircuitBreaker::builder("hooks-removed")
            .listener_arc(as_listener.clone())
            .build(),
    );
    let (go, wait) = mpsc::channel::<()>();
    let called = Arc::new(Barrier::new(2));
    let caller = {
        let (cb, called) = (Arc::clone(&cb), Arc::clone(&called));
        thread::spawn(move || {
            // The list is now in this thread's cache.
            cb.call(|| Ok::<_, ()>(())).unwrap();
            called.wait();
            wait.recv().unwrap();
            cb.call(|| Ok::<_, ()>(())).unwrap();
            // And added back: heard again.
            wait.recv().unwrap();
            cb.call(|| Ok::<_, ()>(())).unwrap();
        })
    };
    called.wait();
    assert_eq!(counts.successes.load(Ordering::Relaxed), 1);
    assert!(cb.remove_listener(&as_listener));
    go.send(()).unwrap();
    cb.add_listener(as_listener.clone());
    go.send(()).unwrap();
    caller.join().unwrap();
    // The second call ran after the removal: not heard. The third after
    // the addition: heard. (Sent in order, so the second call may also
    // run after the addition: then it is heard too.)
    let heard = counts.successes.load(Ordering::Relaxed);
    assert!((2..=3).contains(&heard), "heard {heard}");
}

#[test]
fn a_listener_removed_is_never_called_again_by_its_thread() {
    let counts = Arc::new(Counts::default());
    let as_listener: Arc<dyn Listener> = counts.clone();
    let cb = CircuitBreaker::builder("hooks-removed-here")
        .listener_arc(as_listener.clone())
        .build();
    cb.call(|| Ok::<_, ()>(())).unwrap();
    assert!(cb.remove_listener(&as_listener));
    for _ in 0..10 {
        cb.call(|| Ok::<_, ()>(())).unwrap();
    }
    assert_eq!(counts.successes.load(Ordering::Relaxed), 1);
    // Replaced by another listener: only the new one hears.
    let other = Arc::new(Counts::default());
    cb.add_listener(other.clone());
    cb.call(|| Ok::<_, ()>(())).unwrap();
    assert_eq!(counts.successes.load(Ordering::Relaxed), 1);
    assert_eq!(other.successes.load(Ordering::Relaxed), 1);
}

#[test]
fn many_threads_adding_and_removing_while_calling_lose_no_event_of_a_kept_listener() {
    let kept = Arc::new(Counts::default());
    let cb = Arc::new(
        CircuitBreaker::builder("hooks-churn")
            .listener_arc(kept.clone())
            .build(),
    );
    let start = Arc::new(Barrier::new(4));
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (cb, start) = (Arc::clone(&cb), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for _ in 0..2_000 {
                    cb.call(|| Ok::<_, ()>(())).unwrap();
                }
            })
        })
        .collect();
    start.wait();
    for _ in 0..500 {
        let passing: Arc<dyn Listener> = Arc::new(Counts::default());
        cb.add_listener(passing.clone());
        assert!(cb.remove_listener(&passing));
    }
    for caller in callers {
        caller.join().unwrap();
    }
    assert_eq!(kept.successes.load(Ordering::Relaxed), 6_000);
    assert_eq!(cb.listeners().len(), 1);
}

/// Makes `n` edits of `cb`'s list (each `add_listener` or `remove_listener`
/// makes a list), leaving the listeners as they were.
fn edit_lists(cb: &CircuitBreaker, n: usize) {
    for _ in 0..n / 2 {
        let passing: Arc<dyn Listener> = Arc::new(Counts::default());
        cb.add_listener(passing.clone());
        assert!(cb.remove_listener(&passing));
    }
}

#[test]
fn a_removed_listener_is_dropped_with_its_breaker_while_its_lists_are_kept() {
    let counts = Arc::new(Counts::default());
    let weak = Arc::downgrade(&counts);
    let as_listener: Arc<dyn Listener> = counts;
    let cb = CircuitBreaker::new("hooks-kept-drop");
    cb.add_listener(as_listener.clone());
    cb.call(|| Ok::<_, ()>(())).unwrap();
    assert!(cb.remove_listener(&as_listener));
    drop(as_listener);
    // Not called any more, but alive: a list the breaker keeps holds it.
    cb.call(|| Ok::<_, ()>(())).unwrap();
    let kept = weak.upgrade().expect("kept with the breaker's lists");
    assert_eq!(kept.successes.load(Ordering::Relaxed), 1);
    drop(kept);
    drop(cb);
    assert!(weak.upgrade().is_none(), "dropped with the breaker");
}

#[test]
fn past_its_kept_lists_a_breaker_runs_its_current_list_and_drops_removed_listeners() {
    let kept = Arc::new(Counts::default());
    let cb = CircuitBreaker::builder("hooks-past-kept")
        .listener_arc(kept.clone())
        .build();
    // 1 list from the builder + 16 edits: past the 16 kept lists.
    for round in 1..=4u64 {
        edit_lists(&cb, 8);
        cb.call(|| Ok::<_, ()>(())).unwrap();
        assert_eq!(kept.successes.load(Ordering::Relaxed), round);
    }
    // A listener added now, then removed before any call ran it, is in no
    // kept list and in no thread's cache: dropped when the removal returns.
    let late = Arc::new(Counts::default());
    let weak = Arc::downgrade(&late);
    let as_listener: Arc<dyn Listener> = late;
    cb.add_listener(as_listener.clone());
    assert!(cb.remove_listener(&as_listener));
    drop(as_listener);
    assert!(weak.upgrade().is_none(), "a later list is not kept");
    // One run by this thread: heard, then removed and never heard again.
    let ran = Arc::new(Counts::default());
    let as_listener: Arc<dyn Listener> = ran.clone();
    cb.add_listener(as_listener.clone());
    cb.call(|| Ok::<_, ()>(())).unwrap();
    assert!(cb.remove_listener(&as_listener));
    for _ in 0..3 {
        cb.call(|| Ok::<_, ()>(())).unwrap();
    }
    assert_eq!(ran.successes.load(Ordering::Relaxed), 1);
    assert_eq!(kept.successes.load(Ordering::Relaxed), 8);
}

/// Panics in `before_call`, every time.
struct Panics;

impl Listener for Panics {
    fn hooks(&self) -> Hooks {
        Hooks::BEFORE_CALL
    }
    fn before_call(&self, _: &CircuitBreaker) {
        panic!("listener");
    }
}

/// Counts `before_call`.
#[derive(Default)]
struct Befores(AtomicU64);

impl Listener for Befores {
    fn hooks(&self) -> Hooks {
        Hooks::BEFORE_CALL
    }
    fn before_call(&self, _: &CircuitBreaker) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_panicking_listener_does_not_stop_the_next_ones_on_kept_or_cached_lists() {
    let after = Arc::new(Befores::default());
    let cb = CircuitBreaker::builder("hooks-panics")
        .listener(Panics)
        .listener_arc(after.clone())
        .listener(Panics)
        .build();
    let call = || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cb.call(|| Ok::<_, ()>(())).unwrap();
        }))
    };
    assert!(call().is_err());
    assert_eq!(after.0.load(Ordering::Relaxed), 1);
    edit_lists(&cb, 20); // past the kept lists
    assert!(call().is_err());
    assert_eq!(after.0.load(Ordering::Relaxed), 2);
    // Consistent: closed, nothing counted.
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
}

/// From `before_call`: calls through its own breaker once (a nested
/// dispatch of the list being walked), and removes itself from it.
struct Reentrant {
    me: std::sync::Mutex<Option<Arc<dyn Listener>>>,
    calls: AtomicU64,
}

impl Listener for Reentrant {
    fn hooks(&self) -> Hooks {
        Hooks::BEFORE_CALL
    }
    fn before_call(&self, cb: &CircuitBreaker) {
        if self.calls.fetch_add(1, Ordering::Relaxed) == 0 {
            cb.call(|| Ok::<_, ()>(())).unwrap();
            let me = self.me.lock().unwrap().take().unwrap();
            assert!(cb.remove_listener(&me));
        }
    }
}

#[test]
fn a_listener_may_call_through_its_own_breaker_and_remove_itself() {
    for past_kept in [false, true] {
        let counts = Arc::new(Counts::default());
        let cb = CircuitBreaker::builder("hooks-reentrant")
            .listener_arc(counts.clone())
            .build();
        if past_kept {
            edit_lists(&cb, 20);
        }
        let reentrant = Arc::new(Reentrant {
            me: std::sync::Mutex::new(None),
            calls: AtomicU64::new(0),
        });
        let as_listener: Arc<dyn Listener> = reentrant.clone();
        *reentrant.me.lock().unwrap() = Some(as_listener.clone());
        cb.add_listener(as_listener);
        cb.call(|| Ok::<_, ()>(())).unwrap();
        cb.call(|| Ok::<_, ()>(())).unwrap();
        // The outer call, the nested one inside it, the next call: the
        // nested call found the listener there (calls 2), the next one not.
        assert_eq!(reentrant.calls.load(Ordering::Relaxed), 2);
        assert_eq!(counts.successes.load(Ordering::Relaxed), 3);
        assert_eq!(cb.listeners().len(), 1);
    }
}

/// Logs its name on `before_call` and `success` when it declared them, and
/// panics with its name on `success` when `panics`.
struct Named {
    name: &'static str,
    hooks: Hooks,
    panics: bool,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Listener for Named {
    fn hooks(&self) -> Hooks {
        self.hooks
    }
    fn before_call(&self, _: &CircuitBreaker) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:before_call", self.name));
    }
    fn success(&self, _: &CircuitBreaker) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:success", self.name));
        if self.panics {
            panic!("{}", self.name);
        }
    }
}

#[test]
fn a_panic_in_the_middle_of_a_walk_lets_the_rest_hear_it_and_the_first_continues() {
    for past_kept in [false, true] {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let named = |name, hooks, panics| Named {
            name,
            hooks,
            panics,
            log: log.clone(),
        };
        let cb = CircuitBreaker::builder("hooks-mid-walk")
            .listener(named("a", Hooks::SUCCESS, false))
            .listener(named("b", Hooks::BEFORE_CALL, false))
            .listener(named("c", Hooks::SUCCESS, true))
            .listener(named("d", Hooks::ALL, false))
            .listener(named("e", Hooks::SUCCESS, true))
            .listener(named("f", Hooks::SUCCESS | Hooks::BEFORE_CALL, false))
            .build();
        if past_kept {
            edit_lists(&cb, 20);
        }
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cb.call(|| Ok::<_, ()>(())).unwrap();
        }))
        .unwrap_err();
        // The first panic (c's) continues, once all after it have run, in
        // order, each only for the hooks it declared.
        assert_eq!(payload.downcast_ref::<String>().unwrap(), "c");
        assert_eq!(
            *log.lock().unwrap(),
            [
                "b:before_call",
                "d:before_call",
                "f:before_call",
                "a:success",
                "c:success",
                "d:success",
                "e:success",
                "f:success",
            ],
            "past the kept lists: {past_kept}"
        );
        // The success was a success: closed, nothing counted.
        assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
    }
}

/// A listener aligned beyond its `Arc`'s counts, so the listener itself
/// does not start where an `Arc` of a smaller type would have it.
#[repr(align(64))]
struct Aligned {
    value: u64,
    seen: AtomicU64,
}

impl Listener for Aligned {
    fn hooks(&self) -> Hooks {
        Hooks::SUCCESS | Hooks::FAILURE
    }
    fn success(&self, _: &CircuitBreaker) {
        self.seen.fetch_add(self.value, Ordering::Relaxed);
    }
    fn failure(&self, _: &CircuitBreaker, _: &Failure<'_>) {
        self.seen.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn every_walk_finds_each_listener_where_its_arc_holds_it() {
    let aligned = Arc::new(Aligned {
        value: 0x5eed,
        seen: AtomicU64::new(0),
    });
    let counts = Arc::new(Counts::default());
    let cb = CircuitBreaker::builder("hooks-aligned")
        .listener_arc(aligned.clone())
        .build();
    // Alone (called straight away), then among others (walked), then past
    // the kept lists; a failure walks the list testing each one's hooks.
    cb.call(|| Ok::<_, ()>(())).unwrap();
    cb.add_listener(counts.clone());
    cb.call(|| Ok::<_, ()>(())).unwrap();
    let _ = cb.call(|| Err::<(), _>(()));
    edit_lists(&cb, 20);
    cb.call(|| Ok::<_, ()>(())).unwrap();
    assert_eq!(aligned.seen.load(Ordering::Relaxed), 3 * 0x5eed + 1);
    assert_eq!(counts.successes.load(Ordering::Relaxed), 2);
}
