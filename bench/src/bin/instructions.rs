//! Runs one scenario `n` times, for instruction counts under callgrind:
//! `valgrind --tool=callgrind target/release/instructions <scenario> <n>`;
//! (count(n) - count(0)) / n is the cost per call, repeatable to the
//! instruction whatever else the machine is doing.

use std::future::Future;
use std::hint::black_box;
use std::time::Duration;

use breaker::clock::{Clock, SystemClock};
use breaker::CircuitBreaker;
use breaker_bench::{work, Failure};
use breaker_core::window::{Kind, Outcome, Window};

/// Polls a future that is ready at once, without a runtime.
fn poll_ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => unreachable!("ready at once"),
    }
}

/// One `call`, out of line so its code can be read on its own.
#[inline(never)]
fn one_call(cb: &CircuitBreaker, i: u64) -> Result<u64, breaker::Error<Failure>> {
    cb.call(|| work(black_box(i)))
}

/// One failing `call`, out of line.
#[inline(never)]
fn one_failure(cb: &CircuitBreaker) -> Result<u64, breaker::Error<Failure>> {
    cb.call(|| Err(black_box(Failure)))
}

/// A breaker with `failure_rate(0.5)` over the last 100 calls, or over
/// `span`.
fn rated(span: Option<Duration>) -> CircuitBreaker {
    let builder = CircuitBreaker::builder("instructions-rate")
        .failure_rate(0.5)
        .reset_timeout(Duration::from_secs(3600));
    match span {
        Some(span) => builder.window_time(span),
        None => builder.window_calls(100),
    }
    .build()
}

/// The `n` the script measures a scenario at (beside 0).
const MEASURED: u64 = 100_000;

/// Runs `n` failures on `cb`, each after 9 successes (so the window holds
/// one failure in 10 calls and never opens), plus 9 successes for each of
/// the `MEASURED - n` failures not run: every run makes `9 * MEASURED`
/// successes (past `n = MEASURED`, 9 more per failure), so the script's
/// difference between `n = MEASURED` and `n = 0` holds the failures alone.
#[inline(never)]
fn failures_alone(cb: &CircuitBreaker, n: u64) {
    let unit = |fail: bool| {
        for i in 0..9 {
            let _ = black_box(one_call(cb, i));
        }
        if fail {
            let _ = black_box(one_failure(cb));
        }
    };
    // Fill the window first, as every unit below finds it.
    for _ in 0..10 {
        unit(true);
    }
    for _ in n..MEASURED {
        unit(false);
    }
    for _ in 0..n {
        unit(true);
    }
}

/// One `call_async`, out of line so its code can be read on its own.
#[inline(never)]
fn one_async(cb: &CircuitBreaker, i: u64) -> Result<u64, breaker::Error<Failure>> {
    poll_ready(cb.call_async(async move { work(black_box(i)) }))
}

#[breaker::circuit_breaker(name = "instructions-attribute")]
fn attributed(x: u64) -> Result<u64, Failure> {
    work(x)
}

/// One call of a `#[circuit_breaker]` function, out of line.
#[inline(never)]
fn one_attributed(i: u64) -> Result<u64, Failure> {
    attributed(black_box(i))
}

/// One `group.get(&key)` (a hit) then a call, out of line.
#[inline(never)]
fn one_keyed(
    group: &breaker::keyed::KeyedBreakers<u64>,
    key: u64,
    i: u64,
) -> Result<u64, breaker::Error<Failure>> {
    group.get(&key).call(|| work(black_box(i)))
}

/// A fast success recorded in a window, out of line.
#[inline(never)]
fn one_window_success(w: &Window, clock: &SystemClock) {
    w.record_success(black_box(0), || clock.now_coarse());
}

/// A failure recorded in a window (folds), out of line.
#[inline(never)]
fn one_window_failure(w: &Window, clock: &SystemClock) -> u64 {
    let failed = Outcome {
        failed: true,
        slow: false,
    };
    w.record(failed, black_box(0), clock.now_coarse())
        .map_or(0, |t| t.failures)
}

/// Runs `n` calls on a window of `kind`: successes, and a failure every
/// `every` calls (0: none).
fn window_scenario(kind: Kind, n: u64, every: u64) {
    let w = Window::new(kind).expect("a valid window");
    let clock = SystemClock::new();
    // Fill the window first, so every call below sees a full one.
    for i in 0..200u64 {
        if every != 0 && i % every == 0 {
            one_window_failure(&w, &clock);
        } else {
            one_window_success(&w, &clock);
        }
    }
    for i in 0..n {
        if every != 0 && i % every == 0 {
            black_box(one_window_failure(&w, &clock));
        } else {
            one_window_success(&w, &clock);
        }
    }
}

/// A listener that does nothing but is not optimised away.
struct Quiet;

impl breaker::Listener for Quiet {
    fn before_call(&self, cb: &CircuitBreaker) {
        black_box(cb);
    }
    fn success(&self, cb: &CircuitBreaker) {
        black_box(cb);
    }
}

/// A tower service that answers at once.
struct Echo;

impl tower::Service<u64> for Echo {
    type Response = u64;
    type Error = Failure;
    type Future = std::future::Ready<Result<u64, Failure>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Failure>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, x: u64) -> Self::Future {
        std::future::ready(work(x))
    }
}

