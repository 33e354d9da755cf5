//! Breakers per key: made on first use, evicted only when idle, never losing
//! a failure to eviction, retired when quiet.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::keyed::{KeyedBreakers, KeyedConfigError};
use breaker::{CircuitBreaker, ConfigError, Listener, State};
use proptest::prelude::*;

fn ok() -> Result<(), &'static str> {
    Ok(())
}

fn fail() -> Result<(), &'static str> {
    Err("refused")
}

/// A group on `clock` with `fail_max` and `max_keys`.
fn group(clock: &ManualClock, fail_max: u32, max_keys: usize) -> KeyedBreakers<String> {
    let clock = clock.clone();
    KeyedBreakers::builder("http", move |b| b.fail_max(fail_max).clock(clock.clone()))
        .max_keys(max_keys)
        .build()
}

#[test]
fn each_key_has_its_own_breaker() {
    let clock = ManualClock::new();
    let hosts = group(&clock, 2, 100);
    for _ in 0..2 {
        let _ = hosts.get("sick").call(fail);
    }
    assert_eq!(hosts.get("sick").current_state(), State::Open);
    assert_eq!(hosts.get("well").current_state(), State::Closed);
    assert!(hosts.get("well").call(ok).is_ok());
    assert_eq!(hosts.keys(), ["sick", "well"]);
    let sick = hosts.get("sick");
    assert_eq!((sick.name(), sick.key()), ("http", Some("sick")));
}

#[test]
fn the_least_recently_used_idle_key_is_evicted_first() {
    let clock = ManualClock::new();
    let hosts = group(&clock, 5, 3);
    for host in ["a", "b", "c"] {
        let _ = hosts.get(host).call(ok);
        clock.advance(Duration::from_millis(5));
    }
    let _ = hosts.get("a").call(ok); // "b" is now the least recently used
    clock.advance(Duration::from_millis(5));
    let _ = hosts.get("d").call(ok);
    assert_eq!(hosts.keys(), ["a", "c", "d"]);
}

#[test]
fn a_key_with_failures_is_never_evicted() {
    let clock = ManualClock::new();
    let hosts = group(&clock, 5, 2);
    let _ = hosts.get("failing").call(fail);
    clock.advance(Duration::from_millis(5));
    for i in 0..50 {
        let _ = hosts.get(&format!("fresh-{i}")).call(ok);
        clock.advance(Duration::from_millis(1));
    }
    assert!(hosts.keys().contains(&"failing".to_owned()));
    assert_eq!(hosts.get("failing").fail_counter(), 1);
}

/// The attack of issue 17: alternate a failing key with fresh keys, so that
/// an LRU that evicts any closed breaker would reset the failing key's count
/// each time. It must still trip.
#[test]
fn flooding_fresh_keys_cannot_reset_a_failing_keys_history() {
    let clock = ManualClock::new();
    let fail_max = 3;
    let hosts = group(&clock, fail_max, 4);
    for round in 0..fail_max {
        let _ = hosts.get("victim").call(fail);
        for i in 0..10 {
            let _ = hosts.get(&format!("flood-{round}-{i}")).call(ok);
            clock.advance(Duration::from_millis(1));
        }
    }
    assert_eq!(hosts.get("victim").current_state(), State::Open);
    assert!(hosts.get("victim").call(ok).unwrap_err().is_open());
}

#[test]
fn open_and_half_open_breakers_are_never_evicted_and_a_full_group_overflows() {
    let clock = ManualClock::new();
    let hosts = group(&clock, 1, 2);
    let _ = hosts.get("open").call(fail);
    hosts.get("half").half_open();
    let overflowed = hosts.get("new");
    assert_eq!((overflowed.name(), overflowed.key()), ("http", None));
    assert_eq!(hosts.keys(), ["half", "open"]);
    // The overflow breaker is a breaker of the group's settings, shared by
    // every key that finds the group full.
    let _ = hosts.get("new-1").call(fail);
    assert_eq!(hosts.overflow().current_state(), State::Open);
    assert!(hosts.get("new-2").call(ok).unwrap_err().is_open());
    // Once a key is idle again, new keys get breakers of their own.
    hosts.get("half").close();
    assert_eq!(hosts.get("new-3").key(), Some("new-3"));
    assert_eq!(hosts.keys(), ["new-3", "open"]);
}

#[test]
fn a_held_handle_pins_its_key_and_acts_on_the_group() {
    let clock = ManualClock::new();
    let hosts = group(&clock, 5, 1);
    let a = hosts.handle("a");
    assert_eq!(hosts.get("b").key(), None); // "a" is held: the group is full
    a.open();
    assert_eq!(hosts.get("a").current_state(), State::Open);
    a.close();
    drop(a);
    assert_eq!(hosts.get("b").key(), Some("b")); // "a" was idle and unheld
    assert_eq!(hosts.keys(), ["b"]);
}

