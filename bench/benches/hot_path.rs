//! The cost of a guarded call, side by side with the peers, in one run.
//!
//! `scripts/bench` runs this and writes the table in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use breaker::clock::{Clock, SystemClock};
use breaker::keyed::KeyedBreakers;
use breaker::{circuit_breaker, registry, CircuitBreaker};
use breaker_bench::{failsafe_breaker, work, work_failing_every, Failure, Quiet};
use criterion::{criterion_group, criterion_main, Criterion};
use failsafe::CircuitBreaker as _;
use recloser::Recloser;

#[path = "hot_path/policies.rs"]
mod policies;

#[path = "hot_path/inspection.rs"]
mod inspection;

#[circuit_breaker(name = "bench-attribute", fail_max = 5)]
fn attributed(x: u64) -> Result<u64, Failure> {
    work(x)
}

/// Polls a future that is ready at once, without a runtime, pinned where it
/// is made (as `.await` in an `async fn` pins it in the caller's state):
/// moving a future into a function before polling it costs a copy whose
/// cost depends on its layout more than on its work.
macro_rules! poll_ready {
    ($fut:expr) => {{
        let mut fut = std::pin::pin!($fut);
        match std::future::Future::poll(fut.as_mut(), &mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => unreachable!("the benchmarked futures are ready at once"),
        }
    }};
}

fn closed_success(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_success");
    let ours = CircuitBreaker::new("bench-closed");
    let fs = failsafe_breaker(5);
    let rc = Recloser::default();
    g.bench_function("bare", |b| b.iter(|| value(work(black_box(1)))));
    g.bench_function("breaker_call", |b| {
        b.iter(|| value(ours.call(|| work(black_box(1)))))
    });
    g.bench_function("breaker_attribute", |b| {
        b.iter(|| value(attributed(black_box(1))))
    });
    g.bench_function("bare_async", |b| {
        b.iter(|| value(poll_ready!(async { work(black_box(1)) })))
    });
    g.bench_function("breaker_call_async", |b| {
        b.iter(|| value(poll_ready!(ours.call_async(async { work(black_box(1)) }))))
    });
    g.bench_function("failsafe", |b| {
        b.iter(|| value(fs.call(|| work(black_box(1)))))
    });
    g.bench_function("recloser", |b| {
        b.iter(|| value(rc.call(|| work(black_box(1)))))
    });
    g.finish();
}

/// What a caller does with a call's result: takes the value, or looks at
/// the error. Every row hands this to criterion rather than the whole
/// `Result`: black-boxing a 40-byte `Result` makes the compiler store it
/// field by field and reload it whole, a store-forwarding stall that
/// measured the copy, not the call (8.1 ns for `call_async` against 2.7 ns
/// when its value is used; the other rows moved by under 0.5 ns).
#[inline(always)]
fn value<E>(result: Result<u64, E>) -> u64 {
    match result {
        Ok(v) => v,
        Err(e) => {
            black_box(&e);
            0
        }
    }
}

fn threads(c: &mut Criterion) {
    let ours = Arc::new(CircuitBreaker::new("bench-threads"));
    let fs = failsafe_breaker(5);
    let rc = Recloser::default();
    for n in [1usize, 2, 4] {
        let mut g = c.benchmark_group(format!("threads_{n}"));
        g.bench_function("bare", |b| {
            b.iter_custom(|iters| {
                run_shared(n, iters, || {
                    black_box(value(work(black_box(1))));
                })
            })
        });
        g.bench_function("breaker_call", |b| {
            b.iter_custom(|iters| {
                run_shared(n, iters, || {
                    black_box(value(ours.call(|| work(black_box(1)))));
                })
            })
        });
        g.bench_function("failsafe", |b| {
            b.iter_custom(|iters| {
                run_shared(n, iters, || {
                    black_box(value(fs.call(|| work(black_box(1)))));
                })
            })
        });
        g.bench_function("recloser", |b| {
            b.iter_custom(|iters| {
                run_shared(n, iters, || {
                    black_box(value(rc.call(|| work(black_box(1)))));
                })
            })
        });
        g.finish();
    }
}

/// Runs `f` `iters` times on each of `threads` threads started together;
/// returns wall time divided by the thread count (time per call overall).
fn run_shared<F: Fn() + Sync>(threads: usize, iters: u64, f: F) -> Duration {
    let start = Barrier::new(threads + 1);
    let t0 = thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                start.wait();
                for _ in 0..iters {
                    f();
                }
            });
        }
        start.wait();
        Instant::now()
    });
    t0.elapsed() / threads as u32
}

