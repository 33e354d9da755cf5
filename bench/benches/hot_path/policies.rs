//! The rate policies (issue 13): the sliding window's cost on a closed-state
//! success beside a whole consecutive-policy call, on 1 and 2 threads, and
//! the peers that offer a rate policy, driven the same way.
//!
//! "Ours with the window" is a breaker built with
//! `failure_rate(0.5).window_calls(100)` or `.window_time(60 s)`
//! (`ours_rate`); "window alone" rows time the window's `record_success`
//! by itself.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use breaker::clock::{Clock, SystemClock};
use breaker::CircuitBreaker;
use breaker_bench::{
    block_on, failsafe_rate_breaker, thread_waker, tower_resilience_service, work,
};
use breaker_core::window::{Kind, Window};
use criterion::Criterion;
use failsafe::CircuitBreaker as _;
use tower::Service;

use super::value;

/// Our breaker with the failure-rate policy over a window of `kind`.
struct OursRate {
    breaker: CircuitBreaker,
}

fn ours_rate(name: &'static str, kind: Kind) -> OursRate {
    let builder = CircuitBreaker::builder(name).failure_rate(0.5);
    let breaker = match kind {
        Kind::Calls(n) => builder.window_calls(n),
        Kind::Time(span) => builder.window_time(span),
    }
    .build();
    OursRate { breaker }
}

impl OursRate {
    #[inline(always)]
    fn call(&self, x: u64) -> u64 {
        value(self.breaker.call(|| work(x)))
    }
}

const COUNT_100: Kind = Kind::Calls(100);
const TIME_60S: Kind = Kind::Time(Duration::from_secs(60));

pub(crate) fn closed_success(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_policy");
    let plain = CircuitBreaker::new("bench-rate-plain");
    let count = ours_rate("bench-rate-count", COUNT_100);
    let time = ours_rate("bench-rate-time", TIME_60S);
    let count_alone = Window::new(COUNT_100).expect("a valid window");
    let time_alone = Window::new(TIME_60S).expect("a valid window");
    let fs = failsafe_rate_breaker();
    let mut tr = tower_resilience_service();
    let waker = thread_waker();
    let clock = SystemClock::new();
    g.bench_function("bare", |b| b.iter(|| value(work(black_box(1)))));
    g.bench_function("breaker_call", |b| {
        b.iter(|| value(plain.call(|| work(black_box(1)))))
    });
    g.bench_function("window_count_success", |b| {
        b.iter(|| count_alone.record_success(black_box(0), || clock.now_coarse()))
    });
    g.bench_function("window_time_success", |b| {
        b.iter(|| time_alone.record_success(black_box(0), || clock.now_coarse()))
    });
    g.bench_function("breaker_call_window_count", |b| {
        b.iter(|| count.call(black_box(1)))
    });
    g.bench_function("breaker_call_window_time", |b| {
        b.iter(|| time.call(black_box(1)))
    });
    g.bench_function("tower_resilience", |b| {
        b.iter(|| value(block_on!(tower_call(&mut tr, black_box(1)), &waker)))
    });
    g.bench_function("failsafe_rate", |b| {
        b.iter(|| value(fs.call(|| work(black_box(1)))))
    });
    g.finish();
}

/// One call through a tower `Service`: readiness, then the call.
async fn tower_call<S: Service<u64>>(svc: &mut S, x: u64) -> Result<S::Response, S::Error> {
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(x).await
}

pub(crate) fn threads(c: &mut Criterion) {
    let count = Arc::new(ours_rate("bench-rate-threads-count", COUNT_100));
    let time = Arc::new(ours_rate("bench-rate-threads-time", TIME_60S));
    let plain = Arc::new(CircuitBreaker::new("bench-rate-threads-plain"));
    let fs = failsafe_rate_breaker();
    let tr = tower_resilience_service();
    for n in [1usize, 2] {
        let mut g = c.benchmark_group(format!("rate_threads_{n}"));
        // The ceiling: how the work alone scales on this machine (2 threads
        // on 2 vCPUs rarely reach 2x), for the breaker rows' scaling to be
        // read against. scripts/bench_table.py prints each row's ratio.
        g.bench_function("bare", |b| {
            b.iter_custom(|iters| {
                run_each(n, iters, || move || black_box(value(work(black_box(1)))))
            })
        });
        g.bench_function("breaker_call", |b| {
            b.iter_custom(|iters| {
                run_each(n, iters, || {
                    let plain = &plain;
                    move || black_box(value(plain.call(|| work(black_box(1)))))
                })
            })
        });
        g.bench_function("breaker_call_window_count", |b| {
            b.iter_custom(|iters| {
                run_each(n, iters, || {
                    let count = &count;
                    move || black_box(count.call(black_box(1)))
                })
            })
        });
        g.bench_function("breaker_call_window_time", |b| {
            b.iter_custom(|iters| {
                run_each(n, iters, || {
                    let time = &time;
                    move || black_box(time.call(black_box(1)))
                })
            })
        });
        g.bench_function("tower_resilience", |b| {
            b.iter_custom(|iters| {
                run_each(n, iters, || {
                    let (mut svc, waker) = (tr.clone(), thread_waker());
                    move || black_box(value(block_on!(tower_call(&mut svc, black_box(1)), &waker)))
                })
            })
        });
        g.bench_function("failsafe_rate", |b| {
            b.iter_custom(|iters| {
                run_each(n, iters, || {
                    let fs = &fs;
                    move || black_box(value(fs.call(|| work(black_box(1)))))
                })
            })
        });
        g.finish();
    }
}

/// Runs a caller made by `make` (on its thread: a service clone, a waker)
/// `iters` times on each of `threads` threads started together; returns wall
/// time divided by the thread count (time per call overall), so a row's
/// 1-thread figure over its 2-thread one is its throughput scaling.
fn run_each<M, F, R>(threads: usize, iters: u64, make: M) -> Duration
where
    M: Fn() -> F + Sync,
    F: FnMut() -> R,
{
    let start = Barrier::new(threads + 1);
    let t0 = thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut f = make();
                start.wait();
                for _ in 0..iters {
                    black_box(f());
                }
            });
        }
        start.wait();
        Instant::now()
    });
    t0.elapsed() / threads as u32
}
