//! The Redis storage: the behaviour suite over it, and its own tests.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use breaker::redis::RedisStorageBuilder;
use breaker::{CircuitBreaker, CircuitBreakerBuilder as Builder, RedisStorage, State};

use crate::suite::Fixture;
use crate::support;

mod access;
#[cfg(feature = "admin")]
mod admin;
mod cluster;
mod events;
mod faults;
mod fleet;
mod initial;
mod keyed;
mod ordering;
mod policies;
mod processes;
mod repair;
mod sharing;
#[cfg(feature = "redis-tls")]
mod tls;

/// The reset timeout of tests that wait in real time.
pub const RESET: Duration = Duration::from_millis(150);

/// A storage builder on `url` with test-friendly timings.
pub fn storage(url: &str, test: &str) -> RedisStorageBuilder {
    RedisStorage::builder(url)
        .namespace(support::namespace(test))
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(500))
}

/// Builds `builder` on `storage`, keeping a handle on the bound storage.
pub fn bound(builder: Builder, storage: &RedisStorage) -> (CircuitBreaker, Arc<RedisStorage>) {
    let storage = Arc::new(storage.clone());
    let cb = builder.storage(Arc::clone(&storage)).build();
    (cb, storage)
}

/// Waits (up to `limit`) until `done` holds; `false` if it never did.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// The Redis storage on the shared server, one namespace per fixture.
pub struct Redis {
    storage: RedisStorage,
}

impl Redis {
    pub fn new() -> Option<Self> {
        let server = support::shared()?;
        Some(Redis {
            storage: storage(&server.url(), "suite").build().unwrap(),
        })
    }
}

impl Fixture for Redis {
    fn build(&self, builder: Builder) -> CircuitBreaker {
        builder.storage(self.storage.clone()).build()
    }
    fn elapse(&self, d: Duration) {
        // The server's clock decides, to the millisecond, rounded up.
        thread::sleep(d + Duration::from_millis(15));
    }
    fn reset_timeout(&self) -> Duration {
        RESET
    }
    fn now(&self) -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
    }
    fn tolerance(&self) -> Duration {
        Duration::from_millis(20)
    }
    fn settle(&self) {
        thread::sleep(Duration::from_millis(150));
    }
}

mod suite {
    crate::behaviour_suite!(super::Redis::new());
}

/// The state of `cb` as stored in Redis: `(state, fail_counter)`.
pub fn stored(server: &support::Server, storage: &RedisStorage) -> Option<(State, u32)> {
    let value = server.get(storage.key()?)?;
    let f = support::fields(&value);
    Some((f[1].parse().unwrap(), f[3].parse().unwrap()))
}
