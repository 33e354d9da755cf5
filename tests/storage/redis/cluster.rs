//! Cluster mode against a real 3-master Redis Cluster.

use std::collections::HashSet;
use std::thread;
use std::time::Duration;

use breaker::{CircuitBreaker, RedisStorage, State};

use super::{bound, eventually, RESET};
use crate::support::{self, Cluster, Resp};

fn cluster_storage(cluster: &Cluster, namespace: &str) -> RedisStorage {
    let urls = cluster.urls();
    let mut builder = RedisStorage::builder(urls[0].as_str())
        .cluster_mode(true)
        .namespace(namespace)
        .command_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(2));
    for url in &urls[1..] {
        builder = builder.node(url.as_str());
    }
    builder.build().unwrap()
}

#[test]
fn cluster_mode_shares_breakers_spread_over_the_nodes() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let namespace = support::namespace("cluster");
    // Two storages: two processes, as far as Redis can tell.
    let one = cluster_storage(&cluster, &namespace);
    let two = cluster_storage(&cluster, &namespace);
    let names = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    ];
    let mut owners = HashSet::new();
    for name in names {
        let builder = || {
            CircuitBreaker::builder(name)
                .fail_max(2)
                .reset_timeout(RESET)
        };
        let (a, sa) = bound(builder(), &one);
        let (b, sb) = bound(builder(), &two);
        assert!(sa.is_shared() && sb.is_shared(), "{name}");
        let key = sa.key().unwrap().to_owned();
        // Every key of a breaker hashes like its tag.
        let slot = |k: &str| cluster.nodes[0].cmd(&["CLUSTER", "KEYSLOT", k]);
        assert_eq!(slot(&key), slot(&format!("{{{namespace}:{name}}}")));
        let _ = a.call(|| Err::<(), _>("down"));
        let _ = b.call(|| Err::<(), _>("down"));
        assert_eq!(b.current_state(), State::Open, "{name}");
        // A hears of it over pub/sub, whichever node holds the key.
        assert!(eventually(Duration::from_secs(1), || a.current_state() == State::Open));
        assert!(b.call(|| Ok::<_, &str>(())).unwrap_err().is_open());
        let owner = cluster.owner(&key);
        owners.insert(owner.port);
        let Resp::Bulk(Some(value)) = owner.cmd(&["GET", &key]) else {
            panic!("{key} is stored")
        };
        assert!(
            String::from_utf8_lossy(&value).starts_with("v1 open "),
            "{name}"
        );
        thread::sleep(RESET + Duration::from_millis(20));
        b.call(|| Ok::<_, &str>(())).unwrap(); // the trial, from B
        assert!(eventually(Duration::from_secs(1), || a.current_state()
            == State::Closed));
    }
    assert!(owners.len() >= 2, "the breakers landed on {owners:?} only");
}
