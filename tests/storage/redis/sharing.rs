//! Breakers sharing state through one Redis: across storages (each one is a
//! separate set of connections, as another process has), namespaces, keys
//! and their TTL, late joiners, round trips, listeners, staleness, the trial
//! lease, corrupt values, and the Lua script held to `state::step`.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use breaker::storage::Storage;
use breaker::storage::{step, Limits, Op, Outcome, Snapshot};
use breaker::{CircuitBreaker, Error, Reason, RedisStorage, State};

use super::{bound, eventually, storage, stored, RESET};
use crate::suite::Changes;
use crate::support::{self, Resp};

fn fail(cb: &CircuitBreaker) -> Result<(), Error<&'static str>> {
    cb.call(|| Err("boom"))
}

fn succeed(cb: &CircuitBreaker) -> Result<(), Error<&'static str>> {
    cb.call(|| Ok(()))
}

fn trip(cb: &CircuitBreaker) {
    while cb.current_state() == State::Closed {
        let _ = fail(cb);
    }
}

/// Another storage on the same server and namespace: what another process
/// would have.
fn twin(url: &str, of: &RedisStorage) -> RedisStorage {
    RedisStorage::builder(url)
        .namespace(of.namespace())
        .command_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
}

#[test]
fn namespaces_keep_breakers_of_the_same_name_apart() {
    let Some(server) = support::shared() else {
        return;
    };
    let one = storage(&server.url(), "ns-one").build().unwrap();
    let two = storage(&server.url(), "ns-two").build().unwrap();
    let (a, sa) = bound(CircuitBreaker::builder("db").fail_max(2), &one);
    let (b, sb) = bound(CircuitBreaker::builder("db").fail_max(2), &two);
    trip(&a);
    assert_eq!(a.current_state(), State::Open);
    assert_eq!((b.current_state(), b.fail_counter()), (State::Closed, 0));
    assert!(succeed(&b).is_ok());
    assert_ne!(sa.key(), sb.key());
    assert_eq!(stored(server, &sa), Some((State::Open, 2)));
    assert_eq!(stored(server, &sb), None);
    let key = sa.key().unwrap();
    assert!(
        key.starts_with(&format!("{{{}:db}}", one.namespace())),
        "{key}"
    );
}

#[test]
fn each_write_sets_the_key_ttl_and_an_expired_key_reads_closed() {
    let Some(server) = support::shared() else {
        return;
    };
    let s = storage(&server.url(), "ttl")
        .key_ttl(Duration::from_millis(400))
        .trial_lease(Duration::from_millis(50))
        .resync_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let (cb, st) = bound(
        CircuitBreaker::builder("ttl")
            .fail_max(5)
            .reset_timeout(Duration::from_millis(50)),
        &s,
    );
    let key = st.key().unwrap().to_owned();
    let _ = fail(&cb);
    let Resp::Int(ttl) = server.cmd(&["PTTL", &key]) else {
        panic!()
    };
    assert!(ttl > 0 && ttl <= 400, "{ttl}");
    // A longer reset timeout raises the TTL: an open circuit outlives it.
    cb.set_reset_timeout(Duration::from_secs(10));
    let _ = fail(&cb);
    let Resp::Int(ttl) = server.cmd(&["PTTL", &key]) else {
        panic!()
    };
    assert!(ttl > 20_000, "{ttl}");
    cb.set_reset_timeout(Duration::from_millis(50));
    let _ = fail(&cb);
    assert_eq!(cb.fail_counter(), 3);
    // Let the key expire: the view reads it as closed with zero counters, and
    // the next failure counts from there.
    assert!(eventually(Duration::from_secs(3), || server
        .get(&key)
        .is_none()));
    assert!(eventually(Duration::from_secs(2), || cb.fail_counter() == 0));
    let _ = fail(&cb);
    assert_eq!(stored(server, &st), Some((State::Closed, 1)));
}

