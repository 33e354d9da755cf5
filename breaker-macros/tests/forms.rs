//! Every form the attribute accepts, at run time: async fns, methods, trait
//! impls, generics, iterators, exclusions of each kind, and the registry.

use std::sync::atomic::{AtomicUsize, Ordering};

use breaker::{circuit_breaker, registry, CircuitBreakerError, State};

#[derive(Debug, PartialEq, thiserror::Error)]
enum DbError {
    #[error("connection refused")]
    Down,
    #[error("not found")]
    NotFound(u64),
    #[error("timeout")]
    Timeout { after_ms: u64 },
    #[error("bad status {0}")]
    Status(u16),
    #[error(transparent)]
    Breaker(#[from] CircuitBreakerError),
}

fn is_rejection(r: &Result<impl std::fmt::Debug, DbError>) -> bool {
    matches!(r, Err(DbError::Breaker(e)) if e.state() != State::Closed)
}

// ---- async ----

#[circuit_breaker(name = "forms-async", fail_max = 2, reset_timeout = "1s")]
async fn load(fail: bool) -> Result<u32, DbError> {
    tokio::task::yield_now().await;
    if fail {
        return Err(DbError::Down);
    }
    Ok(1)
}

#[tokio::test]
async fn async_fn_trips_rejects_and_recovers() {
    let cb = registry::get("forms-async");
    cb.reset();
    assert_eq!(load(false).await, Ok(1));
    assert_eq!(load(true).await, Err(DbError::Down));
    assert!(is_rejection(&load(true).await)); // the tripping call
    assert_eq!(cb.current_state(), State::Open);
    assert!(is_rejection(&load(false).await));
    cb.half_open();
    assert_eq!(load(false).await, Ok(1));
    assert_eq!(cb.current_state(), State::Closed);
}

// ---- methods, trait impls, generics ----

struct Repo {
    calls: AtomicUsize,
}

trait Store {
    fn get(&self, id: u64) -> Result<String, DbError>;
}

impl Repo {
    /// Documented methods keep their docs and attributes.
    #[circuit_breaker(name = "forms-method", fail_max = 1)]
    #[inline]
    pub fn find(&self, id: u64) -> Result<String, DbError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if id == 0 {
            return Err(DbError::NotFound(id));
        }
        Ok(format!("row {id}"))
    }

    #[circuit_breaker(name = "forms-async-method", fail_max = 1)]
    async fn find_async(&self, id: u64) -> Result<u64, DbError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(id)
    }
}

impl Store for Repo {
    #[circuit_breaker(name = "forms-trait", fail_max = 1)]
    fn get(&self, id: u64) -> Result<String, DbError> {
        self.find(id)
    }
}

#[circuit_breaker(name = "forms-generic", fail_max = 1)]
fn parse_as<T>(text: &str) -> Result<T, DbError>
where
    T: std::str::FromStr,
{
    text.parse::<T>().map_err(|_| DbError::Status(400))
}

#[tokio::test]
async fn methods_trait_impls_and_generics() {
    let repo = Repo {
        calls: AtomicUsize::new(0),
    };
    registry::get("forms-method").reset();
    assert_eq!(repo.find(3).as_deref(), Ok("row 3"));
    assert!(is_rejection(&repo.find(0)), "the only failure trips");
    assert!(is_rejection(&repo.find(4)));
    assert_eq!(
        repo.calls.load(Ordering::SeqCst),
        2,
        "the rejected call did not run"
    );
    registry::get("forms-method").reset();
    assert_eq!(Store::get(&repo, 5).as_deref(), Ok("row 5"));
    assert_eq!(repo.find_async(9).await, Ok(9));

    registry::get("forms-generic").reset();
    assert_eq!(parse_as::<u8>("42"), Ok(42u8));
    assert_eq!(parse_as::<i64>("-1"), Ok(-1i64));
    assert!(is_rejection(&parse_as::<u8>("x")));
    assert!(
        is_rejection(&parse_as::<i64>("5")),
        "one breaker for every instantiation"
    );
}

// ---- exclusions of each form ----

