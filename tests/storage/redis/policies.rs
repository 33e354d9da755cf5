//! Several half-open trials and a growing backoff on the Redis storage,
//! decided by the script for the whole fleet (issue 15, item 2).

use std::time::Duration;

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