fn open_rejection(c: &mut Criterion) {
    let mut g = c.benchmark_group("open_rejection");
    let ours = CircuitBreaker::builder("bench-open")
        .reset_timeout(Duration::from_secs(3600))
        .build();
    ours.open();
    let fs = failsafe_breaker(1);
    let _ = fs.call(|| Err::<(), _>(Failure));
    assert!(!fs.is_call_permitted());
    let rc = Recloser::custom()
        .closed_len(1)
        .open_wait(Duration::from_secs(3600))
        .build();
    let _ = rc.call(|| Err::<(), _>(Failure));
    let _ = rc.call(|| Err::<(), _>(Failure));
    assert!(matches!(
        rc.call(|| work(1)),
        Err(recloser::Error::Rejected)
    ));
    g.bench_function("breaker_call", |b| {
        b.iter(|| value(ours.call(|| work(black_box(1)))))
    });
    g.bench_function("failsafe", |b| {
        b.iter(|| value(fs.call(|| work(black_box(1)))))
    });
    g.bench_function("recloser", |b| {
        b.iter(|| value(rc.call(|| work(black_box(1)))))
    });
    // What any rejection must pay at least: deciding whether the reset
    // timeout has passed means reading a clock.
    let clock = SystemClock::new();
    g.bench_function("coarse_clock_read", |b| {
        b.iter(|| black_box(clock.now_coarse()))
    });
    g.bench_function("precise_clock_read", |b| b.iter(|| black_box(clock.now())));
    g.finish();
}

fn failure_every(c: &mut Criterion) {
    for every in [10u64, 100] {
        let mut g = c.benchmark_group(format!("failure_every_{every}"));
        let ours = CircuitBreaker::new("bench-failures");
        let fs = failsafe_breaker(5);
        let rc = Recloser::custom().error_rate(0.9).build();
        let mut i = 0u64;
        g.bench_function("breaker_call", |b| {
            b.iter(|| {
                i += 1;
                value(ours.call(|| work_failing_every(i, every)))
            })
        });
        g.bench_function("failsafe", |b| {
            b.iter(|| {
                i += 1;
                value(fs.call(|| work_failing_every(i, every)))
            })
        });
        g.bench_function("recloser", |b| {
            b.iter(|| {
                i += 1;
                value(rc.call(|| work_failing_every(i, every)))
            })
        });
        g.finish();
    }
}

fn listeners(c: &mut Criterion) {
    let mut g = c.benchmark_group("listeners");
    let none = CircuitBreaker::new("bench-l0");
    let one = CircuitBreaker::builder("bench-l1").listener(Quiet).build();
    let three = CircuitBreaker::builder("bench-l3")
        .listener(Quiet)
        .listener(Quiet)
        .listener(Quiet)
        .build();
    // The same call with no listener, in the same run: the targets are
    // differences from it.
    g.bench_function("none", |b| {
        b.iter(|| value(none.call(|| work(black_box(1)))))
    });
    g.bench_function("one", |b| b.iter(|| value(one.call(|| work(black_box(1))))));
    g.bench_function("three", |b| {
        b.iter(|| value(three.call(|| work(black_box(1)))))
    });
    g.finish();
}

/// Breakers per key: `group.get(&key)` (a hit) then a closed-state
/// success, beside a plain breaker's call in the same run; then 1 and 2
/// threads on different keys and on one key.
fn keyed(c: &mut Criterion) {
    let plain = CircuitBreaker::new("bench-keyed-plain");
    let by_id = KeyedBreakers::<u64>::builder("bench-keyed-u64", |b| b).build();
    let by_host = KeyedBreakers::<String>::builder("bench-keyed-str", |b| b).build();
    for k in 0..1_000u64 {
        let _ = by_id.get(&k);
        let _ = by_host.get(&format!("host-{k}.example"));
    }
    let mut g = c.benchmark_group("keyed");
    g.bench_function("plain_call", |b| {
        b.iter(|| value(plain.call(|| work(black_box(1)))))
    });
    g.bench_function("get_u64_call", |b| {
        b.iter(|| value(by_id.get(black_box(&17)).call(|| work(black_box(1)))))
    });
    g.bench_function("get_str_call", |b| {
        b.iter(|| {
            value(
                by_host
                    .get(black_box("host-17.example"))
                    .call(|| work(black_box(1))),
            )
        })
    });
    g.finish();
    for n in [1usize, 2] {
        let mut g = c.benchmark_group(format!("keyed_threads_{n}"));
        g.bench_function("different_keys", |b| {
            b.iter_custom(|iters| {
                run_indexed(n, iters, |i| {
                    let key = 100 + i as u64;
                    black_box(value(by_id.get(&key).call(|| work(black_box(1)))));
                })
            })
        });
        g.bench_function("same_key", |b| {
            b.iter_custom(|iters| {
                run_indexed(n, iters, |_| {
                    black_box(value(by_id.get(&100).call(|| work(black_box(1)))));
                })
            })
        });
        g.finish();
    }
}

/// `run_shared` with each thread's index passed to `f`.
fn run_indexed<F: Fn(usize) + Sync>(threads: usize, iters: u64, f: F) -> Duration {
    let start = Barrier::new(threads + 1);
    let t0 = thread::scope(|s| {
        for i in 0..threads {
            let (start, f) = (&start, &f);
            s.spawn(move || {
                start.wait();
                for _ in 0..iters {
                    f(i);
                }
            });
        }
        start.wait();
        Instant::now()
    });
    t0.elapsed() / threads as u32
}

fn registry_get(c: &mut Criterion) {
    let _ = registry::register(CircuitBreaker::new("bench-registry"));
    c.bench_function("registry/get", |b| {
        b.iter(|| registry::get(black_box("bench-registry")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = closed_success, threads, open_rejection, failure_every, listeners, registry_get, keyed,
        policies::closed_success, policies::threads, inspection::closed_success
}
criterion_main!(benches);
