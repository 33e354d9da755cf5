//! The tower layer: outcomes recorded as `call` records them, `fail_if`
//! on responses, rejections in `call` with `retry_after`, readiness passed
//! through, cancellation, panics, `!Send` futures, and the three ways to
//! give it a breaker.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::tower::{CircuitBreakerLayer, FailedResponse};
use breaker::{listener, registry, CircuitBreaker, Error, FailedValue, Reason, State};
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

fn breaker(name: &'static str, fail_max: u32) -> (Arc<CircuitBreaker>, ManualClock) {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder(name)
        .fail_max(fail_max)
        .reset_timeout(Duration::from_secs(30))
        .clock(clock.clone())
        .build();
    (Arc::new(cb), clock)
}

/// A service answering with the status it is asked for, or failing with
/// `Err(status)` for a negative one.
fn echo() -> impl Service<i32, Response = i32, Error = String, Future: Send> + Clone {
    service_fn(|status: i32| async move {
        match status {
            s if s < 0 => Err(format!("failed {s}")),
            s => Ok(s),
        }
    })
}

#[tokio::test]
async fn errors_are_failures_and_responses_fail_if_accepts_are_too() {
    let (cb, clock) = breaker("tower-outcomes", 3);
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(&cb).fail_if(|s: &i32| *s >= 500))
        .service(echo());

    assert_eq!(svc.ready().await.unwrap().call(200).await.unwrap(), 200);
    let err = svc.ready().await.unwrap().call(-1).await.unwrap_err();
    assert!(matches!(err, Error::Inner(ref e) if e == "failed -1"));
    assert_eq!(cb.fail_counter(), 1);
    // A 503 is a failure and is still returned.
    assert_eq!(svc.ready().await.unwrap().call(503).await.unwrap(), 503);
    assert_eq!(cb.fail_counter(), 2);
    let tripped = svc.ready().await.unwrap().call(-2).await.unwrap_err();
    assert!(tripped.is_tripped(), "{tripped:?}");
    assert_eq!(cb.current_state(), State::Open);

    clock.advance(Duration::from_secs(12));
    let rejected = svc.ready().await.unwrap().call(200).await.unwrap_err();
    let Error::Open(e) = rejected else {
        panic!("expected a rejection, got {rejected:?}")
    };
    assert_eq!(e.reason(), Reason::TimeoutNotElapsed);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(18)));

    clock.advance(Duration::from_secs(18));
    assert_eq!(svc.ready().await.unwrap().call(201).await.unwrap(), 201);
    assert_eq!(cb.current_state(), State::Closed);
}

#[tokio::test]
async fn a_rejected_request_never_reaches_the_inner_service() {
    let (cb, _clock) = breaker("tower-rejects", 1);
    let called = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&called);
    let mut svc = CircuitBreakerLayer::new(&cb).layer(service_fn(move |_: ()| {
        seen.store(true, Ordering::SeqCst);
        async { Ok::<_, Infallible>(()) }
    }));
    cb.open();
    let future = svc.ready().await.unwrap().call(());
    assert!(!called.load(Ordering::SeqCst), "rejected in `call`");
    assert!(future.await.unwrap_err().is_open());
}

#[tokio::test]
async fn listeners_see_a_failed_response_as_one() {
    let (cb, _clock) = breaker("tower-failed-response", 5);
    let found = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&found);
    cb.add_listener(Arc::new(listener::on_failure(move |_, f| {
        flag.store(
            f.downcast_ref::<FailedResponse>().is_some(),
            Ordering::SeqCst,
        );
    })));
    let svc = CircuitBreakerLayer::new(&cb)
        .fail_if(|s: &i32| *s >= 500)
        .layer(echo());
    assert_eq!(svc.oneshot(500).await.unwrap(), 500);
    assert!(found.load(Ordering::SeqCst));
}

/// A breaker's own `fail_if` (from its builder) judges the layer's
/// responses of its type too, after the layer's own: either makes a
/// response a failure, still returned, and listeners tell them apart.
#[tokio::test]
async fn the_breakers_own_fail_if_judges_responses_too() {
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&failed);
    let cb = Arc::new(
        CircuitBreaker::builder("tower-builder-fail-if")
            .fail_max(5)
            .fail_if(|s: &i32| *s == 503)
            .listener(listener::on_failure(move |_, f| {
                let by = match () {
                    _ if f.downcast_ref::<FailedResponse>().is_some() => "layer",
                    _ if f.downcast_ref::<FailedValue>().is_some() => "breaker",
                    _ => "other",
                };
                seen.lock().unwrap().push(by);
            }))
            .build(),
    );
    let mut svc = CircuitBreakerLayer::new(&cb)
        .fail_if(|s: &i32| *s == 500)
        .layer(echo());
    for status in [200, 404, 503, 500] {
        assert_eq!(
            svc.ready().await.unwrap().call(status).await.unwrap(),
            status
        );
    }
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(*failed.lock().unwrap(), ["breaker", "layer"]);
    // Without a `fail_if` of the layer's own, the breaker's still judges.
    let plain = CircuitBreakerLayer::new(&cb).layer(echo());
    assert_eq!(plain.oneshot(503).await.unwrap(), 503);
    assert_eq!(cb.fail_counter(), 3);
}

