//! `RedisStorageBuilder::initial_state`: applied when the shared key does
//! not exist yet, never over a fleet's state.

use std::time::Duration;

use breaker::{CircuitBreaker, Error, Reason, State};

use super::{bound, eventually, storage};
use crate::support;

fn succeed(cb: &CircuitBreaker) -> Result<(), Error<&'static str>> {
    cb.call(|| Ok(()))
}

fn fail(cb: &CircuitBreaker) -> Result<(), Error<&'static str>> {
    cb.call(|| Err("boom"))
}

fn api() -> breaker::CircuitBreakerBuilder {
    CircuitBreaker::builder("api")
        .fail_max(3)
        .reset_timeout(Duration::from_secs(60))
}

#[test]
fn the_first_process_creates_the_key_in_the_initial_state() {
    let Some(server) = support::shared() else {
        return;
    };
    let first = storage(&server.url(), "initial-open")
        .initial_state(State::Open)
        .build()
        .unwrap();
    let (cb, st) = bound(api(), &first);
    assert!(st.is_shared());
    assert_eq!(cb.current_state(), State::Open);
    let r = succeed(&cb);
    assert!(
        matches!(r, Err(Error::Open(ref e)) if e.reason() == Reason::TimeoutNotElapsed),
        "{r:?}"
    );
    let stored = server.get(st.key().unwrap()).unwrap();
    assert_eq!(support::fields(&stored)[1], "open", "{stored}");
}

#[test]
fn a_joining_process_never_overwrites_the_fleets_state() {
    let Some(server) = support::shared() else {
        return;
    };
    // The fleet's breaker is closed with two failures counted.
    let first = storage(&server.url(), "initial-join").build().unwrap();
    let (a, sa) = bound(api(), &first);
    let _ = fail(&a);
    let _ = fail(&a);
    let key = sa.key().unwrap().to_owned();
    let before = server.get(&key).unwrap();
    // A process joining with another initial state follows the fleet.
    for initial in [State::Open, State::HalfOpen] {
        let late = storage(&server.url(), "unused")
            .namespace(first.namespace())
            .initial_state(initial)
            .build()
            .unwrap();
        let (b, _) = bound(api(), &late);
        assert_eq!((b.current_state(), b.fail_counter()), (State::Closed, 2));
        assert_eq!(server.get(&key).unwrap(), before, "{initial:?}");
    }
    // And one that created the key open is followed by a joiner that would
    // have started it closed.
    let open = storage(&server.url(), "initial-join-open")
        .initial_state(State::Open)
        .build()
        .unwrap();
    let (c, sc) = bound(api(), &open);
    assert_eq!(c.current_state(), State::Open);
    let plain = storage(&server.url(), "unused")
        .namespace(open.namespace())
        .build()
        .unwrap();
    let (d, _) = bound(api(), &plain);
    assert_eq!(d.current_state(), State::Open);
    assert!(succeed(&d).unwrap_err().is_open());
    assert_eq!(
        support::fields(&server.get(sc.key().unwrap()).unwrap())[1],
        "open"
    );
}

#[test]
fn the_initial_state_is_applied_once_not_to_a_key_that_expires_later() {
    // Its own server: the script calls it waits for are then its own reads.
    let Some(server) = support::Server::dedicated() else {
        return;
    };
    let s = storage(&server.url(), "initial-once")
        .initial_state(State::Open)
        .resync_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let (cb, st) = bound(api(), &s);
    assert_eq!(cb.current_state(), State::Open);
    // The key goes away (expired, or lost with the server's data): the
    // breaker is closed again, and no read recreates it open.
    let key = st.key().unwrap().to_owned();
    server.cmd(&["DEL", &key]);
    assert!(eventually(Duration::from_secs(2), || cb.current_state()
        == State::Closed));
    let calls = server.calls("evalsha");
    assert!(eventually(Duration::from_secs(2), || server
        .calls("evalsha")
        >= calls + 3));
    assert_eq!(server.get(&key), None);
    assert!(succeed(&cb).is_ok());
}
