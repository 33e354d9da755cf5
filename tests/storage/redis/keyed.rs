//! Breakers per key on Redis: each key its own shared state under the
//! group's name (`name[key]`), shared by every process's group, expiring
//! with the storage's TTL.

use std::time::Duration;

use breaker::keyed::KeyedBreakers;
use breaker::State;

use super::{eventually, storage};
use crate::support::{self, Resp};

#[test]
fn each_key_shares_its_state_across_groups_and_expires_with_the_ttl() {
    let Some(server) = support::shared() else {
        return;
    };
    let redis = storage(&server.url(), "keyed")
        .key_ttl(Duration::from_secs(30))
        .resync_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    // Two "processes": two groups of one name on one Redis and namespace.
    let group = || {
        let redis = redis.clone();
        KeyedBreakers::<String>::builder("http", move |b| {
            b.fail_max(2)
                .reset_timeout(Duration::from_secs(5))
                .storage(redis.clone())
        })
        .build()
    };
    let (one, two) = (group(), group());
    for _ in 0..2 {
        let _ = one.get("sick").call(|| Err::<(), _>("refused"));
    }
    assert_eq!(one.get("sick").current_state(), State::Open);
    // The other process's breaker for the key reads the shared state ...
    assert!(eventually(Duration::from_secs(2), || two
        .get("sick")
        .current_state()
        == State::Open));
    assert!(two
        .get("sick")
        .call(|| Ok::<_, &str>(()))
        .unwrap_err()
        .is_open());
    // ... and its other keys are their own.
    assert_eq!(two.get("well").current_state(), State::Closed);
    assert!(two.get("well").call(|| Ok::<_, &str>(())).is_ok());
    // The key's state is stored under the group's name and the key, with
    // the storage's TTL.
    let key = format!("{{{}:http[sick]}}:state", redis.namespace());
    let stored = server.get(&key).expect("the key's state is in Redis");
    assert_eq!(support::fields(&stored)[1], "open", "{stored}");
    let Resp::Int(ttl) = server.cmd(&["PTTL", &key]) else {
        panic!("PTTL {key}")
    };
    assert!(ttl > 20_000 && ttl <= 30_000, "{ttl}");
    // Evicting the key's breaker locally loses nothing: a new one reads the
    // shared state back.
    let _ = one.get("sick"); // (still open: never idle, never evicted)
    assert_eq!(one.keys(), ["sick"]);
}
