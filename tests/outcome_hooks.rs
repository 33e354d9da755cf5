//! The `excluded` and `cancelled` hooks: an excluded error is told as
//! `excluded` (with the error), by default forwarded to `success`; an
//! admitted call dropped before it finished is told as `cancelled`, by
//! `call_async`, guarded iterators and the tower layer.

use std::sync::{Arc, Mutex};

use breaker::{CircuitBreaker, Failure, Listener, State};

mod common;
use common::{Backend, BACKENDS};

#[derive(Debug, thiserror::Error)]
#[error("invalid input")]
struct Invalid;

type Log = Arc<Mutex<Vec<String>>>;

/// Hears every outcome hook, and tells `excluded` apart.
struct Outcomes(Log);

impl Listener for Outcomes {
    fn success(&self, _: &CircuitBreaker) {
        self.0.lock().unwrap().push("success".into());
    }
    fn failure(&self, _: &CircuitBreaker, f: &Failure<'_>) {
        self.0.lock().unwrap().push(format!("failure {f:?}"));
    }
    fn excluded(&self, _: &CircuitBreaker, f: &Failure<'_>) {
        let found = f.downcast_ref::<Invalid>().is_some();
        self.0
            .lock()
            .unwrap()
            .push(format!("excluded {f:?} {found}"));
    }
    fn cancelled(&self, _: &CircuitBreaker) {
        self.0.lock().unwrap().push("cancelled".into());
    }
}

/// Hears `success` alone: the default `excluded` forwards to it.
struct SuccessesOnly(Log);

impl Listener for SuccessesOnly {
    fn success(&self, _: &CircuitBreaker) {
        self.0.lock().unwrap().push("success".into());
    }
}

fn watched(name: &'static str, backend: Backend) -> (CircuitBreaker, Log) {
    let log = Log::default();
    let builder = CircuitBreaker::builder(name)
        .exclude::<Invalid>()
        .listener(Outcomes(Arc::clone(&log)));
    (backend.storage(builder).build(), log)
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn an_excluded_error_is_told_as_excluded_not_as_a_success() {
    for backend in BACKENDS {
        let (cb, log) = watched("hooks-excluded", backend);
        let _ = cb.call(|| Err::<(), _>(Invalid));
        let _ = cb.call(|| Ok::<_, Invalid>(()));
        assert_eq!(
            take(&log),
            ["excluded Invalid true", "success"],
            "{backend:?}"
        );
        // After a failure, the excluded error has a success to record.
        let _ = cb.call(|| Err::<(), _>(std::io::Error::other("down")));
        let _ = cb.call(|| Err::<(), _>(Box::new(Invalid) as Box<dyn std::error::Error>));
        assert_eq!(cb.fail_counter(), 0, "{backend:?}");
        let events = take(&log);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[1].starts_with("excluded"), "{events:?}");
    }
}

#[tokio::test]
async fn call_async_tells_excluded_errors_too() {
    for backend in BACKENDS {
        let (cb, log) = watched("hooks-excluded-async", backend);
        let _ = cb.call_async(async { Err::<(), _>(Invalid) }).await;
        let _ = cb
            .call_async(async { Err::<(), _>(std::io::Error::other("down")) })
            .await;
        let _ = cb.call_async(async { Err::<(), _>(Invalid) }).await;
        let events = take(&log);
        assert_eq!(events[0], "excluded Invalid true", "{backend:?}");
        assert!(events[1].starts_with("failure"), "{events:?}");
        assert_eq!(events[2], "excluded Invalid true", "{backend:?}");
        assert_eq!(cb.fail_counter(), 0);
    }
}

#[test]
fn a_listener_without_excluded_hears_it_as_a_success() {
    let log = Log::default();
    let cb = CircuitBreaker::builder("hooks-default")
        .exclude::<Invalid>()
        .listener(SuccessesOnly(Arc::clone(&log)))
        .build();
    let _ = cb.call(|| Err::<(), _>(Invalid));
    assert_eq!(take(&log), ["success"]);
}

#[test]
fn a_call_async_dropped_while_it_runs_is_cancelled() {
    for backend in BACKENDS {
        let (cb, log) = watched("hooks-cancelled", backend);
        let mut fut = Box::pin(cb.call_async(async {
            std::future::pending::<()>().await;
            Ok::<_, Invalid>(())
        }));
        let waker = std::task::Waker::noop();
        assert!(fut
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
            .is_pending());
        drop(fut);
        assert_eq!(take(&log), ["cancelled"], "{backend:?}");
        // Never polled: never admitted, so not cancelled either.
        drop(cb.call_async(async { Ok::<_, Invalid>(()) }));
        assert!(take(&log).is_empty());
    }
}

use std::future::Future;

#[derive(Debug)]
struct Rejected;

impl From<breaker::CircuitBreakerError> for Rejected {
    fn from(_: breaker::CircuitBreakerError) -> Self {
        Rejected
    }
}

#[breaker::circuit_breaker(name = "hooks-iter")]
fn numbers() -> impl Iterator<Item = Result<u32, Rejected>> {
    (1..=3).map(Ok)
}

#[test]
fn an_iterator_dropped_early_is_cancelled_and_one_run_to_the_end_succeeds() {
    let log = Log::default();
    breaker::registry::get("hooks-iter").add_listener(Arc::new(Outcomes(Arc::clone(&log))));
    let mut it = numbers();
    assert_eq!(it.next().unwrap().unwrap(), 1);
    drop(it);
    assert_eq!(numbers().count(), 3);
    assert_eq!(take(&log), ["cancelled", "success"]);
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn a_tower_request_dropped_while_it_runs_is_cancelled() {
    use tower::{service_fn, Layer, Service};
    let (cb, log) = watched("hooks-tower", Backend::Memory);
    let cb = Arc::new(cb);
    let mut svc = breaker::tower::CircuitBreakerLayer::new(&cb).layer(service_fn(|_: ()| async {
        std::future::pending::<()>().await;
        Ok::<_, Invalid>(())
    }));
    drop(svc.call(()));
    assert_eq!(take(&log), ["cancelled"]);
    assert_eq!(cb.current_state(), State::Closed);
}
