//! Listeners: which events fire, in what order, once per transition; adding
//! and removing them; a panicking listener leaves the breaker consistent;
//! what `Failure` offers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use breaker::clock::ManualClock;
use breaker::{CircuitBreaker, Error, Failure, Listener, Reason, State};

mod common;
use common::breakers::{clocked_builder, fail, succeed, MINUTE};
use common::panics::panic_text;
use common::recorder::{new_log, take, Log, Recorder};

fn recorded(
    name: &'static str,
    fail_max: u32,
    threshold: u32,
) -> (CircuitBreaker, ManualClock, Log) {
    let log = new_log();
    let (builder, clock) = clocked_builder(name, fail_max, threshold);
    let cb = builder.listener(Recorder::new(&log)).build();
    (cb, clock, log)
}

// ---- which events, in which order ----

#[test]
fn a_success_fires_before_call_then_success() {
    let (cb, _clock, log) = recorded("ev-success", 3, 1);
    succeed(&cb).unwrap();
    assert_eq!(take(&log), ["before_call", "success"]);
}

#[test]
fn a_failure_fires_before_call_then_failure_with_the_error() {
    let (cb, _clock, log) = recorded("ev-failure", 3, 1);
    fail(&cb).unwrap_err();
    assert_eq!(take(&log), ["before_call", "failure \"boom\""]);
    // The first success after failures records a change of counter, not state.
    succeed(&cb).unwrap();
    assert_eq!(take(&log), ["before_call", "success"]);
}

#[test]
fn a_tripping_failure_fires_failure_then_state_change() {
    let (cb, _clock, log) = recorded("ev-trip", 2, 1);
    fail(&cb).unwrap_err();
    assert_eq!(take(&log), ["before_call", "failure \"boom\""]);
    fail(&cb).unwrap_err();
    assert_eq!(
        take(&log),
        [
            "before_call",
            "failure \"boom\"",
            "state_change closed->open"
        ]
    );
}

#[test]
fn a_panic_fires_failure_with_the_panic() {
    let (cb, _clock, log) = recorded("ev-panic", 1, 1);
    catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| -> Result<(), &'static str> { panic!("kaboom") })
    }))
    .unwrap_err();
    assert_eq!(
        take(&log),
        [
            "before_call",
            "failure panic: \"kaboom\"",
            "state_change closed->open"
        ]
    );
}

#[test]
fn a_trial_success_that_closes_fires_success_then_state_change() {
    let (cb, clock, log) = recorded("ev-trial-closes", 1, 1);
    fail(&cb).unwrap_err();
    take(&log);
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!(
        take(&log),
        [
            "state_change open->half-open",
            "before_call",
            "success",
            "state_change half-open->closed"
        ]
    );
}

#[test]
fn a_trial_success_below_the_threshold_changes_no_state() {
    let (cb, clock, log) = recorded("ev-trial-partial", 1, 2);
    fail(&cb).unwrap_err();
    clock.advance(MINUTE);
    take(&log);
    succeed(&cb).unwrap();
    assert_eq!(
        take(&log),
        ["state_change open->half-open", "before_call", "success"]
    );
    succeed(&cb).unwrap();
    assert_eq!(
        take(&log),
        ["before_call", "success", "state_change half-open->closed"]
    );
}

#[test]
fn a_trial_failure_fires_failure_then_state_change_to_open() {
    let (cb, clock, log) = recorded("ev-trial-fails", 1, 1);
    fail(&cb).unwrap_err();
    clock.advance(MINUTE);
    take(&log);
    fail(&cb).unwrap_err();
    assert_eq!(
        take(&log),
        [
            "state_change open->half-open",
            "before_call",
            "failure \"boom\"",
            "state_change half-open->open"
        ]
    );
}