/// One request through a tower service: `poll_ready`, `call`, one poll.
#[inline(never)]
fn one_request<S: tower::Service<u64>>(svc: &mut S, i: u64) -> Option<S::Response> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if !svc.poll_ready(&mut cx).is_ready() {
        return None;
    }
    match std::pin::pin!(svc.call(black_box(i))).poll(&mut cx) {
        std::task::Poll::Ready(Ok(out)) => Some(out),
        _ => None,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_default();
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let cb = CircuitBreaker::builder("instructions")
        .reset_timeout(Duration::from_secs(3600))
        .build();
    match scenario.as_str() {
        "bare" => {
            for i in 0..n {
                let _ = black_box(work(black_box(i)));
            }
        }
        "call" => {
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        "async" => {
            for i in 0..n {
                let _ = black_box(one_async(&cb, i));
            }
        }
        "attribute" => {
            for i in 0..n {
                let _ = black_box(one_attributed(i));
            }
        }
        "tower" => {
            use tower::Layer;
            let cb: &'static CircuitBreaker = Box::leak(Box::new(cb));
            let mut svc = breaker::tower::CircuitBreakerLayer::new(cb).layer(Echo);
            for i in 0..n {
                let _ = black_box(one_request(&mut svc, i));
            }
        }
        // The same request through a layer holding an `Arc` (the layer
        // `CircuitBreakerLayer::new(cb)` makes), whose future holds one too.
        "tower_arc" => {
            use tower::Layer;
            let mut svc = breaker::tower::CircuitBreakerLayer::new(cb).layer(Echo);
            for i in 0..n {
                let _ = black_box(one_request(&mut svc, i));
            }
        }
        "tower_inner" => {
            for i in 0..n {
                let _ = black_box(one_request(&mut Echo, i));
            }
        }
        // A registry breaker once an admin router exists: its listener
        // counts each success on the thread's own stripe (issue 14).
        "admin_success" => {
            let cb = breaker::registry::register(cb).expect("a new name");
            let _router: axum::Router = breaker::admin::router().into();
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        "listener" => {
            cb.add_listener(std::sync::Arc::new(Quiet));
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        "three_listeners" => {
            for _ in 0..3 {
                cb.add_listener(std::sync::Arc::new(Quiet));
            }
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        // Past the lists a breaker keeps (`dispatch.rs`): the list is
        // read through the thread's cache.
        "listener_cached" => {
            let quiet: std::sync::Arc<dyn breaker::Listener> = std::sync::Arc::new(Quiet);
            for _ in 0..8 {
                cb.add_listener(quiet.clone());
                cb.remove_listener(&quiet);
            }
            cb.add_listener(quiet);
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        "rejection" => {
            cb.open();
            for i in 0..n {
                let _ = black_box(cb.call(|| work(black_box(i))));
            }
        }
        "failure" => {
            cb.set_fail_max(65_535).unwrap();
            // Below fail_max all the way: one success per 60,000 failures
            // (a rounding error on the count) starts the count again.
            let mut left = 60_000;
            for i in 0..n {
                let _ = black_box(cb.call(|| Err::<u64, _>(black_box(Failure))));
                left -= 1;
                if left == 0 {
                    let _ = black_box(cb.call(|| work(black_box(i))));
                    left = 60_000;
                }
            }
        }
        "keyed" => {
            let group = breaker::keyed::KeyedBreakers::<u64>::builder("instructions-keyed", |b| b)
                .build();
            for k in 0..1_000 {
                let _ = group.get(&k);
            }
            for i in 0..n {
                let _ = black_box(one_keyed(&group, black_box(17), i));
            }
        }
        // The failure-rate policy (issue 13) through the builder: a
        // closed-state success with a count window of 100 and with a time
        // window of 60 s.
        "rate_call" => {
            let cb = rated(None);
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        "rate_time_call" => {
            let cb = rated(Some(Duration::from_secs(60)));
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        // A failure that does not open the circuit, alone: 10 failures in
        // the window of 100 (9 successes between two), below the rate of
        // 0.5. See `failures_alone` for how the successes drop out.
        "rate_failure" => failures_alone(&rated(None), n),
        "rate_time_failure" => failures_alone(&rated(Some(Duration::from_secs(60))), n),
        // The rate policies' window (issue 13), on its own.
        "window_success" => window_scenario(Kind::Calls(100), n, 0),
        "window_time_success" => window_scenario(Kind::Time(Duration::from_secs(60)), n, 0),
        // Per failure, with the 9 successes between two failures (scripts/
        // bench_table.py takes 9 window_success off): a window of 100
        // calls holding 10 failures, below any rate that opens it.
        "window_failure" => window_scenario(Kind::Calls(100), n * 10, 10),
        "window_time_failure" => {
            window_scenario(Kind::Time(Duration::from_secs(60)), n * 10, 10)
        }
        // Slow calls and fail_if (issue 13): a closed-state success on a
        // breaker that times its calls (two clock readings), or judges its
        // value.
        "slow_call" => {
            let cb = CircuitBreaker::builder("instructions-slow")
                .slow_call_duration(Duration::from_secs(2))
                .build();
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        "fail_if" => {
            let cb = CircuitBreaker::builder("instructions-fail-if")
                .fail_if(|x: &u64| *x == u64::MAX)
                .build();
            for i in 0..n {
                let _ = black_box(one_call(&cb, i));
            }
        }
        other => panic!("unknown scenario {other:?}: bare, call, attribute, async, listener, three_listeners, listener_cached, rejection, failure, tower, tower_arc, tower_inner, admin_success, keyed, rate_call, rate_time_call, rate_failure, rate_time_failure, window_success, window_time_success, window_failure, window_time_failure, slow_call, fail_if"),
    }
}