#[test]
fn a_process_joining_late_follows_the_shared_state_and_changes_nothing() {
    // Its own server: the script calls it counts are then its own.
    let Some(server) = support::Server::dedicated() else {
        return;
    };
    let first = storage(&server.url(), "late").build().unwrap();
    let (a, sa) = bound(CircuitBreaker::builder("api").fail_max(2), &first);
    trip(&a);
    let before = server.get(sa.key().unwrap()).unwrap();
    // A new storage, as a new process would build: its first call already
    // follows the shared state.
    let late = twin(&server.url(), &first);
    let evalsha = server.calls("evalsha");
    let (b, sb) = bound(CircuitBreaker::builder("api").fail_max(2), &late);
    assert!(sb.is_shared());
    assert_eq!((b.current_state(), b.fail_counter()), (State::Open, 2));
    let r = succeed(&b);
    assert!(
        matches!(r, Err(Error::Open(ref e)) if e.reason() == Reason::TimeoutNotElapsed),
        "{r:?}"
    );
    // Joining read the state (one script call) and wrote nothing.
    assert_eq!(server.get(sb.key().unwrap()).unwrap(), before);
    assert!(server.calls("evalsha") - evalsha <= 2);
}

#[test]
fn round_trips_per_operation() {
    let Some(server) = support::Server::dedicated() else {
        return;
    };
    let s = storage(&server.url(), "trips")
        .resync_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let (cb, _st) = bound(
        CircuitBreaker::builder("trips")
            .fail_max(2)
            .reset_timeout(Duration::from_secs(60)),
        &s,
    );
    // Let the background work settle: once subscribed, the storage reads
    // every breaker's state again (messages may have been missed).
    let channel = format!("{}:events", s.namespace());
    let subscribed = || server.cmd(&["PUBSUB", "NUMSUB", &channel]);
    assert!(eventually(Duration::from_secs(2), || matches!(
        subscribed(),
        Resp::Array(Some(ref v)) if v.get(1) == Some(&Resp::Int(1))
    )));
    thread::sleep(Duration::from_millis(50));
    let scripts = || server.calls("evalsha") + server.calls("eval");
    let start = scripts();
    for _ in 0..1_000 {
        succeed(&cb).unwrap();
    }
    assert_eq!(
        scripts() - start,
        0,
        "a closed-state success makes no round trip"
    );
    let _ = fail(&cb);
    assert_eq!(scripts() - start, 1, "a failure costs one");
    succeed(&cb).unwrap();
    assert_eq!(
        scripts() - start,
        2,
        "the first success after failures costs one"
    );
    succeed(&cb).unwrap();
    assert_eq!(scripts() - start, 2);
    let _ = fail(&cb);
    let _ = fail(&cb);
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(scripts() - start, 4);
    for _ in 0..1_000 {
        assert!(succeed(&cb).unwrap_err().is_open());
    }
    assert_eq!(scripts() - start, 4, "a rejection makes no round trip");
}

#[test]
fn listeners_in_every_process_hear_each_transition_once() {
    let Some(server) = support::shared() else {
        return;
    };
    let one = storage(&server.url(), "listeners").build().unwrap();
    let two = twin(&server.url(), &one);
    let heard_a = Arc::new(Changes::default());
    let heard_b = Arc::new(Changes::default());
    let builder = || {
        CircuitBreaker::builder("svc")
            .fail_max(2)
            .reset_timeout(RESET)
    };
    let (a, _) = bound(builder().listener_arc(heard_a.clone()), &one);
    let (b, _) = bound(builder().listener_arc(heard_b.clone()), &two);
    trip(&a); // A: closed -> open, itself; B: from its storage
    assert!(eventually(Duration::from_secs(1), || b.current_state() == State::Open));
    thread::sleep(RESET + Duration::from_millis(20));
    succeed(&b).unwrap(); // B: open -> half-open -> closed, itself; A: from its storage
    assert!(eventually(Duration::from_secs(1), || a.current_state()
        == State::Closed));
    thread::sleep(Duration::from_millis(150));
    use State::*;
    let all = [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)];
    assert_eq!(heard_b.seen(), all);
    // A hears both of the trial's writes, even when a read shows it the
    // second before the first one's message arrives.
    assert_eq!(heard_a.seen(), all);
}