/// Ready only after being polled `n` times; counts its polls.
#[derive(Clone)]
struct Slow(Rc<std::cell::Cell<u32>>);

impl Service<()> for Slow {
    type Response = ();
    type Error = Infallible;
    type Future = std::future::Ready<Result<(), Infallible>>;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        let left = self.0.get();
        if left == 0 {
            return Poll::Ready(Ok(()));
        }
        self.0.set(left - 1);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
    fn call(&mut self, _: ()) -> Self::Future {
        std::future::ready(Ok(()))
    }
}

#[tokio::test]
async fn readiness_is_the_inner_services_even_when_open() {
    let (cb, _clock) = breaker("tower-ready", 1);
    cb.open();
    let left = Rc::new(std::cell::Cell::new(2));
    let mut svc = CircuitBreakerLayer::new(&cb).layer(Slow(Rc::clone(&left)));
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(svc.poll_ready(&mut cx).is_pending());
    assert!(svc.poll_ready(&mut cx).is_pending());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    // Ready though open: the rejection comes from `call`.
    assert!(svc.call(()).await.unwrap_err().is_open());
}

/// A future that is not `Send` (it holds an `Rc`).
fn not_send(status: i32) -> impl Future<Output = Result<i32, String>> {
    let rc = Rc::new(status);
    async move {
        tokio::task::yield_now().await;
        Ok(*rc)
    }
}

#[tokio::test]
async fn a_future_that_is_not_send_is_guarded_too() {
    let (cb, _clock) = breaker("tower-not-send", 1);
    let svc = CircuitBreakerLayer::new(&cb).layer(service_fn(not_send));
    assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
    cb.open();
    assert!(svc.oneshot(7).await.unwrap_err().is_open());
}

#[tokio::test]
async fn a_dropped_trial_gives_its_place_back() {
    let (cb, clock) = breaker("tower-cancel", 1);
    cb.open();
    clock.advance(Duration::from_secs(30));
    let mut svc = CircuitBreakerLayer::new(&cb).layer(service_fn(|_: ()| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(())
    }));
    let trial = svc.call(());
    assert_eq!(cb.current_state(), State::HalfOpen);
    drop(trial);
    // The place is free: the next request is the trial, and closes it.
    let mut ok =
        CircuitBreakerLayer::new(&cb).layer(service_fn(|_: ()| async { Ok::<_, Infallible>(()) }));
    ok.call(()).await.unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

/// A listener noting that a call was cancelled.
#[derive(Default)]
struct Cancels(AtomicBool);

impl breaker::Listener for Cancels {
    fn cancelled(&self, _: &CircuitBreaker) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A service whose `call` panics.
#[derive(Clone)]
struct PanicsInCall;

impl Service<()> for PanicsInCall {
    type Response = ();
    type Error = Infallible;
    type Future = std::future::Ready<Result<(), Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ()) -> Self::Future {
        panic!("inner call bug")
    }
}

#[tokio::test]
async fn a_trial_whose_inner_call_panics_gives_its_place_back() {
    let (cb, clock) = breaker("tower-call-panic", 1);
    let cancelled = Arc::new(Cancels::default());
    cb.add_listener(Arc::clone(&cancelled) as Arc<dyn breaker::Listener>);
    cb.open();
    clock.advance(Duration::from_secs(30));
    let mut svc = CircuitBreakerLayer::new(&cb).layer(PanicsInCall);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| svc.call(())));
    assert!(panicked.is_err());
    assert!(cancelled.0.load(Ordering::Relaxed), "told as cancelled");
    assert_eq!(cb.current_state(), State::HalfOpen);
    // The place is free: the next request is the trial, and closes it.
    let mut ok =
        CircuitBreakerLayer::new(&cb).layer(service_fn(|_: ()| async { Ok::<_, Infallible>(()) }));
    ok.call(()).await.unwrap();
    assert_eq!(cb.current_state(), State::Closed);
}

