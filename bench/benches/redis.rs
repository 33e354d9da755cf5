//! RedisStorage on loopback against MemoryStorage and a naive storage that
//! reads Redis on every call (pybreaker's `CircuitRedisStorage` pattern).
//!
//! Starts its own `redis-server` on a free 127.0.0.1 port and stops it at
//! the end; skips with a message when `redis-server` is not installed.
//! Run with `cargo bench -p breaker-bench --bench redis`.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use breaker::storage::{step, Limits, Op, Snapshot};
use breaker::storage::{Applied, Storage};
use breaker::{CircuitBreaker, RedisStorage};
use breaker_bench::{work, Failure, RedisServer};
use criterion::{criterion_group, criterion_main, Criterion};

/// Reads the shared state with a GET on every `load()`, as pybreaker does;
/// writes are applied locally (only the read path is measured here).
struct NaiveGet {
    conn: Mutex<redis::Connection>,
    local: Mutex<Snapshot>,
}

impl Storage for NaiveGet {
    fn load(&self) -> Snapshot {
        let mut conn = self.conn.lock().unwrap();
        let stored: Option<String> = redis::cmd("GET")
            .arg("naive:state")
            .query(&mut *conn)
            .unwrap_or(None);
        black_box(stored);
        *self.local.lock().unwrap()
    }

    fn apply(&self, op: Op, limits: &Limits) -> Applied {
        let mut local = self.local.lock().unwrap();
        let before = *local;
        let (after, outcome) = step(&before, op, limits);
        *local = after;
        Applied {
            before,
            after,
            outcome,
        }
    }
}

fn redis_storage(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        eprintln!("redis bench skipped: could not start redis-server (install redis-server)");
        return;
    };
    let storage = RedisStorage::builder(server.url())
        .namespace("bench")
        .build()
        .expect("a Redis storage on the bench's own server");
    let memory = CircuitBreaker::new("bench-redis-memory");
    let shared = CircuitBreaker::builder("bench-redis-shared")
        .storage(storage.clone())
        .build();
    let naive_conn = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("a connection");
    let naive = CircuitBreaker::builder("bench-redis-naive")
        .storage(NaiveGet {
            conn: Mutex::new(naive_conn),
            local: Mutex::new(Snapshot::INITIAL),
        })
        .build();

    let mut g = c.benchmark_group("redis_success");
    g.bench_function("memory", |b| b.iter(|| memory.call(|| work(black_box(1)))));
    g.bench_function("redis_storage", |b| {
        b.iter(|| shared.call(|| work(black_box(1))))
    });
    g.bench_function("naive_get_per_call", |b| {
        b.iter(|| naive.call(|| work(black_box(1))))
    });
    g.finish();

    // A failure rate over a 60 s window: on Redis the window is the
    // fleet's, kept on the server; successes are counted in the process and
    // sent once per flush interval.
    let rated = |name: &'static str| {
        CircuitBreaker::builder(name)
            .failure_rate(0.5)
            .window_time(Duration::from_secs(60))
    };
    let memory_rate = rated("bench-redis-memory-rate").build();
    let shared_rate = rated("bench-redis-shared-rate")
        .storage(storage.clone())
        .build();
    let mut g = c.benchmark_group("redis_success_time_window");
    g.bench_function("memory", |b| {
        b.iter(|| memory_rate.call(|| work(black_box(1))))
    });
    g.bench_function("redis_storage", |b| {
        b.iter(|| shared_rate.call(|| work(black_box(1))))
    });
    g.finish();

    let mut g = c.benchmark_group("redis_failure");
    let memory = CircuitBreaker::builder("bench-redis-memory-fail")
        .fail_max(65_535)
        .build();
    let shared = CircuitBreaker::builder("bench-redis-shared-fail")
        .fail_max(65_535)
        .storage(storage.clone())
        .build();
    g.bench_function("memory", |b| {
        b.iter(|| {
            let r = memory.call(|| Err::<u64, _>(Failure));
            if memory.fail_counter() > 60_000 {
                memory.reset();
            }
            r
        })
    });
    g.bench_function("redis_storage", |b| {
        b.iter(|| {
            let r = shared.call(|| Err::<u64, _>(Failure));
            if shared.fail_counter() > 60_000 {
                shared.reset();
            }
            r
        })
    });
    g.finish();
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = redis_storage
}
criterion_main!(benches);
