//! Runs one closed-state success scenario `n` times on the Redis storage or
//! on memory, for instruction counts under callgrind (issue 15's "within
//! 5 ns of memory"): `valgrind --tool=callgrind
//! target/release/redis_instructions <scenario> <n>`; (count(n) -
//! count(0)) / n is the cost per call.
//!
//! Starts its own `redis-server` on a free 127.0.0.1 port (the Redis
//! scenarios need one: `redis-server` on the PATH) and stops it at the end.
//! The storage's background work (flush, resync, heartbeat) is set an hour
//! apart, so it does not run during the measured calls.

use std::hint::black_box;
use std::time::Duration;

use breaker::{CircuitBreaker, CircuitBreakerBuilder, RedisStorage};
use breaker_bench::{work, Failure, RedisServer};

/// One `call`, out of line so its code can be read on its own.
#[inline(never)]
fn one_call(cb: &CircuitBreaker, i: u64) -> Result<u64, breaker::Error<Failure>> {
    cb.call(|| work(black_box(i)))
}

/// A breaker with a failure rate of 0.5 over 60 s, as the
/// `redis_success_time_window` group builds it.
fn rated(name: &'static str) -> CircuitBreakerBuilder {
    CircuitBreaker::builder(name)
        .failure_rate(0.5)
        .window_time(Duration::from_secs(60))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let hour = Duration::from_secs(3_600);
    let redis = || {
        let server = RedisServer::start().expect("redis-server on the PATH");
        let storage = RedisStorage::builder(server.url())
            .namespace("instructions")
            .flush_interval(hour)
            .resync_interval(hour)
            .heartbeat_interval(hour)
            .build()
            .expect("a Redis storage");
        (server, storage)
    };
    // The Redis breakers must follow the shared state, not the fallback: a
    // probe on the same connections tells (the measured breaker holds its
    // storage by value, as the criterion bench's does).
    let shared = |storage: &RedisStorage| {
        let probe = std::sync::Arc::new(storage.clone());
        let _probe = CircuitBreaker::builder("probe")
            .storage(std::sync::Arc::clone(&probe))
            .build();
        assert!(probe.is_shared(), "the storage reached its redis-server");
    };
    let (cb, _server) = match scenario.as_str() {
        "memory_call" => (CircuitBreaker::new("memory"), None),
        "memory_time_call" => (rated("memory-rate").build(), None),
        "redis_call" => {
            let (server, storage) = redis();
            let cb = CircuitBreaker::builder("redis")
                .storage(storage.clone())
                .build();
            shared(&storage);
            (cb, Some(server))
        }
        "redis_time_call" => {
            let (server, storage) = redis();
            let cb = rated("redis-rate").storage(storage.clone()).build();
            shared(&storage);
            (cb, Some(server))
        }
        other => panic!(
            "unknown scenario {other:?}: memory_call, memory_time_call, redis_call, redis_time_call"
        ),
    };
    assert!(one_call(&cb, 0).is_ok(), "the breaker admits calls");
    for i in 0..n {
        let _ = black_box(one_call(&cb, i));
    }
}