/// The inner future of a completed request is kept until the response
/// future is dropped, and dropping it then reports nothing more.
#[tokio::test]
async fn a_completed_request_dropped_later_reports_nothing_more() {
    let (cb, _clock) = breaker("tower-completed", 1);
    let cancelled = Arc::new(Cancels::default());
    cb.add_listener(Arc::clone(&cancelled) as Arc<dyn breaker::Listener>);
    let mut svc = CircuitBreakerLayer::new(&cb).layer(echo());
    let mut future = Box::pin(svc.call(5));
    assert_eq!(future.as_mut().await.unwrap(), 5);
    drop(future);
    assert!(!cancelled.0.load(Ordering::Relaxed));
    assert_eq!(cb.snapshot().fail_counter, 0);
}

/// A request in flight when a rate policy is turned on is counted in the
/// new window when it completes, as `call` counts its calls.
#[tokio::test]
async fn a_request_in_flight_when_a_rate_policy_is_turned_on_is_counted() {
    let (cb, _clock) = breaker("tower-in-flight", 5);
    let mut svc = CircuitBreakerLayer::new(&cb).layer(echo());
    let future = svc.ready().await.unwrap().call(200);
    cb.set_failure_rate(0.25).unwrap();
    assert_eq!(future.await.unwrap(), 200);
    let window = cb.window();
    assert_eq!((window.calls, window.failures), (1, 0));
}

#[tokio::test]
async fn a_panic_while_polling_is_a_failure_and_continues() {
    let (cb, _clock) = breaker("tower-panic", 1);
    let svc = CircuitBreakerLayer::new(&cb).layer(service_fn(|_: ()| async {
        panic!("inner bug");
        #[allow(unreachable_code)]
        Ok::<(), Infallible>(())
    }));
    let join = tokio::spawn(svc.oneshot(()));
    assert!(join.await.unwrap_err().is_panic());
    assert_eq!(cb.current_state(), State::Open);
}

#[tokio::test]
async fn a_panic_in_fail_if_is_the_requests_failure() {
    let (cb, _clock) = breaker("tower-fail-if-panic", 1);
    let svc = CircuitBreakerLayer::new(&cb)
        .fail_if(|_: &i32| -> bool { panic!("classifier bug") })
        .layer(echo());
    let join = tokio::spawn(svc.oneshot(1));
    assert!(join.await.unwrap_err().is_panic());
    assert_eq!(cb.current_state(), State::Open);
}

#[tokio::test]
async fn a_breaker_by_name_is_the_registered_one_and_an_unknown_name_is_an_error() {
    let cb =
        registry::register(CircuitBreaker::builder("tower-named").fail_max(1).build()).unwrap();
    let layer = CircuitBreakerLayer::new("tower-named").unwrap();
    assert!(std::ptr::eq(layer.breaker(), &*cb));
    let _ = layer.layer(echo()).oneshot(-1).await;
    assert_eq!(cb.current_state(), State::Open);

    let err = CircuitBreakerLayer::new("tower-typo").unwrap_err();
    assert_eq!(err.name(), "tower-typo");
    let message = err.to_string();
    assert!(
        message.contains("'tower-typo'") && message.contains("tower-named"),
        "{message}"
    );

    let owned = CircuitBreakerLayer::new(CircuitBreaker::new("tower-owned"));
    assert_eq!(owned.breaker().name(), "tower-owned");
}

#[test]
fn the_service_and_its_future_are_send_when_the_inner_ones_are() {
    fn assert_send<T: Send>(_: &T) {}
    let (cb, _clock) = breaker("tower-send", 1);
    let mut svc = CircuitBreakerLayer::new(&cb).layer(echo());
    assert_send(&svc);
    let future = svc.call(1);
    assert_send(&future);
}

#[tokio::test]
async fn a_static_breaker_is_held_by_reference() {
    static STATIC: std::sync::LazyLock<CircuitBreaker> =
        std::sync::LazyLock::new(|| CircuitBreaker::builder("tower-static").fail_max(1).build());
    let layer = CircuitBreakerLayer::new(&*STATIC);
    assert!(std::ptr::eq(layer.breaker(), &*STATIC));
    let svc = layer.layer(echo());
    assert_eq!(svc.clone().oneshot(3).await.unwrap(), 3);
    let _ = svc.clone().oneshot(-1).await;
    assert_eq!(STATIC.current_state(), State::Open);
    assert!(svc.oneshot(3).await.unwrap_err().is_open());
}