#[circuit_breaker(
    name = "forms-exclude",
    fail_max = 1,
    exclude = [DbError::NotFound(..), DbError::Timeout { .. }, |e: &DbError| matches!(e, DbError::Status(s) if *s < 500)]
)]
fn lookup(outcome: Result<(), DbError>) -> Result<(), DbError> {
    outcome
}

#[test]
fn exclusions_by_pattern_and_predicate_are_successes() {
    let cb = registry::get("forms-exclude");
    cb.reset();
    for excluded in [
        DbError::NotFound(1),
        DbError::Timeout { after_ms: 5 },
        DbError::Status(404),
    ] {
        let shown = format!("{excluded:?}");
        let returned = lookup(Err(excluded)).unwrap_err();
        assert_eq!(format!("{returned:?}"), shown, "returned as-is");
        assert_eq!(
            (cb.current_state(), cb.fail_counter()),
            (State::Closed, 0),
            "{shown}"
        );
    }
    assert!(
        is_rejection(&lookup(Err(DbError::Status(503)))),
        "not excluded: trips"
    );
}

#[derive(Debug, thiserror::Error)]
#[error("validation")]
struct Validation;

#[circuit_breaker(name = "forms-exclude-boxed", fail_max = 1, exclude = [Validation])]
fn boxed(fail: bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if fail {
        return Err(Box::new(Validation));
    }
    Ok(())
}

#[test]
fn exclusion_by_type_looks_inside_boxed_errors() {
    registry::get("forms-exclude-boxed").reset();
    assert!(boxed(true).is_err());
    assert_eq!(registry::get("forms-exclude-boxed").fail_counter(), 0);
    assert_eq!(
        registry::get("forms-exclude-boxed").current_state(),
        State::Closed
    );
}

// ---- iterators ----

#[circuit_breaker(name = "forms-iter", fail_max = 1, exclude = [DbError::NotFound(..)])]
fn rows(items: Vec<Result<u32, DbError>>) -> impl Iterator<Item = Result<u32, DbError>> {
    items.into_iter()
}

#[circuit_breaker(name = "forms-iter-result", fail_max = 1)]
fn rows_checked(
    open: bool,
    items: Vec<Result<u32, DbError>>,
) -> Result<impl Iterator<Item = Result<u32, DbError>>, DbError> {
    if !open {
        return Err(DbError::Down);
    }
    Ok(items.into_iter())
}

#[test]
fn iterators_are_one_call() {
    let cb = registry::get("forms-iter");
    cb.reset();
    // Reaching the end is a success; excluded items pass through.
    let all: Vec<_> = rows(vec![Ok(1), Err(DbError::NotFound(2)), Ok(3)]).collect();
    assert_eq!(all, vec![Ok(1), Err(DbError::NotFound(2)), Ok(3)]);
    assert_eq!(cb.current_state(), State::Closed);
    // Dropped early: neither success nor failure.
    let mut it = rows(vec![Ok(1), Err(DbError::Down)]);
    assert_eq!(it.next(), Some(Ok(1)));
    drop(it);
    assert_eq!((cb.current_state(), cb.fail_counter()), (State::Closed, 0));
    // The first non-excluded Err is the failure; it trips, and is replaced
    // by the breaker's error as a tripping call's is.
    let mut it = rows(vec![Ok(1), Err(DbError::Down), Err(DbError::Down), Ok(4)]);
    assert_eq!(it.next(), Some(Ok(1)));
    assert!(matches!(it.next(), Some(Err(DbError::Breaker(_)))));
    assert_eq!(
        it.next(),
        Some(Err(DbError::Down)),
        "later items pass through"
    );
    assert_eq!(it.next(), Some(Ok(4)));
    assert_eq!(it.next(), None);
    assert_eq!(cb.current_state(), State::Open);
    // Checked when called: rejected without running, one error item.
    let rejected: Vec<_> = rows(vec![Ok(1)]).collect();
    assert!(matches!(rejected.as_slice(), [Err(DbError::Breaker(_))]));
    // A trial iterator dropped early frees its place.
    cb.half_open();
    let trial = rows(vec![Ok(1)]);
    assert!(
        matches!(rows(vec![]).next(), Some(Err(DbError::Breaker(_)))),
        "trial place taken"
    );
    drop(trial);
    assert_eq!(rows(vec![Ok(5)]).collect::<Vec<_>>(), vec![Ok(5)]);
    assert_eq!(cb.current_state(), State::Closed);
}