#[test]
fn rejected_calls_fire_no_event() {
    let (cb, clock, log) = recorded("ev-rejected", 1, 1);
    fail(&cb).unwrap_err();
    take(&log);
    // Open: rejected without running, nothing fires.
    assert!(succeed(&cb).unwrap_err().is_open());
    assert!(fail(&cb).unwrap_err().is_open());
    assert_eq!(take(&log), Vec::<String>::new());

    // Half-open with the trial running: the nested call fires nothing either.
    clock.advance(MINUTE);
    let during = Mutex::new(None);
    cb.call(|| {
        let before = log.lock().unwrap().len();
        let nested = succeed(&cb);
        let after = log.lock().unwrap().len();
        *during.lock().unwrap() = Some((nested.unwrap_err().is_open(), after - before));
        Ok::<_, &str>(())
    })
    .unwrap();
    assert_eq!(during.into_inner().unwrap(), Some((true, 0)));
    assert_eq!(
        take(&log),
        [
            "state_change open->half-open",
            "before_call",
            "success",
            "state_change half-open->closed"
        ]
    );
}

#[test]
fn manual_transitions_fire_state_change_once_and_none_when_nothing_changes() {
    let (cb, _clock, log) = recorded("ev-manual", 3, 1);
    cb.open();
    assert_eq!(take(&log), ["state_change closed->open"]);
    cb.open();
    assert_eq!(take(&log), Vec::<String>::new());
    cb.half_open();
    assert_eq!(take(&log), ["state_change open->half-open"]);
    cb.half_open();
    assert_eq!(take(&log), Vec::<String>::new());
    cb.close();
    assert_eq!(take(&log), ["state_change half-open->closed"]);
    cb.close();
    cb.reset();
    assert_eq!(take(&log), Vec::<String>::new());
    cb.half_open();
    cb.open();
    cb.reset();
    assert_eq!(
        take(&log),
        [
            "state_change closed->half-open",
            "state_change half-open->open",
            "state_change open->closed"
        ]
    );
}

/// Checks, in `state_change`, that the change is already committed.
struct CommitCheck {
    seen: Mutex<Vec<(State, State, State, u32)>>,
}

impl Listener for CommitCheck {
    fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
        let seen = (old, new, cb.current_state(), cb.fail_counter());
        self.seen.lock().unwrap().push(seen);
    }
}

#[test]
fn state_change_runs_after_the_change_is_committed() {
    let check = Arc::new(CommitCheck {
        seen: Mutex::new(Vec::new()),
    });
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("ev-committed")
        .fail_max(2)
        .clock(clock.clone())
        .listener_arc(check.clone())
        .build();
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    clock.advance(MINUTE);
    succeed(&cb).unwrap();
    assert_eq!(
        *check.seen.lock().unwrap(),
        [
            (State::Closed, State::Open, State::Open, 2),
            (State::Open, State::HalfOpen, State::HalfOpen, 2),
            (State::HalfOpen, State::Closed, State::Closed, 0),
        ]
    );
}

/// Records the name of the breaker it is told about.
struct Names(Mutex<Vec<String>>);

impl Listener for Names {
    fn before_call(&self, cb: &CircuitBreaker) {
        self.0.lock().unwrap().push(cb.name().to_owned());
    }
}

#[test]
fn a_listener_is_told_which_breaker_fired() {
    let names = Arc::new(Names(Mutex::new(Vec::new())));
    let a = CircuitBreaker::builder("ev-name-a")
        .listener_arc(names.clone())
        .build();
    let b = CircuitBreaker::builder("ev-name-b")
        .listener_arc(names.clone())
        .build();
    succeed(&a).unwrap();
    succeed(&b).unwrap();
    succeed(&a).unwrap();
    assert_eq!(
        *names.0.lock().unwrap(),
        ["ev-name-a", "ev-name-b", "ev-name-a"]
    );
}

// ---- attaching and detaching ----

#[test]
fn listeners_run_in_the_order_they_were_added() {
    let log = new_log();
    let cb = CircuitBreaker::builder("ev-order")
        .fail_max(1)
        .listener(Recorder::tagged("A", &log))
        .listener(Recorder::tagged("B", &log))
        .build();
    cb.add_listener(Arc::new(Recorder::tagged("C", &log)));
    fail(&cb).unwrap_err();
    assert_eq!(
        take(&log),
        [
            "A:before_call",
            "B:before_call",
            "C:before_call",
            "A:failure \"boom\"",
            "B:failure \"boom\"",
            "C:failure \"boom\"",
            "A:state_change closed->open",
            "B:state_change closed->open",
            "C:state_change closed->open",
        ]
    );
}

