//! Slow calls and `fail_if` (issue 13): what a closed-state success costs
//! when the breaker times its calls (a slow-call duration, alone or with a
//! slow-call rate over a count window) or judges its `Ok` values, beside
//! the bare call and a plain `call`, in one run.

use std::hint::black_box;
use std::time::Duration;

use breaker::CircuitBreaker;
use breaker_bench::work;
use criterion::Criterion;

use super::value;

pub(crate) fn closed_success(c: &mut Criterion) {
    let mut g = c.benchmark_group("inspection");
    let plain = CircuitBreaker::new("bench-inspection-plain");
    let timed = CircuitBreaker::builder("bench-inspection-slow")
        .slow_call_duration(Duration::from_secs(2))
        .build();
    let slow_rate = CircuitBreaker::builder("bench-inspection-slow-rate")
        .slow_call_duration(Duration::from_secs(2))
        .slow_call_rate(0.5)
        .window_calls(100)
        .build();
    let judged = CircuitBreaker::builder("bench-inspection-fail-if")
        .fail_if(|x: &u64| *x == u64::MAX)
        .build();
    g.bench_function("bare", |b| b.iter(|| value(work(black_box(1)))));
    g.bench_function("breaker_call", |b| {
        b.iter(|| value(plain.call(|| work(black_box(1)))))
    });
    g.bench_function("slow_call_duration", |b| {
        b.iter(|| value(timed.call(|| work(black_box(1)))))
    });
    g.bench_function("slow_call_rate", |b| {
        b.iter(|| value(slow_rate.call(|| work(black_box(1)))))
    });
    g.bench_function("fail_if", |b| {
        b.iter(|| value(judged.call(|| work(black_box(1)))))
    });
    g.finish();
}
