//! The cost of the integrations (issue 14), in one run:
//!
//! - the tower layer against the inner service called directly (both
//!   polled the same way), and against tower-resilience-circuitbreaker's
//!   layer (its count-based window set to trip on 5 failures in 5 calls,
//!   the closest it has to consecutive failures);
//! - a closed-state success with no listener, a no-op listener (hearing
//!   `before_call` and `success`), a `state_change`-only closure listener,
//!   the `TracingListener` with no subscriber, the `MetricsListener`
//!   with a recorder installed, and a registry breaker heard by the admin
//!   router (which counts its successes).
//!
//! `cargo bench -p breaker-bench --bench integrations`

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use breaker::tower::CircuitBreakerLayer;
use breaker::CircuitBreaker;
use breaker_bench::{work, Quiet};
use criterion::{criterion_group, criterion_main, Criterion};
use tower::{Layer, Service};

/// The inner service: answers at once.
#[derive(Clone, Copy)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u64) -> Self::Future {
        ready(Ok(black_box(x) + 1))
    }
}

/// `poll_ready`, `call`, and one poll of the future: what a caller does.
#[inline(always)]
fn request<S: Service<u64>>(svc: &mut S, x: u64) -> Option<S::Response> {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => return None,
    }
    let fut = pin!(svc.call(x));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(out)) => Some(out),
        _ => None,
    }
}

fn tower_layer(c: &mut Criterion) {
    let mut g = c.benchmark_group("tower");
    let mut inner = Echo;
    g.bench_function("inner_service", |b| {
        b.iter(|| request(&mut inner, black_box(1)))
    });
    let mut ours = CircuitBreakerLayer::new(CircuitBreaker::new("bench-tower")).layer(Echo);
    g.bench_function("breaker_layer", |b| {
        b.iter(|| request(&mut ours, black_box(1)))
    });
    let leaked: &'static CircuitBreaker =
        Box::leak(Box::new(CircuitBreaker::new("bench-tower-static")));
    let mut by_ref = CircuitBreakerLayer::new(leaked).layer(Echo);
    g.bench_function("breaker_layer_static", |b| {
        b.iter(|| request(&mut by_ref, black_box(1)))
    });
    // The floor of an owned response future: one `Arc` clone and drop.
    let arc = std::sync::Arc::new(1u64);
    g.bench_function("arc_clone_drop", |b| {
        b.iter(|| drop(black_box(std::sync::Arc::clone(&arc))))
    });
    let theirs = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(1.0)
        .sliding_window_size(5)
        .minimum_number_of_calls(5)
        .build()
        .expect("a valid configuration");
    let mut theirs = theirs.layer(Echo);
    g.bench_function("tower_resilience_layer", |b| {
        b.iter(|| request(&mut theirs, black_box(1)))
    });
    g.finish();
}

fn observability(c: &mut Criterion) {
    let mut g = c.benchmark_group("observability");
    let none = CircuitBreaker::new("bench-obs-none");
    g.bench_function("no_listener", |b| {
        b.iter(|| none.call(|| work(black_box(1))).ok())
    });
    let quiet = CircuitBreaker::builder("bench-obs-quiet")
        .listener(Quiet)
        .build();
    g.bench_function("noop_listener", |b| {
        b.iter(|| quiet.call(|| work(black_box(1))).ok())
    });
    let three = CircuitBreaker::builder("bench-obs-three")
        .listener(Quiet)
        .listener(Quiet)
        .listener(Quiet)
        .build();
    g.bench_function("three_noop_listeners", |b| {
        b.iter(|| three.call(|| work(black_box(1))).ok())
    });
    let transitions = CircuitBreaker::builder("bench-obs-state-change")
        .listener(breaker::listener::on_state_change(|cb, _, _| {
            black_box(cb);
        }))
        .build();
    g.bench_function("state_change_listener", |b| {
        b.iter(|| transitions.call(|| work(black_box(1))).ok())
    });
    let traced = CircuitBreaker::builder("bench-obs-tracing")
        .listener(breaker::tracing::TracingListener)
        .build();
    g.bench_function("tracing_listener_no_subscriber", |b| {
        b.iter(|| traced.call(|| work(black_box(1))).ok())
    });
    // A registry breaker once an admin router exists: the router's
    // listener counts its successes (on the thread's own stripe).
    let registered =
        breaker::registry::register(CircuitBreaker::new("bench-obs-admin")).expect("a new name");
    let _router: axum::Router = breaker::admin::router().into();
    g.bench_function("admin_router_success", |b| {
        b.iter(|| registered.call(|| work(black_box(1))).ok())
    });
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let metered = CircuitBreaker::builder("bench-obs-metrics")
            .listener(breaker::metrics::MetricsListener::new())
            .build();
        g.bench_function("metrics_listener_recorder", |b| {
            b.iter(|| metered.call(|| work(black_box(1))).ok())
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3));
    targets = tower_layer, observability
}
criterion_main!(benches);