#[test]
fn add_listener_remove_listener_and_listeners() {
    let log = new_log();
    let a: Arc<dyn Listener> = Arc::new(Recorder::tagged("A", &log));
    let b: Arc<dyn Listener> = Arc::new(Recorder::tagged("B", &log));
    let cb = CircuitBreaker::builder("ev-attach")
        .listener_arc(a.clone())
        .build();
    cb.add_listener(b.clone());

    let list = cb.listeners();
    assert_eq!(list.len(), 2);
    assert!(Arc::ptr_eq(&list[0], &a));
    assert!(Arc::ptr_eq(&list[1], &b));
    succeed(&cb).unwrap();
    assert_eq!(
        take(&log),
        ["A:before_call", "B:before_call", "A:success", "B:success"]
    );

    // Removal is by identity: an equal listener in another Arc is not it.
    let a_twin: Arc<dyn Listener> = Arc::new(Recorder::tagged("A", &log));
    assert!(!cb.remove_listener(&a_twin));
    assert_eq!(cb.listeners().len(), 2);

    assert!(cb.remove_listener(&a));
    assert!(!cb.remove_listener(&a));
    let list = cb.listeners();
    assert_eq!(list.len(), 1);
    assert!(Arc::ptr_eq(&list[0], &b));
    succeed(&cb).unwrap();
    assert_eq!(take(&log), ["B:before_call", "B:success"]);

    // With none left, nothing is told; added again, it hears events again.
    assert!(cb.remove_listener(&b));
    assert!(cb.listeners().is_empty());
    succeed(&cb).unwrap();
    cb.open();
    assert_eq!(take(&log), Vec::<String>::new());
    cb.add_listener(a.clone());
    cb.close();
    assert_eq!(take(&log), ["A:state_change open->closed"]);
    assert!(Arc::ptr_eq(&cb.listeners()[0], &a));
}

#[test]
fn a_listener_added_twice_runs_twice() {
    let log = new_log();
    let a: Arc<dyn Listener> = Arc::new(Recorder::tagged("A", &log));
    let cb = CircuitBreaker::new("ev-twice");
    cb.add_listener(a.clone());
    cb.add_listener(a.clone());
    assert_eq!(cb.listeners().len(), 2);
    cb.open();
    assert_eq!(
        take(&log),
        ["A:state_change closed->open", "A:state_change closed->open"]
    );
}

// ---- a panicking listener ----

#[derive(Clone, Copy, PartialEq)]
enum On {
    BeforeCall,
    StateChangeTo(State),
    Failure,
    Success,
}

/// Panics with `message` on its event, the first `times` times.
struct Panicky {
    on: On,
    message: &'static str,
    times: AtomicU32,
}

impl Panicky {
    fn new(on: On, message: &'static str, times: u32) -> Self {
        Panicky {
            on,
            message,
            times: AtomicU32::new(times),
        }
    }

    fn maybe_panic(&self, event: On) {
        if event == self.on
            && self
                .times
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("{}", self.message);
        }
    }
}

impl Listener for Panicky {
    fn before_call(&self, _: &CircuitBreaker) {
        self.maybe_panic(On::BeforeCall);
    }
    fn state_change(&self, _: &CircuitBreaker, _: State, new: State) {
        self.maybe_panic(On::StateChangeTo(new));
    }
    fn failure(&self, _: &CircuitBreaker, _: &Failure<'_>) {
        self.maybe_panic(On::Failure);
    }
    fn success(&self, _: &CircuitBreaker) {
        self.maybe_panic(On::Success);
    }
}

fn with_panicky(
    name: &'static str,
    fail_max: u32,
    panicky: Panicky,
) -> (CircuitBreaker, ManualClock, Log) {
    let log = new_log();
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder(name)
        .fail_max(fail_max)
        .reset_timeout(MINUTE)
        .clock(clock.clone())
        .listener(panicky)
        .listener(Recorder::new(&log))
        .build();
    (cb, clock, log)
}