#[test]
fn a_transition_shows_elsewhere_within_the_bound() {
    let Some(server) = support::shared() else {
        return;
    };
    // With pub/sub: one message delivery.
    let one = storage(&server.url(), "bound").build().unwrap();
    let two = twin(&server.url(), &one);
    let (a, _) = bound(CircuitBreaker::builder("x").fail_max(1), &one);
    let (b, _) = bound(CircuitBreaker::builder("x").fail_max(1), &two);
    let _ = fail(&a);
    let tripped = Instant::now();
    assert!(eventually(Duration::from_secs(1), || b.current_state() == State::Open));
    let seen = tripped.elapsed();
    assert!(seen < Duration::from_millis(100), "seen after {seen:?}");

    // Without it: the resync interval plus the command timeout.
    let resync = Duration::from_millis(150);
    let quiet = |s: &RedisStorage| {
        RedisStorage::builder(server.url())
            .namespace(s.namespace())
            .subscribe(false)
            .resync_interval(resync)
            .command_timeout(Duration::from_millis(200))
            .build()
            .unwrap()
    };
    let three = storage(&server.url(), "bound-quiet").build().unwrap();
    let four = quiet(&three);
    let (c, _) = bound(CircuitBreaker::builder("y").fail_max(1), &three);
    let (d, _) = bound(CircuitBreaker::builder("y").fail_max(1), &four);
    let _ = fail(&c);
    let tripped = Instant::now();
    assert!(eventually(Duration::from_secs(2), || d.current_state() == State::Open));
    let seen = tripped.elapsed();
    assert!(
        seen <= resync + Duration::from_millis(200 + 50),
        "seen after {seen:?}"
    );
}

#[test]
fn a_crashed_trial_holder_cannot_wedge_half_open() {
    let Some(server) = support::shared() else {
        return;
    };
    let one = storage(&server.url(), "lease")
        .trial_lease(Duration::from_millis(200))
        .build()
        .unwrap();
    let two = RedisStorage::builder(server.url())
        .namespace(one.namespace())
        .trial_lease(Duration::from_millis(200))
        .build()
        .unwrap();
    let builder = || {
        CircuitBreaker::builder("lease")
            .fail_max(1)
            .reset_timeout(RESET)
    };
    let (a, sa) = bound(builder(), &one);
    let (b, _) = bound(builder(), &two);
    trip(&a);
    thread::sleep(RESET + Duration::from_millis(20));
    // A takes the trial and "crashes": it never reports.
    let limits = Limits {
        fail_max: 1,
        success_threshold: 1,
        reset_timeout: RESET,
        now: Duration::ZERO,
        ..Limits::DEFAULT
    };
    let taken = sa.apply(Op::Admit, &limits);
    let Outcome::Admitted {
        generation,
        trial: true,
    } = taken.outcome
    else {
        panic!("{taken:?}")
    };
    assert!(eventually(Duration::from_secs(1), || b.snapshot().trial));
    let r = succeed(&b);
    assert!(
        matches!(r, Err(Error::Open(ref e)) if e.reason() == Reason::TrialInProgress),
        "{r:?}"
    );
    // Once the lease runs out, B runs the trial and closes the circuit.
    thread::sleep(Duration::from_millis(220));
    succeed(&b).unwrap();
    assert_eq!(b.current_state(), State::Closed);
    // The crashed holder's late result is ignored.
    let late = sa.apply(
        Op::Failure {
            generation,
            trial: true,
        },
        &limits,
    );
    assert_eq!(late.outcome, Outcome::Stale);
    assert!(eventually(Duration::from_secs(1), || a.current_state()
        == State::Closed));
}

#[test]
fn a_corrupt_value_gives_the_fallback_state_until_repaired() {
    let Some(server) = support::shared() else {
        return;
    };
    let s = storage(&server.url(), "corrupt")
        .fallback_state(State::Open)
        .resync_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let heard = Arc::new(Changes::default());
    let (cb, st) = bound(
        CircuitBreaker::builder("c")
            .fail_max(3)
            .reset_timeout(Duration::from_secs(60))
            .listener_arc(heard.clone()),
        &s,
    );
    let key = st.key().unwrap().to_owned();
    let _ = fail(&cb);
    for junk in [
        "v1 open 1 2 3",
        "\u{1F4A5}",
        "v1 closed 0 99999999 0 0 0 1",
        "v1 open 0 0 0 0 0 1",
    ] {
        server.cmd(&["SET", &key, junk]);
        let _ = fail(&cb); // the script finds it corrupt
        assert!(!st.is_shared(), "{junk:?}");
        assert_eq!(cb.current_state(), State::Open, "{junk:?}");
        assert!(succeed(&cb).unwrap_err().is_open());
        cb.reset(); // repairs it
        assert!(st.is_shared());
        assert_eq!(cb.current_state(), State::Closed);
    }
    // Not even a string.
    server.cmd(&["DEL", &key]);
    server.cmd(&["HSET", &key, "state", "open"]);
    let _ = fail(&cb);
    assert!(!st.is_shared());
    // Repaired by someone else: the periodic read finds a valid value.
    server.cmd(&["DEL", &key]);
    assert!(eventually(Duration::from_secs(2), || st.is_shared()));
    assert_eq!(cb.current_state(), State::Closed);
    let seen = heard.seen();
    assert!(seen.iter().all(|(a, b)| a != b), "{seen:?}");
}

