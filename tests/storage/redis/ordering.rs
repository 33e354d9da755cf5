//! The order listeners hear transitions in on the Redis storage: a
//! transition another process makes while this process's caller is still
//! running its `failure` listeners is heard after the caller's own, and each
//! call's events keep their order (`before_call`, `failure`, then the
//! `state_change` it caused).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{CircuitBreaker, Error, Failure, Listener, RedisStorage, State};

use super::{bound, eventually, storage};
use crate::support;

type Hook = Box<dyn FnOnce(&CircuitBreaker) + Send>;

/// Records every event; runs a hook inside the first `failure`.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
    on_failure: Mutex<Option<Hook>>,
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Listener for Recorder {
    fn before_call(&self, _: &CircuitBreaker) {
        self.log.lock().unwrap().push("before_call".into());
    }
    fn failure(&self, cb: &CircuitBreaker, _: &Failure<'_>) {
        self.log.lock().unwrap().push("failure".into());
        let hook = self.on_failure.lock().unwrap().take();
        if let Some(hook) = hook {
            hook(cb);
        }
    }
    fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
        self.log.lock().unwrap().push(format!("{old}->{new}"));
    }
}

/// Breaker `svc` in this process (listened to) and in "another" (its own
/// storage on the same server and namespace), both tripping on one failure.
fn two_processes(test: &str) -> Option<(CircuitBreaker, Arc<CircuitBreaker>, Arc<Recorder>)> {
    let server = support::shared()?;
    let here = storage(&server.url(), test).build().unwrap();
    let elsewhere = RedisStorage::builder(server.url())
        .namespace(here.namespace())
        .command_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    let builder = || CircuitBreaker::builder("svc").fail_max(1);
    let (a, _) = bound(builder().listener_arc(recorder.clone()), &here);
    let (b, _) = bound(builder(), &elsewhere);
    Some((a, Arc::new(b), recorder))
}

/// While the caller's `failure` listeners run, the other process resets the
/// circuit this failure tripped, and this process's view learns of it.
fn reset_elsewhere_during_the_failure(recorder: &Recorder, other: &Arc<CircuitBreaker>) {
    let other = Arc::clone(other);
    *recorder.on_failure.lock().unwrap() = Some(Box::new(move |cb: &CircuitBreaker| {
        assert_eq!(cb.current_state(), State::Open);
        other.reset();
        assert!(
            eventually(Duration::from_secs(2), || cb.current_state()
                == State::Closed),
            "the reset never reached this process's view"
        );
    }));
}

#[test]
fn a_transition_made_elsewhere_during_a_failure_listener_is_heard_after_the_callers_own() {
    let Some((a, b, recorder)) = two_processes("order-sync") else {
        return;
    };
    reset_elsewhere_during_the_failure(&recorder, &b);
    let r = a.call(|| Err::<(), _>("boom"));
    assert!(matches!(r, Err(Error::Tripped(_, "boom"))), "{r:?}");
    // Both were reported before the call returned: the caller reports the
    // reset queued behind its own transition.
    assert_eq!(
        recorder.take(),
        ["before_call", "failure", "closed->open", "open->closed"]
    );
    assert_eq!(a.current_state(), State::Closed);
}

#[test]
fn the_same_for_an_async_call() {
    let Some((a, b, recorder)) = two_processes("order-async") else {
        return;
    };
    reset_elsewhere_during_the_failure(&recorder, &b);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(a.call_async(async { Err::<(), _>("boom") }));
    assert!(matches!(r, Err(Error::Tripped(_, "boom"))), "{r:?}");
    assert_eq!(
        recorder.take(),
        ["before_call", "failure", "closed->open", "open->closed"]
    );
}

#[test]
fn each_call_hears_its_own_events_in_order() {
    let Some((a, b, recorder)) = two_processes("order-calls") else {
        return;
    };
    a.set_fail_max(2).unwrap();
    let _ = a.call(|| Err::<(), _>("boom"));
    let _ = a.call(|| Err::<(), _>("boom"));
    assert_eq!(
        recorder.take(),
        [
            "before_call",
            "failure",
            "before_call",
            "failure",
            "closed->open"
        ]
    );
    // A transition made elsewhere is heard from the storage's thread.
    b.reset();
    assert!(eventually(Duration::from_secs(2), || recorder
        .log
        .lock()
        .unwrap()
        .len()
        == 1));
    assert_eq!(recorder.take(), ["open->closed"]);
    a.open();
    assert_eq!(recorder.take(), ["closed->open"]);
}

/// Storage A toggles the circuit open and closed 1,000 times; storage B (as
/// another process has, reading the state every millisecond to make reads
/// race the pub/sub messages) hears every transition once, in order, and no
/// change the state machine cannot make.
#[test]
fn a_burst_of_transitions_elsewhere_is_heard_whole_and_in_order() {
    let Some(server) = support::shared() else {
        return;
    };
    // A does not subscribe: the channel's one subscriber is B.
    let a_storage = storage(&server.url(), "burst")
        .subscribe(false)
        .build()
        .unwrap();
    let b_storage = RedisStorage::builder(server.url())
        .namespace(a_storage.namespace())
        .command_timeout(Duration::from_millis(200))
        .resync_interval(Duration::from_millis(1))
        .build()
        .unwrap();
    let heard = Arc::new(crate::suite::Changes::default());
    let builder = || CircuitBreaker::builder("burst");
    let (a, _) = bound(builder(), &a_storage);
    let (b, _) = bound(builder().listener_arc(heard.clone()), &b_storage);
    let channel = format!("{}:events", a_storage.namespace());
    assert!(
        eventually(Duration::from_secs(5), || matches!(
            server.cmd(&["PUBSUB", "NUMSUB", &channel]),
            support::Resp::Array(Some(ref v)) if v.get(1) == Some(&support::Resp::Int(1))
        )),
        "B never subscribed"
    );
    // The first transition, heard through the subscription, shows that B
    // follows every write from here on.
    a.open();
    assert!(
        eventually(Duration::from_secs(5), || heard.seen().len() == 1),
        "B never heard the first transition: {:?}",
        heard.seen()
    );
    a.close();
    for _ in 1..500 {
        a.open();
        a.close();
    }
    const TRANSITIONS: usize = 1_000;
    eventually(Duration::from_secs(10), || {
        heard.seen().len() >= TRANSITIONS
    });
    assert_eq!(b.current_state(), State::Closed);
    let seen = heard.seen();
    let mut last = State::Closed;
    for (i, &(old, new)) in seen.iter().enumerate() {
        assert_eq!(
            old, last,
            "transition {i} starts where the last ended: {seen:?}"
        );
        assert!(
            matches!(
                (old, new),
                (State::Closed, State::Open) | (State::Open, State::Closed)
            ),
            "transition {i}, {old} -> {new}, was never made"
        );
        last = new;
    }
    assert_eq!(
        seen.len(),
        TRANSITIONS,
        "B heard {} of {TRANSITIONS}",
        seen.len()
    );
}