#[test]
fn a_panic_in_state_change_reaches_the_caller_after_the_transition_is_committed() {
    let panicky = Panicky::new(On::StateChangeTo(State::Open), "listener: open", u32::MAX);
    let (cb, _clock, log) = with_panicky("panicky-trip", 1, panicky);
    let payload = catch_unwind(AssertUnwindSafe(|| fail(&cb))).unwrap_err();
    assert_eq!(panic_text(&*payload), "listener: open");
    // Committed, and the listener after the panicking one still ran.
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(cb.fail_counter(), 1);
    assert_eq!(
        take(&log),
        [
            "before_call",
            "failure \"boom\"",
            "state_change closed->open"
        ]
    );
    // The breaker keeps working.
    let cbe = succeed(&cb).unwrap_err();
    assert_eq!(
        cbe.breaker_error().unwrap().reason(),
        Reason::TimeoutNotElapsed
    );
    cb.close();
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(take(&log), ["state_change open->closed"]);

    // A manual transition's listener panic reaches the caller too, committed.
    let payload = catch_unwind(AssertUnwindSafe(|| cb.open())).unwrap_err();
    assert_eq!(panic_text(&*payload), "listener: open");
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(take(&log), ["state_change closed->open"]);
}

#[test]
fn a_panic_when_entering_half_open_does_not_leak_the_trial_place() {
    let panicky = Panicky::new(On::StateChangeTo(State::HalfOpen), "listener: half-open", 1);
    let (cb, clock, log) = with_panicky("panicky-half-open", 1, panicky);
    fail(&cb).unwrap_err();
    clock.advance(MINUTE);
    take(&log);

    let ran = AtomicU32::new(0);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<_, &str>(())
        })
    }))
    .unwrap_err();
    assert_eq!(panic_text(&*payload), "listener: half-open");
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(take(&log), ["state_change open->half-open"]);

    // The trial place is free: the next call runs as the trial and closes.
    let nested_rejected = AtomicU32::new(0);
    cb.call(|| {
        ran.fetch_add(1, Ordering::SeqCst);
        if succeed(&cb).is_err_and(|e| e.is_open()) {
            nested_rejected.fetch_add(1, Ordering::SeqCst);
        }
        Ok::<_, &str>(())
    })
    .unwrap();
    assert_eq!(nested_rejected.load(Ordering::SeqCst), 1);
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(
        take(&log),
        ["before_call", "success", "state_change half-open->closed"]
    );
    // Only the admitted trial ran; the panicked admission did not run `f`.
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panic_in_before_call_frees_the_trial_place_and_skips_the_call() {
    let panicky = Panicky::new(On::BeforeCall, "listener: before_call", 1);
    let (cb, _clock, log) = with_panicky("panicky-before-call", 1, panicky);
    cb.half_open();
    take(&log);

    let ran = AtomicU32::new(0);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| {
            ran.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>("boom")
        })
    }))
    .unwrap_err();
    assert_eq!(panic_text(&*payload), "listener: before_call");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // The other listener still heard before_call; nothing was counted.
    assert_eq!(take(&log), ["before_call"]);
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.fail_counter(), 0);

    // A later call is the trial.
    succeed(&cb).unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn a_panic_in_before_call_in_closed_counts_nothing() {
    let panicky = Panicky::new(On::BeforeCall, "listener: before_call", 1);
    let (cb, _clock, _log) = with_panicky("panicky-before-call-closed", 1, panicky);
    let payload = catch_unwind(AssertUnwindSafe(|| fail(&cb))).unwrap_err();
    assert_eq!(panic_text(&*payload), "listener: before_call");
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
}

#[test]
fn a_panic_in_success_leaves_the_trial_success_recorded() {
    let panicky = Panicky::new(On::Success, "listener: success", 1);
    let (cb, clock, log) = with_panicky("panicky-success", 1, panicky);
    fail(&cb).unwrap_err();
    clock.advance(MINUTE);
    take(&log);
    let payload = catch_unwind(AssertUnwindSafe(|| succeed(&cb))).unwrap_err();
    assert_eq!(panic_text(&*payload), "listener: success");
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(
        take(&log),
        [
            "state_change open->half-open",
            "before_call",
            "success",
            "state_change half-open->closed"
        ]
    );
}