#[test]
fn forged_messages_cause_no_harm_beyond_two_resyncs() {
    let Some(server) = support::shared() else {
        return;
    };
    let s = storage(&server.url(), "forged")
        .resync_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let (cb, st) = bound(CircuitBreaker::builder("f").fail_max(3), &s);
    let channel = format!("{}:events", s.namespace());
    for junk in [
        "",
        "\n\n\n",
        "x\nclosed\nv1 nope\nf",
        "\u{0}\u{0}",
        "1:2\nopen\nv1 closed 0 0 0 0 0 1\n",
    ] {
        server.cmd(&["PUBLISH", &channel, junk]);
    }
    // A forged, valid-looking state with the largest sequence: believed at
    // first, then replaced by what two reads in a row find.
    server.cmd(&[
        "PUBLISH",
        &channel,
        "1:1\nclosed\nv1 open 9 3 0 0 1000 9007199254740991\nf",
    ]);
    let healed = eventually(Duration::from_secs(2), || {
        cb.current_state() == State::Closed && st.is_shared()
    });
    assert!(healed);
    succeed(&cb).unwrap();
}

/// Random operations through the storage, each checked against `step`
/// applied to the state the script reports it found.
#[test]
fn the_script_follows_step() {
    let Some(server) = support::shared() else {
        return;
    };
    let s = storage(&server.url(), "step")
        .trial_lease(Duration::from_secs(3_600))
        .build()
        .unwrap();
    for seed in 1..=3u64 {
        let (_cb, st) = bound(CircuitBreaker::builder(format!("step-{seed}")), &s);
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut last = Snapshot::INITIAL;
        for i in 0..250 {
            let gen = match next(3) {
                0 => last.generation.wrapping_sub(1),
                _ => last.generation,
            };
            let trial = next(2) == 0;
            let op = match next(10) {
                0 | 1 => Op::Admit,
                // A slow call (no rate policy here: its success or failure).
                9 => Op::SlowCall {
                    generation: gen,
                    failed: trial,
                },
                2 | 3 => Op::Success {
                    generation: gen,
                    trial,
                },
                4 | 5 => Op::Failure {
                    generation: gen,
                    trial,
                },
                6 => Op::Cancel { generation: gen },
                7 => Op::Force(State::ALL[next(3) as usize]),
                _ => Op::Reset,
            };
            let limits = Limits {
                fail_max: 1 + next(4) as u32,
                success_threshold: 1 + next(3) as u32,
                // Either elapsed at once or never: no dependence on timing.
                reset_timeout: [Duration::ZERO, Duration::from_secs(3_600)][next(2) as usize],
                now: Duration::ZERO,
                ..Limits::DEFAULT
            };
            let applied = st.apply(op, &limits);
            // The server's clock decided; take a time that agrees with it.
            let now = match (op, applied.before.state, applied.before.opened_at) {
                (Op::Admit, State::Open, Some(opened)) => {
                    if matches!(applied.outcome, Outcome::Admitted { .. }) {
                        opened + limits.reset_timeout
                    } else {
                        opened.saturating_sub(Duration::from_millis(1))
                    }
                }
                _ => applied.after.opened_at.unwrap_or_default(),
            };
            let (mut want, outcome) = step(&applied.before, op, &Limits { now, ..limits });
            want.generation %= 1 << 48;
            let outcome = match outcome {
                Outcome::Admitted { generation, trial } => Outcome::Admitted {
                    generation: generation % (1 << 48),
                    trial,
                },
                other => other,
            };
            assert_eq!(
                applied.outcome, outcome,
                "op {i} {op:?} on {:?}",
                applied.before
            );
            let got = applied.after;
            if got.state != State::Open {
                // `opened_at` is the server's, kept through half-open.
                want.opened_at = got.opened_at;
            }
            assert_eq!(got, want, "op {i} {op:?} on {:?}", applied.before);
            last = applied.after;
        }
    }
}
