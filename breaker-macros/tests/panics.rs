//! A panic anywhere in a guarded function's call is its failure, and never
//! keeps a half-open trial's place: in the body, in an `exclude` closure,
//! in an iterator's body before it returns the iterator, and in `next()`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use breaker::{circuit_breaker, registry, CircuitBreakerError, State};

#[derive(Debug, PartialEq, thiserror::Error)]
enum DbError {
    #[error("connection refused")]
    Down,
    #[error(transparent)]
    Breaker(#[from] CircuitBreakerError),
}

/// Runs `f`, expecting it to panic.
fn panics<T>(f: impl FnOnce() -> T) {
    assert!(
        catch_unwind(AssertUnwindSafe(f)).is_err(),
        "expected a panic"
    );
}

/// A half-open breaker whose trial failed is open again: the trial place
/// was not kept.
fn assert_trial_failed(name: &str) {
    let cb = registry::get(name);
    assert_eq!(cb.current_state(), State::Open, "{name}");
    assert!(!cb.snapshot().trial, "{name}");
}

// ---- an `exclude` closure that panics ----

#[circuit_breaker(name = "panics-exclude", fail_max = 2, exclude = [|_e: &DbError| -> bool { panic!("predicate bug") }])]
fn excluding() -> Result<(), DbError> {
    Err(DbError::Down)
}

#[circuit_breaker(name = "panics-exclude-async", fail_max = 2, exclude = [|_e: &DbError| -> bool { panic!("predicate bug") }])]
async fn excluding_async() -> Result<(), DbError> {
    Err(DbError::Down)
}

#[test]
fn a_panicking_exclude_closure_fails_the_call() {
    let cb = registry::get("panics-exclude");
    cb.reset();
    panics(excluding);
    assert_eq!(cb.fail_counter(), 1, "counted as a failure in closed");
    cb.half_open();
    panics(excluding);
    assert_trial_failed("panics-exclude");
}

#[test]
fn a_panicking_exclude_closure_fails_an_async_trial() {
    let cb = registry::get("panics-exclude-async");
    cb.half_open();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    panics(|| runtime.block_on(excluding_async()));
    assert_trial_failed("panics-exclude-async");
}

// ---- iterators whose body panics before returning them ----

#[circuit_breaker(name = "panics-iter-body", fail_max = 2)]
fn rows(panic: bool) -> impl Iterator<Item = Result<u32, DbError>> {
    if panic {
        panic!("query bug");
    }
    vec![Ok(1)].into_iter()
}

#[circuit_breaker(name = "panics-iter-result-body", fail_max = 2)]
fn checked_rows(panic: bool) -> Result<impl Iterator<Item = Result<u32, DbError>>, DbError> {
    if panic {
        panic!("query bug");
    }
    Ok(vec![Ok(1)].into_iter())
}

#[test]
fn an_iterator_body_that_panics_fails_the_call() {
    let cb = registry::get("panics-iter-body");
    cb.reset();
    panics(|| rows(true));
    assert_eq!(cb.fail_counter(), 1, "counted as a failure in closed");
    cb.half_open();
    panics(|| rows(true));
    assert_trial_failed("panics-iter-body");
}

#[test]
fn an_iterator_in_result_body_that_panics_fails_the_call() {
    let cb = registry::get("panics-iter-result-body");
    cb.reset();
    panics(|| checked_rows(true).map(|_| ()));
    assert_eq!(cb.fail_counter(), 1, "counted as a failure in closed");
    cb.half_open();
    panics(|| checked_rows(true).map(|_| ()));
    assert_trial_failed("panics-iter-result-body");
}

// ---- iterators that panic in `next()` ----

#[circuit_breaker(name = "panics-iter-next", fail_max = 2)]
fn cursor() -> impl Iterator<Item = Result<u32, DbError>> {
    (0..3).map(|i| if i == 1 { panic!("cursor bug") } else { Ok(i) })
}

#[test]
fn a_panic_in_next_fails_the_call() {
    let cb = registry::get("panics-iter-next");
    cb.reset();
    let mut rows = cursor();
    assert_eq!(rows.next(), Some(Ok(0)));
    panics(|| rows.next());
    drop(rows);
    assert_eq!(cb.fail_counter(), 1, "counted as a failure in closed");

    cb.half_open();
    let mut trial = cursor();
    assert_eq!(trial.next(), Some(Ok(0)));
    panics(|| trial.next());
    drop(trial);
    assert_trial_failed("panics-iter-next");
}