#[test]
fn a_panic_in_failure_leaves_the_failure_counted() {
    let panicky = Panicky::new(On::Failure, "listener: failure", 1);
    let (cb, _clock, log) = with_panicky("panicky-failure", 2, panicky);
    let payload = catch_unwind(AssertUnwindSafe(|| fail(&cb))).unwrap_err();
    assert_eq!(panic_text(&*payload), "listener: failure");
    assert_eq!(cb.fail_counter(), 1);
    assert_eq!(take(&log), ["before_call", "failure \"boom\""]);
    // The next failure trips normally.
    assert!(fail(&cb).unwrap_err().is_tripped());
}

#[test]
fn a_listener_panic_does_not_replace_the_guarded_functions_panic() {
    let panicky = Panicky::new(On::Failure, "listener: failure", 1);
    let (cb, _clock, log) = with_panicky("panicky-double", 1, panicky);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| -> Result<(), &'static str> { panic!("guarded fn") })
    }))
    .unwrap_err();
    assert_eq!(panic_text(&*payload), "guarded fn");
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(
        take(&log),
        [
            "before_call",
            "failure panic: \"guarded fn\"",
            "state_change closed->open"
        ]
    );
}

#[test]
fn with_two_panicking_listeners_the_first_panic_continues() {
    let first = Arc::new(Panicky::new(On::BeforeCall, "first", 1));
    let second = Arc::new(Panicky::new(On::BeforeCall, "second", 1));
    let cb = CircuitBreaker::builder("panicky-two")
        .listener_arc(first.clone())
        .listener_arc(second.clone())
        .build();
    let payload = catch_unwind(AssertUnwindSafe(|| succeed(&cb))).unwrap_err();
    assert_eq!(panic_text(&*payload), "first");
    // The second ran (and panicked) although the first had panicked.
    assert_eq!(first.times.load(Ordering::SeqCst), 0);
    assert_eq!(second.times.load(Ordering::SeqCst), 0);
    // Now quiet: calls work.
    succeed(&cb).unwrap();
}

// ---- Failure ----

#[derive(Debug, thiserror::Error)]
#[error("db error {code}")]
struct DbError {
    code: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("root cause")]
struct Root;

#[derive(Debug, thiserror::Error)]
#[error("wrapper")]
struct Wrapper(#[source] Root);

/// What a listener could learn from one `Failure`.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    debug: String,
    is_panic: bool,
    panic_message: Option<String>,
    db_code: Option<u32>,
    found_db: Option<u32>,
    found_wrapper: bool,
    found_root: bool,
    downcast_wrapper: bool,
    downcast_boxed: bool,
    downcast_string: bool,
    as_error: Option<String>,
}

struct Inspect(Mutex<Vec<Seen>>);

impl Listener for Inspect {
    fn failure(&self, _: &CircuitBreaker, f: &Failure<'_>) {
        self.0.lock().unwrap().push(Seen {
            debug: format!("{f:?}"),
            is_panic: f.is_panic(),
            panic_message: f.panic_message().map(str::to_owned),
            db_code: f.downcast_ref::<DbError>().map(|e| e.code),
            found_db: f.find::<DbError>().map(|e| e.code),
            found_wrapper: f.find::<Wrapper>().is_some(),
            found_root: f.find::<Root>().is_some(),
            downcast_wrapper: f.downcast_ref::<Wrapper>().is_some(),
            downcast_boxed: f
                .downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
                .is_some(),
            downcast_string: f.downcast_ref::<String>().is_some(),
            as_error: f.as_error().map(|e| e.to_string()),
        });
    }
}

fn inspected(name: &'static str) -> (CircuitBreaker, Arc<Inspect>) {
    let inspect = Arc::new(Inspect(Mutex::new(Vec::new())));
    let cb = CircuitBreaker::builder(name)
        .fail_max(100)
        .listener_arc(inspect.clone())
        .build();
    (cb, inspect)
}

