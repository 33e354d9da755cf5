//! `RedisStorage::fleet`: every process registers the breakers it uses; ops
//! tools list them with the shared state and change them fleet-wide.

use std::time::Duration;

use breaker::redis::RedisStorageError;
use breaker::{CircuitBreaker, RedisStorage, State};

use super::{bound, eventually, storage};
use crate::support;

const BEAT: Duration = Duration::from_millis(50);

fn process(url: &str, ns: &str) -> RedisStorage {
    RedisStorage::builder(url)
        .namespace(ns)
        .heartbeat_interval(BEAT)
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn api() -> breaker::CircuitBreakerBuilder {
    CircuitBreaker::builder("api")
        .fail_max(2)
        .success_threshold(3)
        .reset_timeout(Duration::from_secs(60))
}

#[test]
fn ops_list_every_breaker_of_the_fleet_and_change_it_for_every_process() {
    let Some(server) = support::shared() else {
        return;
    };
    let ns = support::namespace("fleet");
    let (a_store, b_store) = (process(&server.url(), &ns), process(&server.url(), &ns));
    let (a_api, _) = bound(api(), &a_store);
    let (b_api, _) = bound(api(), &b_store);
    let (b_db, _) = bound(CircuitBreaker::builder("db"), &b_store);
    // An ops tool: a storage of the namespace bound to no breaker.
    let ops = storage(&server.url(), "unused")
        .namespace(&ns)
        .build()
        .unwrap();
    assert!(eventually(Duration::from_secs(3), || {
        ops.fleet().list().is_ok_and(|l| {
            l.len() == 2 && l[0].name == "api" && l[0].processes == 2 && l[1].processes == 1
        })
    }));
    let list = ops.fleet().list().unwrap();
    let settings = list[0].settings.expect("registered settings");
    assert_eq!(
        (
            settings.fail_max,
            settings.success_threshold,
            settings.reset_timeout
        ),
        (2, 3, Duration::from_secs(60))
    );
    assert_eq!(list[1].name, "db");
    assert_eq!(list[0].state, Some(State::Closed));

    // A trip in one process shows in the list, with the time to the trial.
    let _ = a_api.call(|| Err::<(), _>("boom"));
    let _ = a_api.call(|| Err::<(), _>("boom"));
    let api = ops.fleet().get("api").unwrap();
    assert_eq!((api.state, api.fail_counter), (Some(State::Open), 2));
    let wait = api.retry_after.expect("open");
    assert!(
        wait <= Duration::from_secs(60) && wait > Duration::from_secs(50),
        "{wait:?}"
    );
    assert!(api.opened_at.is_some());

    // Closed for the fleet: both processes follow, and a watcher hears it.
    let mut events = ops.fleet().watch().unwrap();
    assert_eq!(ops.fleet().close("api").unwrap(), State::Closed);
    let heard = events.next().unwrap();
    assert_eq!(
        (heard.name.as_str(), heard.from, heard.to),
        ("api", State::Open, State::Closed)
    );
    assert!(eventually(Duration::from_secs(2), || a_api.current_state()
        == State::Closed
        && b_api.current_state() == State::Closed));
    assert_eq!(ops.fleet().open("db").unwrap(), State::Open);
    assert!(eventually(Duration::from_secs(2), || b_db.current_state()
        == State::Open));
    assert_eq!(ops.fleet().half_open("db").unwrap(), State::HalfOpen);
    assert_eq!(ops.fleet().reset("db").unwrap(), State::Closed);
    let heard: Vec<_> = events
        .by_ref()
        .take(3)
        .map(|t| (t.name, t.from, t.to))
        .collect();
    let db = |from, to| ("db".to_owned(), from, to);
    assert_eq!(
        heard,
        [
            db(State::Closed, State::Open),
            db(State::Open, State::HalfOpen),
            db(State::HalfOpen, State::Closed)
        ]
    );
    assert!(eventually(Duration::from_secs(2), || b_db.current_state()
        == State::Closed));

    // A process that stops drops out within three heartbeats.
    drop((a_api, a_store));
    assert!(eventually(Duration::from_secs(3), || {
        ops.fleet().get("api").is_ok_and(|b| b.processes == 1)
    }));
    // A name nobody uses reads closed, with nobody and no settings.
    let none = ops.fleet().get("nobody").unwrap();
    assert_eq!(
        (none.state, none.processes, none.settings),
        (Some(State::Closed), 0, None)
    );
}

#[test]
fn an_unreachable_redis_is_an_error_not_a_wait() {
    let ops = RedisStorage::builder("redis://127.0.0.1:1/")
        .connect_timeout(Duration::from_millis(100))
        .command_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = ops.fleet().list().unwrap_err();
    assert!(
        matches!(
            err,
            RedisStorageError::Redis(_) | RedisStorageError::Timeout { .. }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}