#[test]
fn a_lent_breaker_outlives_its_eviction_and_its_failure_is_carried() {
    let clock = ManualClock::new();
    let hosts = KeyedBreakers::<String>::builder("lent", {
        let clock = clock.clone();
        move |b| b.fail_max(3).clock(clock.clone())
    })
    .max_keys(2)
    .idle_timeout(Duration::from_secs(1))
    .build();
    let lent = hosts.get("a");
    clock.advance(Duration::from_secs(1));
    assert_eq!(hosts.retire_idle(), 1); // "a" was idle: evicted under the lent handle
                                        // Churn keys so the map reclaims what it can, then use the lent breaker.
    for i in 0..1_000 {
        let _ = hosts.get(&format!("churn-{i}")).call(ok);
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(lent.key(), Some("a"));
    let _ = lent.call(fail); // the call that was lent "a" before its eviction fails
    drop(lent);
    assert_eq!(
        hosts.get("a").fail_counter(),
        1,
        "the failure was carried over"
    );
}

#[test]
fn concurrent_gets_of_a_new_key_make_one_breaker() {
    let builds = Arc::new(AtomicUsize::new(0));
    let hosts = KeyedBreakers::<String>::builder("once", {
        let builds = builds.clone();
        move |b| {
            builds.fetch_add(1, Ordering::Relaxed);
            b
        }
    })
    .build();
    assert_eq!(builds.load(Ordering::Relaxed), 1); // the overflow breaker
    let threads = 8;
    let barrier = Barrier::new(threads);
    let handles: Vec<Arc<CircuitBreaker>> = std::thread::scope(|s| {
        let spawned: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    hosts.handle("new")
                })
            })
            .collect();
        spawned.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(builds.load(Ordering::Relaxed), 2);
    handles[0].open();
    assert!(handles.iter().all(|h| h.current_state() == State::Open));
}

#[test]
fn a_quiet_idle_key_is_retired_after_the_idle_timeout() {
    let clock = ManualClock::new();
    let hosts = KeyedBreakers::<String>::builder("quiet", {
        let clock = clock.clone();
        move |b| b.clock(clock.clone())
    })
    .idle_timeout(Duration::from_secs(60))
    .build();
    let _ = hosts.get("quiet").call(ok);
    let _ = hosts.get("failed").call(fail);
    let _ = hosts.get("busy").call(ok);
    clock.advance(Duration::from_secs(59));
    // Hits stamp the group's last clock reading, read anew every 1,024 hits
    // on a thread (and when a key is added).
    for _ in 0..2_000 {
        let _ = hosts.get("busy").call(ok);
    }
    clock.advance(Duration::from_secs(1));
    // Adding a key sweeps for quiet ones: no background thread.
    let _ = hosts.get("new").call(ok);
    assert_eq!(hosts.keys(), ["busy", "failed", "new"]);
    clock.advance(Duration::from_secs(60));
    assert_eq!(hosts.retire_idle(), 2);
    assert_eq!(hosts.keys(), ["failed"]); // failures are never retired
}

#[test]
fn listeners_hear_the_key() {
    #[derive(Default)]
    struct Heard(Mutex<Vec<(String, Option<String>, State)>>);
    impl Listener for Heard {
        fn state_change(&self, cb: &CircuitBreaker, _: State, new: State) {
            let key = cb.key().map(str::to_owned);
            self.0
                .lock()
                .unwrap()
                .push((cb.name().to_owned(), key, new));
        }
    }
    let heard = Arc::new(Heard::default());
    let hosts = KeyedBreakers::<u16>::builder("ports", {
        let heard = heard.clone();
        move |b| b.fail_max(1).listener_arc(heard.clone())
    })
    .build();
    let _ = hosts.get(&8080).call(fail);
    assert_eq!(
        *heard.0.lock().unwrap(),
        [("ports".to_owned(), Some("8080".to_owned()), State::Open)]
    );
}

#[test]
fn bad_settings_are_typed_errors() {
    let zero = KeyedBreakers::<String>::builder("bad", |b| b).max_keys(0);
    assert_eq!(zero.try_build().err(), Some(KeyedConfigError::MaxKeys));
    let bad = KeyedBreakers::<String>::builder("bad", |b| b.success_threshold(0)).try_build();
    assert_eq!(
        bad.err().map(|e| e.to_string()),
        Some(ConfigError::SuccessThreshold { value: 0 }.to_string())
    );
}

#[derive(Clone, Debug)]
enum Step {
    Call { key: u8, fails: bool },
    Advance,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u8..24, any::<bool>()).prop_map(|(key, fails)| Step::Call { key, fails }),
        1 => Just(Step::Advance),
    ]
}

proptest! {
    /// Random calls over many keys with a small cap: a key whose breaker
    /// counts failures keeps it, with its count, whatever other keys do.
    #[test]
    fn eviction_never_drops_a_breaker_with_state(steps in prop::collection::vec(step(), 1..200)) {
        let clock = ManualClock::new();
        let hosts = KeyedBreakers::<u8>::builder("prop", {
            let clock = clock.clone();
            move |b| b.fail_max(1_000).clock(clock.clone())
        })
        .max_keys(4)
        .idle_timeout(Duration::from_millis(50))
        .build();
        let failing = |hosts: &KeyedBreakers<u8>| -> BTreeMap<String, u32> {
            hosts
                .keys()
                .into_iter()
                .filter_map(|k| {
                    let n = hosts.get(&k.parse::<u8>().unwrap()).fail_counter();
                    (n > 0).then_some((k, n))
                })
                .collect()
        };
        for step in steps {
            let before = failing(&hosts);
            let touched = match step {
                Step::Call { key, fails } => {
                    let cb = hosts.get(&key);
                    let _ = cb.call(|| if fails { fail() } else { ok() });
                    cb.key().map(str::to_owned)
                }
                Step::Advance => {
                    clock.advance(Duration::from_millis(20));
                    None
                }
            };
            let after = failing(&hosts);
            for (key, count) in before {
                if Some(&key) == touched.as_ref() {
                    continue;
                }
                prop_assert_eq!(after.get(&key), Some(&count), "key {} lost its failures", key);
            }
            prop_assert!(hosts.len() <= 4);
        }
    }
}