fn last(inspect: &Inspect) -> Seen {
    inspect
        .0
        .lock()
        .unwrap()
        .pop()
        .expect("failure was not reported")
}

#[test]
fn failure_of_a_concrete_error() {
    let (cb, inspect) = inspected("failure-concrete");
    cb.call(|| Err::<(), _>(DbError { code: 7 })).unwrap_err();
    assert_eq!(
        last(&inspect),
        Seen {
            debug: "DbError { code: 7 }".into(),
            db_code: Some(7),
            found_db: Some(7),
            ..Seen::default()
        }
    );
}

#[test]
fn failure_of_a_boxed_error_is_searched_through() {
    let (cb, inspect) = inspected("failure-boxed");
    cb.call(|| Err::<(), Box<dyn std::error::Error + Send + Sync>>(Box::new(Wrapper(Root))))
        .unwrap_err();
    assert_eq!(
        last(&inspect),
        Seen {
            debug: "Wrapper(Root)".into(),
            // downcast_ref sees the error itself, the box ...
            downcast_boxed: true,
            // ... find looks inside it and along the source chain.
            found_wrapper: true,
            found_root: true,
            as_error: Some("wrapper".into()),
            ..Seen::default()
        }
    );
}

#[test]
fn failure_of_a_concrete_error_with_a_view_finds_its_sources() {
    let (cb, inspect) = inspected("failure-view");
    fn view(e: &Wrapper) -> Option<&(dyn std::error::Error + 'static)> {
        Some(e)
    }
    cb.call_with_view(|| Err::<(), _>(Wrapper(Root)), view)
        .unwrap_err();
    assert_eq!(
        last(&inspect),
        Seen {
            debug: "Wrapper(Root)".into(),
            downcast_wrapper: true,
            found_wrapper: true,
            found_root: true,
            as_error: Some("wrapper".into()),
            ..Seen::default()
        }
    );
}

#[test]
fn failure_of_a_string_error() {
    let (cb, inspect) = inspected("failure-string");
    cb.call(|| Err::<(), _>(String::from("plain text")))
        .unwrap_err();
    assert_eq!(
        last(&inspect),
        Seen {
            debug: "\"plain text\"".into(),
            downcast_string: true,
            ..Seen::default()
        }
    );
}

#[test]
fn failure_of_a_panic_with_a_message() {
    let (cb, inspect) = inspected("failure-panic");
    catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| -> Result<(), DbError> { panic!("formatted {}", 42) })
    }))
    .unwrap_err();
    assert_eq!(
        last(&inspect),
        Seen {
            debug: "panic: \"formatted 42\"".into(),
            is_panic: true,
            panic_message: Some("formatted 42".into()),
            // A String payload is not the error: downcast_ref sees no String.
            ..Seen::default()
        }
    );

    catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| -> Result<(), DbError> { panic!("static message") })
    }))
    .unwrap_err();
    let seen = last(&inspect);
    assert!(seen.is_panic);
    assert_eq!(seen.panic_message.as_deref(), Some("static message"));
    assert_eq!(seen.debug, "panic: \"static message\"");
}

#[test]
fn failure_of_a_panic_without_a_message() {
    let (cb, inspect) = inspected("failure-panic-any");
    catch_unwind(AssertUnwindSafe(|| {
        cb.call(|| -> Result<(), DbError> { std::panic::panic_any(5_u8) })
    }))
    .unwrap_err();
    assert_eq!(
        last(&inspect),
        Seen {
            debug: "panic".into(),
            is_panic: true,
            ..Seen::default()
        }
    );
}

#[derive(Debug, thiserror::Error)]
#[error("not found")]
struct NotFound;

#[test]
fn an_excluded_error_fires_success_not_failure() {
    let log = new_log();
    let cb = CircuitBreaker::builder("ev-excluded")
        .exclude::<NotFound>()
        .listener(Recorder::new(&log))
        .build();
    assert!(matches!(
        cb.call(|| Err::<(), _>(NotFound)),
        Err(Error::Inner(NotFound))
    ));
    assert_eq!(take(&log), ["before_call", "success"]);
}
