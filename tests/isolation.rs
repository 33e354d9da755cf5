//! Isolated scopes: tests that trip the same declared breaker run in
//! parallel without seeing each other's calls.

use std::sync::Barrier;
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::registry::{self, Isolation};
use breaker::{circuit_breaker, CircuitBreakerError, State};

#[derive(Debug, PartialEq)]
enum DbError {
    Down,
    Rejected,
}

impl From<CircuitBreakerError> for DbError {
    fn from(_: CircuitBreakerError) -> Self {
        DbError::Rejected
    }
}

#[circuit_breaker(name = "iso-db", fail_max = 2, reset_timeout = "30s")]
fn query(ok: bool) -> Result<u32, DbError> {
    match ok {
        true => Ok(1),
        false => Err(DbError::Down),
    }
}

#[circuit_breaker(name = "iso-db")]
async fn query_async(ok: bool) -> Result<u32, DbError> {
    query_inner(ok)
}

fn query_inner(ok: bool) -> Result<u32, DbError> {
    match ok {
        true => Ok(1),
        false => Err(DbError::Down),
    }
}

/// Trips `iso-db` and checks it starts fresh: run by two tests at once.
fn trip_in_isolation() {
    registry::isolate(|| {
        assert_eq!(registry::get("iso-db").current_state(), State::Closed);
        assert_eq!(query(false), Err(DbError::Down));
        assert_eq!(registry::get("iso-db").fail_counter(), 1);
        assert_eq!(query(false), Err(DbError::Rejected)); // opens it
        assert_eq!(query(true), Err(DbError::Rejected));
        registry::reset("iso-db");
        assert_eq!(query(true), Ok(1));
    });
}

#[test]
fn one_test_trips_the_breaker() {
    trip_in_isolation();
}

#[test]
fn another_test_trips_the_same_breaker() {
    trip_in_isolation();
}

#[test]
fn two_threads_in_their_own_scopes_do_not_see_each_other() {
    let opened = Barrier::new(2);
    let checked = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            registry::isolate(|| {
                let _ = query(false);
                let _ = query(false);
                assert_eq!(registry::get("iso-db").current_state(), State::Open);
                opened.wait();
                checked.wait();
                assert_eq!(registry::get("iso-db").current_state(), State::Open);
            })
        });
        s.spawn(|| {
            let _isolated = Isolation::new().enter();
            opened.wait();
            // The other thread's breaker is open; this one is not.
            assert_eq!(registry::get("iso-db").current_state(), State::Closed);
            assert_eq!(query(true), Ok(1));
            checked.wait();
        });
    });
}

#[test]
fn an_isolated_breaker_runs_on_the_scope_clock() {
    let clock = ManualClock::new();
    Isolation::new().clock(clock.clone()).run(|| {
        let _ = query(false);
        let _ = query(false);
        assert_eq!(query(true), Err(DbError::Rejected));
        clock.advance(Duration::from_secs(30));
        assert_eq!(query(true), Ok(1)); // the trial
        assert_eq!(registry::get("iso-db").current_state(), State::Closed);
    });
}

#[test]
fn nested_scopes_are_fresh_and_the_outer_one_comes_back() {
    registry::isolate(|| {
        let _ = query(false);
        registry::isolate(|| {
            assert_eq!(registry::get("iso-db").fail_counter(), 0);
        });
        assert_eq!(registry::get("iso-db").fail_counter(), 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_future_keeps_its_scope_across_threads() {
    let clock = ManualClock::new();
    let task = Isolation::new().clock(clock.clone()).run_async(async move {
        let _ = query_async(false).await;
        tokio::task::yield_now().await; // may resume on another worker
        let _ = query_async(false).await;
        assert_eq!(query_async(true).await, Err(DbError::Rejected));
        clock.advance(Duration::from_secs(30));
        assert_eq!(query_async(true).await, Ok(1));
    });
    tokio::spawn(task).await.unwrap();
}

// ---- keyed groups ----

#[circuit_breaker(name = "iso-http", fail_max = 1, reset_timeout = "30s", key = host)]
fn fetch(host: &str, ok: bool) -> Result<u32, DbError> {
    query_inner(ok)
}

/// Trips `iso-http[down]` and checks the group starts fresh: run by two
/// threads at once, each in its own scope.
fn trip_a_key_in_isolation(opened: &Barrier) {
    let clock = ManualClock::new();
    Isolation::new().clock(clock.clone()).run(|| {
        assert_eq!(registry::keys("iso-http"), Some(vec![]));
        assert_eq!(fetch("down", false), Err(DbError::Rejected)); // trips it
        assert_eq!(
            registry::get_key("iso-http", "down")
                .unwrap()
                .current_state(),
            State::Open
        );
        assert_eq!(fetch("down", true), Err(DbError::Rejected));
        assert_eq!(fetch("up", true), Ok(1));
        opened.wait(); // both scopes have tripped "down"
        assert_eq!(registry::keys("iso-http").unwrap(), ["down", "up"]);
        let down = registry::get_key("iso-http", "down").unwrap();
        assert_eq!(down.current_state(), State::Open);
        clock.advance(Duration::from_secs(30)); // only this scope's clock
        assert_eq!(fetch("down", true), Ok(1)); // the trial closes it
    });
}

#[test]
fn two_scopes_trip_the_same_keyed_name_apart() {
    let opened = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| trip_a_key_in_isolation(&opened));
        s.spawn(|| trip_a_key_in_isolation(&opened));
    });
    // The process-wide group never saw these calls.
    assert!(registry::get_key("iso-http", "down").is_none());
}

#[test]
fn a_spawned_thread_enters_the_scope_it_is_given() {
    registry::isolate(|| {
        let scope = Isolation::current().expect("inside a scope");
        std::thread::spawn(move || {
            scope.run(|| {
                let _ = query(false);
                let _ = fetch("from-a-thread", false);
            })
        })
        .join()
        .unwrap();
        // The thread's calls went to this scope's breakers.
        assert_eq!(registry::get("iso-db").fail_counter(), 1);
        let key = registry::get_key("iso-http", "from-a-thread").unwrap();
        assert_eq!(key.current_state(), State::Open);
        // A thread that is not given the scope sees the process-wide ones.
        std::thread::spawn(|| assert!(Isolation::current().is_none()))
            .join()
            .unwrap();
    });
    assert!(Isolation::current().is_none());
    assert!(registry::get_key("iso-http", "from-a-thread").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_task_runs_in_the_scope_it_is_given() {
    Isolation::new()
        .run_async(async {
            let scope = Isolation::current().expect("polled inside a scope");
            tokio::spawn(scope.run_async(async {
                let _ = query_async(false).await;
            }))
            .await
            .unwrap();
            assert_eq!(registry::get("iso-db").fail_counter(), 1);
        })
        .await;
}
