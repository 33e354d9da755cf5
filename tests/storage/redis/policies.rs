//! Several half-open trials, a growing backoff and the failure and
//! slow-call rates on the Redis storage, decided by the script for the
//! whole fleet (issue 15, item 2), and what the rates cost in round trips.

use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::{Backoff, CircuitBreaker, Error, Reason, State};

use super::{bound, eventually, storage};
use crate::support::{self, Resp};

/// The script's source, whose backoff functions the first test runs alone.
const SCRIPT: &str = include_str!("../../../breaker-core/src/redis/state.lua");

fn rejected_because<T: std::fmt::Debug>(r: Result<T, Error<&'static str>>) -> Reason {
    match r {
        Err(Error::Open(e)) => e.reason(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The script's period for one case: its `mix32` and `period_ms`, run on
/// the server with the case's settings.
fn script_period(
    server: &support::Server,
    (reset_ms, factor, cap_ms, jitter): (u64, f64, Option<u64>, f64),
    reopens: u32,
    generation: u64,
) -> u64 {
    let start = SCRIPT
        .find("-- state.rs `mix32`")
        .expect("mix32 in the script");
    let end = SCRIPT
        .find("-- state.rs `enter`")
        .expect("enter in the script");
    let lua = format!(
        "local MAX_REOPENS = 255\n\
         local TWO_32 = 4294967296\n\
         local reset_ms = tonumber(ARGV[1])\n\
         local growing = ARGV[2] == '1'\n\
         local factor = tonumber(ARGV[3])\n\
         local cap_ms = tonumber(ARGV[4])\n\
         local jitter = tonumber(ARGV[5])\n\
         local constant = (not growing) and jitter == 0\n\
         {}\n\
         return tostring(period_ms({{reopens = tonumber(ARGV[6]), gen = tonumber(ARGV[7])}}))",
        &SCRIPT[start..end]
    );
    let args = [
        reset_ms.to_string(),
        u8::from(cap_ms.is_some()).to_string(),
        format!("{factor}"),
        cap_ms.unwrap_or(0).to_string(),
        format!("{jitter}"),
        reopens.to_string(),
        generation.to_string(),
    ];
    let mut cmd = vec!["EVAL", &lua, "0"];
    cmd.extend(args.iter().map(String::as_str));
    match server.cmd(&cmd) {
        Resp::Bulk(Some(b)) => String::from_utf8(b).unwrap().parse().unwrap(),
        other => panic!("EVAL: {other:?}"),
    }
}

#[test]
fn the_script_computes_every_backoff_period_as_the_breaker_does() {
    let Some(server) = support::shared() else {
        return;
    };
    // A fixed pseudo-random walk over settings, re-openings and generations
    // (the generation's low 32 bits draw the jitter).
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let factors = [1.0, 1.5, 2.0, 3.0, 1.1, 10.0];
    let jitters = [0.0, 0.1, 0.2, 0.5, 0.999, 1e-9];
    for case in 0..300 {
        let reset_ms = 1 + next() % 120_000;
        let factor = factors[(next() % 6) as usize];
        let cap_ms = (case % 3 != 0).then(|| reset_ms + next() % 3_600_000);
        let jitter = jitters[(next() % 6) as usize];
        let reopens = (next() % 300) as u32;
        let generation = next() % (1 << 48);
        let backoff = match cap_ms {
            Some(cap) => Backoff::exponential(factor, Duration::from_millis(cap)),
            None => Backoff::constant(),
        }
        .jitter(jitter);
        let ours = backoff.period(Duration::from_millis(reset_ms), reopens, generation);
        let theirs = script_period(
            server,
            (reset_ms, factor, cap_ms, jitter),
            reopens,
            generation,
        );
        assert_eq!(
            ours,
            Duration::from_millis(theirs),
            "reset {reset_ms} ms, factor {factor}, cap {cap_ms:?}, jitter {jitter}, \
             reopens {reopens}, generation {generation}"
        );
    }
}

#[test]
fn several_trials_run_at_once_across_the_fleet_and_no_more() {
    let Some(server) = support::shared() else {
        return;
    };
    let (url, ns) = (server.url(), support::namespace("policies-trials"));
    // Two storages on one namespace: two processes of a fleet.
    let make = || {
        let s = storage(&url, "").namespace(ns.clone()).build().unwrap();
        bound(
            CircuitBreaker::builder("api")
                .fail_max(1)
                .success_threshold(4)
                .half_open_calls(3)
                .reset_timeout(Duration::from_secs(60)),
            &s,
        )
    };
    let ((a, _), (b, st)) = (make(), make());
    a.half_open();
    assert!(eventually(Duration::from_secs(2), || b.current_state()
        == State::HalfOpen));
    // Three trials at once, from two processes: the fourth is refused.
    let outer = a.call(|| {
        b.call(|| {
            a.call(|| {
                assert_eq!(
                    rejected_because(b.call(|| Ok::<_, &str>(()))),
                    Reason::TrialInProgress
                );
                let stored = server.get(st.key().unwrap()).unwrap();
                assert!(stored.starts_with("v2 half-open "), "{stored}");
                assert_eq!(support::fields(&stored)[8], "3", "{stored}");
                Ok::<_, &str>(())
            })
            .map_err(|_| "third")
        })
        .map_err(|_| "second")
    });
    assert!(outer.is_ok(), "{outer:?}");
    // Three trial successes; the fourth closes the circuit.
    assert_eq!(a.current_state(), State::HalfOpen);
    assert!(b.call(|| Ok::<_, &str>(())).is_ok());
    assert_eq!(b.current_state(), State::Closed);
    assert!(eventually(Duration::from_secs(2), || a.current_state()
        == State::Closed));
    let stored = server.get(st.key().unwrap()).unwrap();
    assert!(stored.starts_with("v1 closed "), "{stored}");
}

#[test]
fn a_growing_backoff_lengthens_each_reopening_for_the_whole_fleet() {
    let Some(server) = support::shared() else {
        return;
    };
    let (url, ns) = (server.url(), support::namespace("policies-backoff"));
    let reset = Duration::from_millis(80);
    let make = || {
        let s = storage(&url, "")
            .namespace(ns.clone())
            .heartbeat_interval(Duration::from_millis(50))
            .build()
            .unwrap();
        bound(
            CircuitBreaker::builder("api")
                .fail_max(1)
                .reset_timeout(reset)
                .backoff(Backoff::exponential(2.0, Duration::from_secs(10))),
            &s,
        )
    };
    let ((a, st), (b, _)) = (make(), make());
    let _ = a.call(|| Err::<(), _>("boom"));
    assert_eq!(a.current_state(), State::Open);
    for reopens in 1..=3u16 {
        // Wait for the trial, and fail it: the circuit opens again, for
        // twice as long as the time before.
        assert!(eventually(Duration::from_secs(5), || {
            a.call(|| Err::<(), _>("boom"))
                .err()
                .is_some_and(|e| matches!(e, Error::Tripped(..)))
        }));
        let snap = a.snapshot();
        assert_eq!((snap.state, snap.reopens), (State::Open, reopens));
        let period = reset * 2u32.pow(u32::from(reopens));
        let retry = a.retry_after().unwrap();
        assert!(
            retry <= period && retry > period / 2,
            "re-opening {reopens}: retry after {retry:?}, period {period:?}"
        );
        let stored = server.get(st.key().unwrap()).unwrap();
        assert!(stored.starts_with("v2 open "), "{stored}");
        assert_eq!(support::fields(&stored)[9], reopens.to_string());
        // The other process follows and counts the same period.
        assert!(eventually(Duration::from_secs(2), || b.snapshot().reopens == reopens));
        let theirs = b.retry_after().unwrap();
        assert!(theirs <= period, "{theirs:?} beyond {period:?}");
        assert!(b.call(|| Ok::<_, &str>(())).is_err());
        // Ops tools see the period in force too.
        let mut fleet = None;
        assert!(eventually(Duration::from_secs(2), || {
            fleet = st.fleet().get("api").ok().filter(|f| f.settings.is_some());
            fleet.is_some()
        }));
        let fleet = fleet.unwrap();
        let settings = fleet.settings.unwrap();
        assert_eq!(
            settings.backoff,
            Backoff::exponential(2.0, Duration::from_secs(10))
        );
        let shown = fleet.retry_after.unwrap();
        assert!(
            shown <= period && (reopens == 1 || shown > reset),
            "{shown:?}"
        );
    }
    // A trial success closes the circuit and the backoff starts over.
    assert!(eventually(Duration::from_secs(5), || a
        .call(|| Ok::<_, &str>(()))
        .is_ok()));
    assert_eq!(a.current_state(), State::Closed);
    let _ = a.call(|| Err::<(), _>("boom"));
    assert_eq!(a.snapshot().reopens, 0);
    let retry = a.retry_after().unwrap();
    assert!(retry <= reset, "{retry:?}");
}

/// A breaker on a failure rate over a time window, on `storage`.
fn rated(
    storage: &breaker::RedisStorage,
) -> (CircuitBreaker, std::sync::Arc<breaker::RedisStorage>) {
    bound(
        CircuitBreaker::builder("api")
            .failure_rate(0.5)
            .window_time(Duration::from_secs(60))
            .min_calls(10)
            .reset_timeout(Duration::from_secs(60)),
        storage,
    )
}

/// Six successes on `cb`, waited for until the fleet's window holds them.
fn six_successes_sent(cb: &CircuitBreaker) {
    for _ in 0..6 {
        assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
    }
    assert!(eventually(Duration::from_secs(2), || cb.window().calls == 6));
}

/// The call of `failures` (after `successes` successes) that opens a
/// breaker: its number, from 1.
fn trip_point(
    succeed_on: &[&CircuitBreaker],
    fail_on: &CircuitBreaker,
    successes: usize,
) -> Option<(usize, Reason)> {
    for i in 0..successes {
        let cb = succeed_on[i % succeed_on.len()];
        assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
    }
    for n in 1..=50 {
        match fail_on.call(|| Err::<(), _>("boom")) {
            Err(Error::Tripped(e, _)) => return Some((n, e.reason())),
            Err(Error::Inner(_)) => {}
            other => panic!("failure {n}: {other:?}"),
        }
    }
    None
}

#[test]
fn a_failure_rate_over_a_time_window_opens_the_circuit_for_the_whole_fleet() {
    let Some(server) = support::shared() else {
        return;
    };
    let (url, ns) = (server.url(), support::namespace("policies-rate"));
    let make = || {
        let s = storage(&url, "")
            .namespace(ns.clone())
            .flush_interval(Duration::from_millis(20))
            .build()
            .unwrap();
        rated(&s)
    };
    let ((a, _), (b, _)) = (make(), make());
    // Nine successes, six in one process and three in the other, then
    // failures in the second: 9 of 18 calls failed is the first rate at 0.5.
    // The first process's successes reach Redis within a flush interval
    // (its window shows all six only once all are in: the other process
    // has sent none yet); the second's go with its first failure, or
    // before it.
    six_successes_sent(&a);
    let redis = trip_point(&[&b], &b, 3);
    // The same sequence in one process on the memory storage.
    let memory = CircuitBreaker::builder("api")
        .failure_rate(0.5)
        .window_time(Duration::from_secs(60))
        .min_calls(10)
        .build();
    let alone = trip_point(&[&memory], &memory, 9);
    assert_eq!(redis, Some((9, Reason::FailureRate)));
    assert_eq!(redis, alone);
    let stats = b.window();
    assert_eq!((stats.calls, stats.failures), (18, 9), "{stats:?}");
    assert_eq!(stats.failure_rate, Some(0.5));
    // The other process follows, and closing empties the fleet's window.
    assert!(eventually(Duration::from_secs(2), || a.current_state() == State::Open));
    a.close();
    assert!(eventually(Duration::from_secs(2), || b.current_state()
        == State::Closed));
    let _ = b.call(|| Err::<(), _>("boom"));
    let stats = b.window();
    assert_eq!((stats.calls, stats.failures), (1, 1), "{stats:?}");
    assert_eq!(stats.failure_rate, None); // below min_calls
}

/// Round trips `cb` needs to send `successes` closed successes made by
/// `succeed` (from the call of the first one until the fleet's window
/// holds them all), and how long that took.
fn flush_cost(
    server: &support::Server,
    cb: &CircuitBreaker,
    mut succeed: impl FnMut() -> u64,
) -> (u64, u64, Duration) {
    let held = cb.window().calls;
    let before = server.calls("evalsha");
    let start = std::time::Instant::now();
    let successes = succeed();
    assert!(eventually(Duration::from_secs(2), || cb.window().calls
        == held + successes));
    let took = start.elapsed();
    (server.calls("evalsha") - before, successes, took)
}

/// `ceil(took / interval)`, the most round trips successes counted over
/// `took` may cost.
fn most_flushes(took: Duration, interval: Duration) -> u64 {
    took.as_nanos().div_ceil(interval.as_nanos()) as u64
}

#[test]
fn closed_successes_cost_one_round_trip_per_flush_interval_at_most() {
    let Some(server) = support::Server::dedicated() else {
        return;
    };
    let interval = Duration::from_millis(50);
    let s = storage(&server.url(), "policies-flush")
        .flush_interval(interval)
        .heartbeat_interval(Duration::from_secs(3600))
        .resync_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (cb, _) = rated(&s);
    // Once the first success is in, nothing is left to send.
    assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
    assert!(eventually(Duration::from_secs(2), || cb.window().calls == 1));
    // 1,000 successes at once: sent in one round trip.
    let (sent, calls, took) = flush_cost(&server, &cb, || {
        for _ in 0..1_000 {
            assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
        }
        1_000
    });
    eprintln!("{sent} round trips for {calls} closed successes in {took:?}");
    assert_eq!(sent, 1, "{calls} successes in {took:?}");
    assert!(sent <= most_flushes(took, interval));
    // Successes for 300 ms: at most one round trip per interval.
    let (sent, calls, took) = flush_cost(&server, &cb, || {
        let start = std::time::Instant::now();
        let mut calls = 0;
        while start.elapsed() < Duration::from_millis(300) {
            for _ in 0..1_000 {
                assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
            }
            calls += 1_000;
        }
        calls
    });
    let bound = most_flushes(took, interval);
    eprintln!("{sent} round trips for {calls} closed successes in {took:?} (at most {bound})");
    assert!(
        (1..=bound).contains(&sent),
        "{sent} round trips for {calls} successes in {took:?} (at most {bound})"
    );
    // A failure is one round trip, and carries the successes before it.
    let before = server.calls("evalsha");
    for _ in 0..10 {
        assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
    }
    let held = cb.window();
    assert!(matches!(
        cb.call(|| Err::<(), _>("boom")),
        Err(Error::Inner("boom"))
    ));
    assert_eq!(server.calls("evalsha") - before, 1);
    let after = cb.window();
    assert_eq!(after.failures, held.failures + 1, "{after:?}");
    assert!(after.calls >= held.calls + 11, "{held:?} then {after:?}");
}

/// A breaker whose calls are slow past 100 ms on `clock`, with a
/// slow-call rate of 0.5 over a time window of 60 s, from 10 calls (no
/// other condition).
fn slowed(clock: &ManualClock) -> breaker::CircuitBreakerBuilder {
    CircuitBreaker::builder("api")
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate(0.5)
        .window_time(Duration::from_secs(60))
        .min_calls(10)
        .reset_timeout(Duration::from_secs(60))
        .clock(clock.clone())
}

/// `fast` fast successes on `succeed_on` in turn, then slow calls on
/// `slow_on` (the n-th fails when `fails(n)`): the slow call that opens
/// the circuit, its number from 1, and the reason a failure that opened
/// it gave (`None` for a success: it is returned as `Ok`).
fn slow_trip_point(
    succeed_on: &[&CircuitBreaker],
    fast: usize,
    slow_on: &CircuitBreaker,
    clock: &ManualClock,
    fails: impl Fn(usize) -> bool,
) -> Option<(usize, Option<Reason>)> {
    for i in 0..fast {
        let cb = succeed_on[i % succeed_on.len()];
        assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
    }
    let slow = Duration::from_millis(200);
    for n in 1..=50 {
        if fails(n) {
            match slow_on.call(|| {
                clock.advance(slow);
                Err::<(), _>("boom")
            }) {
                Err(Error::Tripped(e, _)) => return Some((n, Some(e.reason()))),
                Err(Error::Inner(_)) => {}
                other => panic!("slow call {n}: {other:?}"),
            }
        } else {
            let done = slow_on.call(|| {
                clock.advance(slow);
                Ok::<_, &str>(())
            });
            assert!(done.is_ok(), "slow call {n}: {done:?}");
            if slow_on.current_state() == State::Open {
                return Some((n, None));
            }
        }
    }
    None
}

#[test]
fn a_slow_call_rate_over_a_time_window_opens_the_circuit_for_the_whole_fleet() {
    let Some(server) = support::shared() else {
        return;
    };
    // The deciding slow call a failure (odd calls fail), then a success:
    // which slow calls fail, and the reason the deciding one gives.
    type Pattern = (&'static str, fn(usize) -> bool, Option<Reason>);
    let patterns: [Pattern; 2] = [
        ("odd-fail", |n| n % 2 == 1, Some(Reason::SlowCallRate)),
        ("succeed", |_| false, None),
    ];
    for (name, fails, reason) in patterns {
        let ns = support::namespace(&format!("policies-slow-{name}"));
        // The breakers' clock, near the server's; slow calls advance it.
        let clock = ManualClock::starting_at(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap(),
        );
        let make = || {
            let s = storage(&server.url(), "")
                .namespace(ns.clone())
                .flush_interval(Duration::from_millis(20))
                .build()
                .unwrap();
            bound(slowed(&clock), &s)
        };
        let ((a, _), (b, _)) = (make(), make());
        // Nine fast successes, six in one process (sent before the
        // others, as above) and three in the other, then slow calls in the
        // second: 9 slow calls of 18 is the first rate at 0.5.
        six_successes_sent(&a);
        let redis = slow_trip_point(&[&b], 3, &b, &clock, fails);
        let memory_clock = ManualClock::new();
        let memory = slowed(&memory_clock).build();
        let alone = slow_trip_point(&[&memory], 9, &memory, &memory_clock, fails);
        assert_eq!(redis, Some((9, reason)), "{name}");
        assert_eq!(redis, alone, "{name}");
        let stats = b.window();
        assert_eq!(
            (stats.calls, stats.slow_calls),
            (18, 9),
            "{name}: {stats:?}"
        );
        assert_eq!(stats.slow_call_rate, Some(0.5), "{name}");
        // The other process follows.
        assert!(
            eventually(Duration::from_secs(2), || a.current_state() == State::Open),
            "{name}"
        );
    }
}

#[test]
fn a_slow_success_is_one_round_trip() {
    let Some(server) = support::Server::dedicated() else {
        return;
    };
    let clock = ManualClock::starting_at(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap(),
    );
    // No subscription: once subscribed, the storage reads every breaker
    // again (a round trip that may land in the middle of the count).
    let s = storage(&server.url(), "policies-slow-trip")
        .subscribe(false)
        .flush_interval(Duration::from_secs(3600))
        .heartbeat_interval(Duration::from_secs(3600))
        .resync_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (cb, _) = bound(slowed(&clock), &s);
    for _ in 0..5 {
        assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
    }
    let before = server.calls("evalsha");
    let done = cb.call(|| {
        clock.advance(Duration::from_millis(150));
        Ok::<_, &str>(())
    });
    assert!(done.is_ok());
    assert_eq!(server.calls("evalsha") - before, 1);
    // It carried the fast successes before it (the flush is an hour away).
    let stats = cb.window();
    assert_eq!((stats.calls, stats.slow_calls), (6, 1), "{stats:?}");
}

#[test]
fn a_count_window_is_refused_on_redis_and_a_time_window_taken() {
    use breaker::{ConfigError, RedisStorage};
    let redis = RedisStorage::builder("redis://127.0.0.1:1/")
        .build()
        .unwrap();
    let err = CircuitBreaker::builder("policies-count")
        .failure_rate(0.5)
        .storage(redis.clone())
        .try_build()
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::Unsupported { setting, .. } if setting.contains("window_time")),
        "{err}"
    );
    assert!(CircuitBreaker::builder("policies-count")
        .failure_rate(0.5)
        .window_time(Duration::from_secs(10))
        .storage(redis.clone())
        .try_build()
        .is_ok());
    // The slow-call rate too, over a time window only.
    let slow = || {
        CircuitBreaker::builder("policies-count-slow")
            .slow_call_duration(Duration::from_secs(1))
            .slow_call_rate(0.5)
            .storage(redis.clone())
    };
    assert!(matches!(
        slow().try_build(),
        Err(ConfigError::Unsupported { .. })
    ));
    assert!(slow()
        .window_time(Duration::from_secs(10))
        .try_build()
        .is_ok());
}