/// A breaker held by a layer goes when its layer, services and futures do:
/// at once when they were all dropped on one thread, the spare handles a
/// thread kept included.
#[tokio::test]
async fn a_breaker_goes_with_its_last_layer_service_and_future() {
    let (cb, _clock) = breaker("tower-goes", 5);
    let gone = Arc::downgrade(&cb);
    let layer = CircuitBreakerLayer::new(cb);
    let mut svc = layer.layer(echo());
    let mut running = Vec::new();
    for i in 0..50 {
        running.push(svc.ready().await.unwrap().call(i));
    }
    for (i, future) in running.into_iter().enumerate() {
        assert_eq!(future.await.unwrap(), i as i32);
    }
    let copy = svc.clone();
    assert_eq!(copy.oneshot(7).await.unwrap(), 7);
    drop(svc);
    assert!(gone.upgrade().is_some(), "the layer still holds it");
    drop(layer);
    assert!(gone.upgrade().is_none(), "no handle is left behind");
}

/// Requests started on one thread and finished on others (a multi-thread
/// runtime) count every outcome once, and once the threads that answered
/// them are gone the breaker goes with its last handle. (A thread keeps
/// spare handles of the breakers it answered for until it exits or needs
/// the place for others: here the test's own thread does not take part.)
#[test]
fn requests_finished_on_other_threads_are_counted_and_nothing_leaks() {
    let (cb, _clock) = breaker("tower-threads", 1_000);
    let gone = Arc::downgrade(&cb);
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    cb.add_listener(Arc::new(listener::on_failure({
        let failures = Arc::clone(&failures);
        move |_, _| {
            failures.fetch_add(1, Ordering::Relaxed);
        }
    })));
    let layer = CircuitBreakerLayer::new(Arc::clone(&cb));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let svc = layer.layer(service_fn(|i: i32| async move {
            // Finish on whichever worker polls next.
            tokio::task::yield_now().await;
            if i % 10 == 0 {
                Err(format!("failed {i}"))
            } else {
                Ok(i)
            }
        }));
        runtime.block_on(async {
            let tasks: Vec<_> = (0..2_000)
                .map(|i| tokio::spawn(svc.clone().oneshot(i)))
                .collect();
            let mut ok = 0;
            for task in tasks {
                ok += u32::from(task.await.unwrap().is_ok());
            }
            assert_eq!(ok, 1_800);
        });
        runtime.shutdown_timeout(Duration::from_secs(10));
    })
    .join()
    .unwrap();
    assert_eq!(failures.load(Ordering::Relaxed), 200);
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(Arc::strong_count(&cb), 1, "no thread kept a handle");
    drop(cb);
    assert!(gone.upgrade().is_none());
}

/// Records the durations a breaker's listeners hear.
#[derive(Default)]
struct Durations {
    slow: std::sync::Mutex<Vec<Duration>>,
    all: std::sync::Mutex<Vec<Duration>>,
}

impl breaker::Listener for Durations {
    fn slow_call(&self, _: &CircuitBreaker, elapsed: Duration) {
        self.slow.lock().unwrap().push(elapsed);
    }
    fn call_duration(&self, _: &CircuitBreaker, elapsed: Duration) {
        self.all.lock().unwrap().push(elapsed);
    }
}

#[tokio::test]
async fn a_request_is_timed_and_a_slow_one_counts_toward_the_slow_call_rate() {
    let clock = ManualClock::new();
    let durations = Arc::new(Durations::default());
    let cb = Arc::new(
        CircuitBreaker::builder("tower-slow")
            .slow_call_duration(Duration::from_secs(1))
            .slow_call_rate(0.5)
            .window_calls(4)
            .min_calls(2)
            .clock(clock.clone())
            .listener_arc(durations.clone())
            .build(),
    );
    // Status 1 takes 2 s on the breaker's clock, anything else no time.
    let slow_clock = clock.clone();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(&cb))
        .service(service_fn(move |status: i32| {
            let clock = slow_clock.clone();
            async move {
                if status == 1 {
                    clock.advance(Duration::from_secs(2));
                }
                Ok::<_, String>(status)
            }
        }));

    assert_eq!(svc.ready().await.unwrap().call(200).await.unwrap(), 200);
    assert_eq!(cb.current_state(), State::Closed);
    // Half the window's calls slow: the slow response opens the circuit
    // and is still returned.
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(cb.current_state(), State::Open);
    let window = cb.window();
    assert_eq!((window.calls, window.slow_calls), (2, 1));
    assert_eq!(*durations.slow.lock().unwrap(), [Duration::from_secs(2)]);
    assert_eq!(
        *durations.all.lock().unwrap(),
        [Duration::ZERO, Duration::from_secs(2)]
    );
    // Open: a timed breaker's requests are rejected as the others are,
    // untimed.
    let rejected = svc.ready().await.unwrap().call(200).await.unwrap_err();
    assert!(matches!(rejected, Error::Open(ref e) if e.retry_after().is_some()));
    assert_eq!(durations.all.lock().unwrap().len(), 2);
}
