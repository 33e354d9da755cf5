//! Stored values this configuration could not have written (a trial lease
//! or an opening time decades ahead, a sequence number far ahead of the
//! server's clock) are repaired instead of followed.

use std::time::Duration;

use breaker::{CircuitBreaker, Error, State};

use super::{bound, eventually, storage, RESET};
use crate::support;

fn succeed(cb: &CircuitBreaker) -> Result<(), Error<&'static str>> {
    cb.call(|| Ok(()))
}

fn fail(cb: &CircuitBreaker) -> Result<(), Error<&'static str>> {
    cb.call(|| Err("boom"))
}

/// About 2255, in milliseconds since the Unix epoch.
const FAR_MS: u64 = 9_000_000_000_000;

fn breaker(server: &support::Server, test: &str) -> (CircuitBreaker, String) {
    let s = storage(&server.url(), test)
        .resync_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let (cb, st) = bound(
        CircuitBreaker::builder("api")
            .fail_max(3)
            .reset_timeout(RESET),
        &s,
    );
    // One failure writes the key.
    let _ = fail(&cb);
    let key = st.key().unwrap().to_owned();
    assert!(server.get(&key).is_some());
    (cb, key)
}

/// The next sequence number after the stored one: a value written as if by
/// the next write, so views take it at once.
fn next_seq(server: &support::Server, key: &str) -> u64 {
    let stored = server.get(key).unwrap();
    support::fields(&stored)[7].parse::<u64>().unwrap() + 1
}

#[test]
fn an_opening_time_in_the_future_counts_from_now() {
    let Some(server) = support::shared() else {
        return;
    };
    let (cb, key) = breaker(server, "repair-opened");
    let seq = next_seq(server, &key);
    server.cmd(&["SET", &key, &format!("v1 open 7 3 0 0 {FAR_MS} {seq}")]);
    // Followed at first, then repaired by a read: the open period counts
    // from the repair, and a trial follows it.
    assert!(eventually(Duration::from_secs(2), || cb.current_state() == State::Open));
    assert!(eventually(Duration::from_secs(3), || succeed(&cb).is_ok()));
    assert_eq!(cb.current_state(), State::Closed);
    let opened: u64 = support::fields(&server.get(&key).unwrap())[6]
        .parse()
        .unwrap();
    assert_eq!(opened, 0);
}

#[test]
fn a_trial_lease_decades_ahead_frees_its_place() {
    let Some(server) = support::shared() else {
        return;
    };
    let (cb, key) = breaker(server, "repair-lease");
    let seq = next_seq(server, &key);
    server.cmd(&["SET", &key, &format!("v1 half-open 7 0 0 {FAR_MS} 0 {seq}")]);
    // Without the repair every call is refused ("trial in progress") until
    // someone resets the breaker.
    assert!(eventually(Duration::from_secs(2), || cb.current_state()
        == State::HalfOpen));
    assert!(eventually(Duration::from_secs(3), || succeed(&cb).is_ok()));
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn a_sequence_number_far_ahead_is_renumbered_from_the_clock() {
    let Some(server) = support::shared() else {
        return;
    };
    let (cb, key) = breaker(server, "repair-seq");
    let far_us = FAR_MS * 1_000;
    server.cmd(&["SET", &key, &format!("v1 closed 7 2 0 0 0 {far_us}")]);
    assert!(eventually(Duration::from_secs(2), || cb.fail_counter() == 2));
    // The write that trips numbers from the server's clock; the views
    // follow a renumbered value after two reads (as any regression).
    let _ = fail(&cb);
    assert!(eventually(Duration::from_secs(2), || cb.current_state() == State::Open));
    let stored = server.get(&key).unwrap();
    let seq: u64 = support::fields(&stored)[7].parse().unwrap();
    assert!(seq < far_us / 2, "{stored}");
    assert_eq!(support::fields(&stored)[1], "open");
}
