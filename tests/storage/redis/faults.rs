//! Redis stopped, paused (`DEBUG SLEEP`) and restarted under a running
//! breaker: calls go on from the fallback state, none waits longer than the
//! command timeout, nothing panics, and the shared state is back once Redis
//! is.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use breaker::{CircuitBreaker, Error, State};

use super::{bound, eventually, storage, stored};
use crate::suite::Changes;
use crate::support::{self, Server};

const TIMEOUT: Duration = Duration::from_millis(200);
/// Scheduling slack on top of the command timeout on a busy machine.
const SLACK: Duration = Duration::from_millis(60);

fn fail(cb: &CircuitBreaker) -> Result<(), Error<&'static str>> {
    cb.call(|| Err("boom"))
}

/// Runs `call` and checks it took no longer than the command timeout.
fn timed<T>(call: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = call();
    let took = start.elapsed();
    assert!(took <= TIMEOUT + SLACK, "a call took {took:?}");
    out
}

#[test]
fn redis_stopped_then_restarted() {
    let Some(mut server) = Server::dedicated() else {
        return;
    };
    let s = storage(&server.url(), "stopped")
        .command_timeout(TIMEOUT)
        .resync_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let heard = Arc::new(Changes::default());
    let (cb, st) = bound(
        CircuitBreaker::builder("stopped")
            .fail_max(3)
            .reset_timeout(Duration::from_secs(60))
            .listener_arc(heard.clone()),
        &s,
    );
    let _ = fail(&cb);
    let _ = fail(&cb);
    assert_eq!(stored(&server, &st), Some((State::Closed, 2)));

    server.stop();
    // The fallback is closed with zero counters; local failures count, and
    // can open the circuit in this process.
    // (The failure that finds Redis gone was admitted from the shared state
    // and does not count on the fallback.)
    for _ in 0..5 {
        if cb.current_state() == State::Open {
            break;
        }
        let _ = timed(|| fail(&cb));
    }
    assert!(!st.is_shared());
    assert_eq!(cb.current_state(), State::Open);
    for _ in 0..100 {
        assert!(timed(|| cb.call(|| Ok::<_, &str>(())))
            .unwrap_err()
            .is_open());
    }

    server.restart(); // empty: no persistence
    assert!(eventually(Duration::from_secs(3), || st.is_shared()));
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
    let _ = fail(&cb);
    assert_eq!(stored(&server, &st), Some((State::Closed, 1)));
    thread::sleep(Duration::from_millis(100));
    use State::*;
    assert_eq!(heard.seen(), [(Closed, Open), (Open, Closed)]);
}

#[test]
fn redis_paused_with_debug_sleep() {
    let Some(server) = Server::dedicated() else {
        return;
    };
    let s = storage(&server.url(), "paused")
        .command_timeout(TIMEOUT)
        .fallback_state(State::Open)
        .resync_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let (cb, st) = bound(
        CircuitBreaker::builder("paused")
            .fail_max(5)
            .reset_timeout(Duration::from_secs(60)),
        &s,
    );
    let _ = fail(&cb);
    assert_eq!(stored(&server, &st), Some((State::Closed, 1)));

    let port = server.port;
    let sleeper = thread::spawn(move || support::command(port, &["DEBUG", "SLEEP", "1"]));
    thread::sleep(Duration::from_millis(50));
    let paused = Instant::now();
    let mut calls = 0;
    while paused.elapsed() < Duration::from_millis(700) {
        // The first failure waits for the timeout; then the fallback (open)
        // rejects at once.
        let _ = timed(|| fail(&cb));
        calls += 1;
    }
    assert!(!st.is_shared());
    assert_eq!(cb.current_state(), State::Open);
    assert!(calls > 10, "{calls}");
    sleeper.join().unwrap().unwrap();

    // Back: the shared state wins (with the failure sent before the timeout,
    // which Redis applied once it woke up).
    assert!(eventually(Duration::from_secs(3), || st.is_shared()));
    let (state, fails) = stored(&server, &st).unwrap();
    assert_eq!(state, State::Closed);
    assert!(fails == 1 || fails == 2, "{fails}");
    assert!(eventually(Duration::from_secs(1), || cb.fail_counter() == fails));
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn async_calls_never_wait_longer_than_the_command_timeout() {
    let Some(server) = Server::dedicated() else {
        return;
    };
    let s = storage(&server.url(), "async-paused")
        .command_timeout(TIMEOUT)
        .build()
        .unwrap();
    let (cb, st) = bound(CircuitBreaker::builder("ap").fail_max(50), &s);
    let port = server.port;
    let sleeper = thread::spawn(move || support::command(port, &["DEBUG", "SLEEP", "0.6"]));
    thread::sleep(Duration::from_millis(50));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        // A ticker on the same (single) executor thread keeps running: no
        // call blocks the executor.
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let start = Instant::now();
        let r = cb.call_async(async { Err::<(), _>("boom") }).await;
        let took = start.elapsed();
        assert!(matches!(r, Err(Error::Inner("boom"))));
        assert!(took <= TIMEOUT + SLACK, "{took:?}");
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) >= 5);
        for _ in 0..10 {
            let start = Instant::now();
            let _ = cb.call_async(async { Err::<(), _>("boom") }).await;
            assert!(start.elapsed() < Duration::from_millis(20));
        }
        ticker.abort();
    });
    assert!(!st.is_shared());
    sleeper.join().unwrap().unwrap();
    assert!(eventually(Duration::from_secs(3), || st.is_shared()));
}

#[test]
fn a_process_starting_while_redis_is_down() {
    if !support::available() {
        return;
    }
    let port = support::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let s = storage(&url, "down-at-start")
        .command_timeout(TIMEOUT)
        .build()
        .unwrap();
    // Building the breaker does not wait for a server that refuses
    // connections, and calls run on the fallback (closed).
    let start = Instant::now();
    let (cb, st) = bound(CircuitBreaker::builder("late-redis").fail_max(2), &s);
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert!(!st.is_shared());
    for _ in 0..10 {
        timed(|| cb.call(|| Ok::<_, &str>(()))).unwrap();
    }
    let _ = timed(|| fail(&cb));
    assert_eq!(cb.fail_counter(), 1);
    // Redis comes up: the storage connects and follows it.
    let server = Server::start_at(port);
    assert!(eventually(Duration::from_secs(3), || st.is_shared()));
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
    let _ = fail(&cb);
    assert_eq!(stored(&server, &st), Some((State::Closed, 1)));
}