/// An iterator that records, when dropped, whether its breaker's trial place
/// was still held.
struct Cursor {
    breaker: &'static str,
    held_while_dropped: &'static AtomicUsize,
}

impl Iterator for Cursor {
    type Item = Result<u32, DbError>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(Ok(0))
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        let held = registry::get(self.breaker).snapshot().trial;
        self.held_while_dropped
            .store(held as usize + 1, Ordering::SeqCst);
    }
}

static CURSOR_DROPPED: AtomicUsize = AtomicUsize::new(0);

#[circuit_breaker(name = "forms-iter-cursor")]
fn cursor() -> impl Iterator<Item = Result<u32, DbError>> {
    Cursor {
        breaker: "forms-iter-cursor",
        held_while_dropped: &CURSOR_DROPPED,
    }
}

// A trial iterator dropped early is dropped before its place is freed: what
// it holds for the trial (a cursor, a connection) is gone before the next
// trial can be admitted.
#[test]
fn a_dropped_trial_iterator_goes_before_its_place_is_freed() {
    let cb = registry::get("forms-iter-cursor");
    cb.half_open();
    let mut trial = cursor();
    assert_eq!(trial.next().map(Result::ok), Some(Some(0)));
    drop(trial);
    assert_eq!(
        CURSOR_DROPPED.load(Ordering::SeqCst),
        2,
        "dropped after the place was freed"
    );
    assert!(!cb.snapshot().trial);
}

#[test]
fn iterators_inside_result() {
    let cb = registry::get("forms-iter-result");
    cb.reset();
    let items: Vec<_> = rows_checked(true, vec![Ok(1), Ok(2)]).unwrap().collect();
    assert_eq!(items, vec![Ok(1), Ok(2)]);
    assert!(
        matches!(rows_checked(false, vec![]), Err(DbError::Breaker(_))),
        "outer Err trips"
    );
    assert_eq!(cb.current_state(), State::Open);
    assert!(matches!(
        rows_checked(true, vec![]),
        Err(DbError::Breaker(_))
    ));
}

// ---- registry ----

#[circuit_breaker(name = "forms-shared", fail_max = 3)]
fn shared_a() -> Result<(), DbError> {
    Err(DbError::Down)
}

#[circuit_breaker(name = "forms-shared", reset_timeout = "2m")]
fn shared_b() -> Result<(), DbError> {
    Ok(())
}

#[circuit_breaker(fail_max = 4)]
fn default_named() -> Result<(), DbError> {
    Ok(())
}

#[test]
fn declared_breakers_are_registered_before_any_call() {
    let names = registry::names();
    for name in ["forms-shared", "forms-never-called", "forms::default_named"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    let never = registry::get("forms-never-called");
    assert_eq!(
        (never.fail_max(), never.reset_timeout()),
        (9, std::time::Duration::from_millis(1_500))
    );
    assert_eq!(registry::get("forms::default_named").fail_max(), 4);
}

#[circuit_breaker(name = "forms-never-called", fail_max = 9, reset_timeout = "1s500ms")]
fn never_called() -> Result<(), DbError> {
    Ok(())
}

#[test]
fn attributes_with_one_name_share_one_breaker_with_merged_settings() {
    let cb = registry::get("forms-shared");
    cb.reset();
    assert_eq!(cb.fail_max(), 3);
    assert_eq!(cb.reset_timeout(), std::time::Duration::from_secs(120));
    let _ = shared_a();
    let _ = shared_a();
    assert_eq!(cb.fail_counter(), 2);
    assert_eq!(shared_b(), Ok(()));
    assert_eq!(cb.fail_counter(), 0, "b's success resets a's failures");
    let _ = never_called;
    let _ = default_named;
}
