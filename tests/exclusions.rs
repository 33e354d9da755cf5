//! Excluded errors: matched by type (the error itself, inside a box, along
//! the `source()` chain, inside `io::Error`, inside `anyhow::Error`) or by
//! predicate; they count as successes and come back as `Error::Inner`.

use std::error::Error as StdError;
use std::io;

use breaker::clock::ManualClock;
use breaker::{CircuitBreaker, Error, State};

mod common;
use common::breakers::MINUTE;
use common::errors::{query_view, QueryError, Validation};

type BoxError = Box<dyn StdError + Send + Sync>;

#[derive(Debug, thiserror::Error)]
#[error("request failed")]
struct RequestError(#[source] QueryError);

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("database down")]
struct DbDown;

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("http {status}")]
struct HttpError {
    status: u16,
}

#[derive(Debug, thiserror::Error)]
#[error("client failed")]
struct ClientError(#[source] HttpError);

fn builder(name: &'static str) -> breaker::CircuitBreakerBuilder {
    CircuitBreaker::builder(name)
        .fail_max(1)
        .reset_timeout(MINUTE)
}

/// Calls with `error` and says whether it counted as a failure. With
/// `fail_max(1)` a failure opens the circuit; the breaker is reset after.
fn is_failure<E: std::fmt::Debug + 'static>(cb: &CircuitBreaker, error: E) -> bool {
    assert_eq!(cb.current_state(), State::Closed);
    let result = cb.call(|| Err::<(), E>(error));
    let failed = cb.current_state() == State::Open;
    match result {
        Err(Error::Inner(_)) => assert!(!failed || !cb.throw_new_error_on_trip()),
        Err(Error::Tripped(..)) => assert!(failed),
        other => panic!("unexpected {other:?}"),
    }
    cb.reset();
    failed
}

// ---- by type ----

#[test]
fn exclude_matches_the_error_itself() {
    let cb = builder("ex-itself").exclude::<Validation>().build();
    let r = cb.call(|| Err::<(), _>(Validation));
    assert!(matches!(r, Err(Error::Inner(Validation))));
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
    // Other errors still fail.
    assert!(is_failure(&cb, DbDown));
    assert!(is_failure(&cb, "text"));
}

#[test]
fn exclude_matches_inside_a_boxed_error() {
    let cb = builder("ex-boxed").exclude::<Validation>().build();
    assert!(!is_failure(&cb, Box::new(Validation) as BoxError));
    assert!(is_failure(&cb, Box::new(DbDown) as BoxError));
    // Other boxed error types are seen through too.
    assert!(!is_failure(&cb, Box::new(Validation) as Box<dyn StdError>));
    assert!(!is_failure(
        &cb,
        Box::new(Validation) as Box<dyn StdError + Send>
    ));
    assert!(!is_failure(
        &cb,
        std::sync::Arc::new(Validation) as std::sync::Arc<dyn StdError + Send + Sync>
    ));
}

#[test]
fn exclude_matches_along_the_source_chain_of_a_boxed_error() {
    let cb = builder("ex-chain").exclude::<Validation>().build();
    assert!(!is_failure(
        &cb,
        Box::new(QueryError(Validation)) as BoxError
    ));
    assert!(!is_failure(
        &cb,
        Box::new(RequestError(QueryError(Validation))) as BoxError
    ));
    // An excluded type that is not in the chain does not match.
    let cb = builder("ex-chain-miss").exclude::<DbDown>().build();
    assert!(is_failure(
        &cb,
        Box::new(RequestError(QueryError(Validation))) as BoxError
    ));
}

#[test]
fn exclude_matches_an_intermediate_error_of_the_chain() {
    let cb = builder("ex-chain-middle").exclude::<QueryError>().build();
    assert!(!is_failure(
        &cb,
        Box::new(RequestError(QueryError(Validation))) as BoxError
    ));
    assert!(is_failure(&cb, Box::new(Validation) as BoxError));
}

#[test]
fn exclude_matches_inside_io_error_new() {
    let cb = builder("ex-io").exclude::<Validation>().build();
    // io::Error::new hides the wrapped error from source(); it is still found.
    let io_err = || io::Error::new(io::ErrorKind::InvalidInput, Validation);
    assert!(!is_failure(&cb, Box::new(io_err()) as BoxError));
    let io_chain = io::Error::other(QueryError(Validation));
    assert!(!is_failure(&cb, Box::new(io_chain) as BoxError));
    assert!(is_failure(
        &cb,
        Box::new(io::Error::other(DbDown)) as BoxError
    ));
    assert!(is_failure(
        &cb,
        Box::new(io::Error::from(io::ErrorKind::TimedOut)) as BoxError
    ));
}

#[test]
fn exclude_matches_inside_a_plain_io_error() {
    // The guarded function returns io::Error itself, not boxed.
    let cb = builder("ex-io-plain").exclude::<Validation>().build();
    assert!(!is_failure(
        &cb,
        io::Error::new(io::ErrorKind::InvalidInput, Validation)
    ));
    assert!(!is_failure(&cb, io::Error::other(QueryError(Validation))));
    assert!(is_failure(&cb, io::Error::other(DbDown)));
    assert!(is_failure(
        &cb,
        io::Error::from(io::ErrorKind::ConnectionRefused)
    ));
}

#[test]
fn io_error_itself_can_be_excluded() {
    let cb = builder("ex-io-type").exclude::<io::Error>().build();
    assert!(!is_failure(&cb, io::Error::from(io::ErrorKind::NotFound)));
    assert!(!is_failure(
        &cb,
        Box::new(io::Error::from(io::ErrorKind::NotFound)) as BoxError
    ));
    assert!(is_failure(&cb, DbDown));
}

#[test]
fn a_concrete_error_is_matched_by_its_own_type_only_with_call() {
    // Without a view, `call` cannot see a concrete type as `dyn Error`: its
    // source chain is not searched (call_with_view is for that).
    let cb = builder("ex-concrete").exclude::<Validation>().build();
    assert!(is_failure(&cb, QueryError(Validation)));
}

fn request_view(e: &RequestError) -> Option<&(dyn StdError + 'static)> {
    Some(e)
}

#[test]
fn call_with_view_searches_the_source_chain_of_a_concrete_error() {
    let cb = builder("ex-view").exclude::<Validation>().build();
    let r = cb.call_with_view(|| Err::<(), _>(QueryError(Validation)), query_view);
    assert!(matches!(r, Err(Error::Inner(QueryError(Validation)))));
    assert_eq!(cb.current_state(), State::Closed);

    let r = cb.call_with_view(
        || Err::<(), _>(RequestError(QueryError(Validation))),
        request_view,
    );
    assert!(matches!(r, Err(Error::Inner(_))));
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);

    // A chain without the excluded type is a failure.
    let cb = builder("ex-view-miss").exclude::<DbDown>().build();
    let r = cb.call_with_view(|| Err::<(), _>(QueryError(Validation)), query_view);
    assert!(r.unwrap_err().is_tripped());
}

#[test]
fn call_with_view_ok_is_a_success() {
    let cb = CircuitBreaker::builder("ex-view-ok").fail_max(3).build();
    cb.call(|| Err::<(), _>("boom")).unwrap_err();
    assert_eq!(cb.fail_counter(), 1);
    let r = cb.call_with_view(|| Ok::<_, QueryError>(3), query_view);
    assert_eq!(r.unwrap(), 3);
    assert_eq!(cb.fail_counter(), 0);
}

// ---- by predicate ----

#[test]
fn exclude_if_excludes_what_the_predicate_accepts() {
    let cb = builder("ex-if")
        .exclude_if(|e: &HttpError| e.status < 500)
        .build();
    let r = cb.call(|| Err::<(), _>(HttpError { status: 404 }));
    // Returned as it was.
    assert!(matches!(r, Err(Error::Inner(HttpError { status: 404 }))));
    assert_eq!(cb.current_state(), State::Closed);
    assert!(!is_failure(&cb, HttpError { status: 499 }));
    assert!(is_failure(&cb, HttpError { status: 500 }));
    assert!(is_failure(&cb, HttpError { status: 503 }));
    // Other types are not the predicate's business.
    assert!(is_failure(&cb, DbDown));
}

#[test]
fn exclude_if_finds_its_type_as_exclude_does() {
    let cb = builder("ex-if-chain")
        .exclude_if(|e: &HttpError| e.status < 500)
        .build();
    assert!(!is_failure(
        &cb,
        Box::new(ClientError(HttpError { status: 400 })) as BoxError
    ));
    assert!(is_failure(
        &cb,
        Box::new(ClientError(HttpError { status: 502 })) as BoxError
    ));
    fn view(e: &ClientError) -> Option<&(dyn StdError + 'static)> {
        Some(e)
    }
    let r = cb.call_with_view(
        || Err::<(), _>(ClientError(HttpError { status: 401 })),
        view,
    );
    assert!(matches!(r, Err(Error::Inner(_))));
    assert_eq!(cb.current_state(), State::Closed);
    let r = cb.call_with_view(
        || Err::<(), _>(ClientError(HttpError { status: 504 })),
        view,
    );
    assert!(r.unwrap_err().is_tripped());
}

#[test]
fn exclusions_combine() {
    let cb = builder("ex-both")
        .exclude::<Validation>()
        .exclude_if(|e: &HttpError| e.status == 404)
        .build();
    assert!(!is_failure(&cb, Validation));
    assert!(!is_failure(&cb, HttpError { status: 404 }));
    assert!(is_failure(&cb, HttpError { status: 405 }));
    assert!(is_failure(&cb, DbDown));
}

// ---- what an excluded error counts as ----

#[test]
fn an_excluded_error_counts_as_a_success_in_closed() {
    let cb = CircuitBreaker::builder("ex-success-closed")
        .fail_max(3)
        .exclude::<Validation>()
        .build();
    cb.call(|| Err::<(), _>(DbDown)).unwrap_err();
    cb.call(|| Err::<(), _>(DbDown)).unwrap_err();
    assert_eq!(cb.fail_counter(), 2);
    let r = cb.call(|| Err::<(), _>(Validation));
    assert_eq!(r.unwrap_err().into_inner(), Some(Validation));
    assert_eq!(cb.fail_counter(), 0);
    // Two more failures no longer open it.
    cb.call(|| Err::<(), _>(DbDown)).unwrap_err();
    cb.call(|| Err::<(), _>(DbDown)).unwrap_err();
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn an_excluded_error_is_a_trial_success_in_half_open() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("ex-trial")
        .fail_max(1)
        .success_threshold(2)
        .reset_timeout(MINUTE)
        .exclude::<Validation>()
        .clock(clock.clone())
        .build();
    cb.call(|| Err::<(), _>(DbDown)).unwrap_err();
    assert_eq!(cb.current_state(), State::Open);
    // Rejected while open, excluded or not.
    assert!(cb.call(|| Err::<(), _>(Validation)).unwrap_err().is_open());

    clock.advance(MINUTE);
    let r = cb.call(|| Err::<(), _>(Validation));
    assert!(matches!(r, Err(Error::Inner(Validation))));
    assert_eq!(cb.current_state(), State::HalfOpen);
    assert_eq!(cb.success_counter(), 1);
    // It freed the trial place: the next call is a trial, and closes.
    let r = cb.call(|| Err::<(), _>(Validation));
    assert!(matches!(r, Err(Error::Inner(Validation))));
    assert_eq!(cb.current_state(), State::Closed);
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(cb.success_counter(), 0);
}

#[test]
fn an_excluded_error_is_never_tripped() {
    let cb = builder("ex-never-tripped").exclude::<Validation>().build();
    for _ in 0..10 {
        assert!(matches!(
            cb.call(|| Err::<(), _>(Validation)),
            Err(Error::Inner(Validation))
        ));
    }
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn an_excluded_boxed_error_is_returned_as_is() {
    let cb = builder("ex-as-is").exclude::<Validation>().build();
    let r = cb.call(|| Err::<(), BoxError>(Box::new(QueryError(Validation))));
    let Err(Error::Inner(boxed)) = r else {
        panic!("expected Error::Inner");
    };
    assert!(boxed.downcast_ref::<QueryError>().is_some());
    assert_eq!(boxed.to_string(), "query failed");
}

// ---- at run time ----

#[test]
fn add_excluded_and_remove_excluded_at_run_time() {
    let cb = builder("ex-runtime").build();
    assert!(is_failure(&cb, DbDown));

    cb.add_excluded::<DbDown>();
    assert!(!is_failure(&cb, DbDown));
    assert!(!is_failure(&cb, Box::new(DbDown) as BoxError));
    assert!(is_failure(&cb, Validation));

    assert!(cb.remove_excluded::<DbDown>());
    assert!(!cb.remove_excluded::<DbDown>());
    assert!(is_failure(&cb, DbDown));
}

#[test]
fn remove_excluded_removes_a_builder_exclusion_and_only_that_type() {
    let cb = builder("ex-runtime-builder")
        .exclude::<Validation>()
        .exclude::<DbDown>()
        .build();
    assert!(!cb.remove_excluded::<HttpError>());
    assert!(cb.remove_excluded::<Validation>());
    assert!(is_failure(&cb, Validation));
    assert!(!is_failure(&cb, DbDown));
}

#[test]
fn remove_excluded_leaves_predicates_alone() {
    let cb = builder("ex-runtime-predicate")
        .exclude_if(|e: &HttpError| e.status < 500)
        .build();
    assert!(!cb.remove_excluded::<HttpError>());
    assert!(!is_failure(&cb, HttpError { status: 404 }));

    cb.add_excluded_if(|e: &HttpError| e.status == 503);
    assert!(!is_failure(&cb, HttpError { status: 503 }));
    assert!(is_failure(&cb, HttpError { status: 500 }));
}

#[test]
fn an_exclusion_added_while_a_call_runs_applies_to_its_result() {
    let cb = builder("ex-runtime-during").build();
    let r = cb.call(|| {
        cb.add_excluded::<DbDown>();
        Err::<(), _>(DbDown)
    });
    assert!(matches!(r, Err(Error::Inner(DbDown))));
    assert_eq!(cb.current_state(), State::Closed);
}

// ---- anyhow ----

#[cfg(feature = "anyhow")]
mod with_anyhow {
    use super::*;

    #[test]
    fn exclude_matches_inside_anyhow_error() {
        let cb = builder("ex-anyhow").exclude::<Validation>().build();
        assert!(!is_failure(&cb, anyhow::Error::new(Validation)));
        assert!(!is_failure(&cb, anyhow::Error::from(Validation)));
        assert!(is_failure(&cb, anyhow::Error::new(DbDown)));
        assert!(is_failure(&cb, anyhow::anyhow!("just text")));
    }

    #[test]
    fn exclude_matches_along_the_chain_of_anyhow_error() {
        let cb = builder("ex-anyhow-chain").exclude::<Validation>().build();
        assert!(!is_failure(
            &cb,
            anyhow::Error::new(Validation).context("while saving")
        ));
        assert!(!is_failure(&cb, anyhow::Error::new(QueryError(Validation))));
        assert!(!is_failure(
            &cb,
            anyhow::Error::new(io::Error::other(Validation))
        ));
        assert!(is_failure(
            &cb,
            anyhow::Error::new(DbDown).context("while saving")
        ));
    }

    #[test]
    fn exclude_if_matches_inside_anyhow_error() {
        let cb = builder("ex-anyhow-if")
            .exclude_if(|e: &HttpError| e.status < 500)
            .build();
        assert!(!is_failure(
            &cb,
            anyhow::Error::new(HttpError { status: 404 })
        ));
        assert!(is_failure(
            &cb,
            anyhow::Error::new(HttpError { status: 500 })
        ));
    }

    #[test]
    fn an_excluded_anyhow_error_is_returned_as_is() {
        let cb = builder("ex-anyhow-as-is").exclude::<Validation>().build();
        let r: Result<(), Error<anyhow::Error>> =
            cb.call(|| Err(anyhow::Error::new(Validation).context("ctx")));
        let Err(Error::Inner(e)) = r else {
            panic!("expected Error::Inner");
        };
        assert_eq!(e.to_string(), "ctx");
        assert!(e.downcast_ref::<Validation>().is_some());
    }
}

// ---- the attribute sees through report types, with no cargo feature ----

mod attribute_reports {
    use super::*;
    use breaker::{circuit_breaker, registry, CircuitBreakerError};

    /// `anyhow::Error` implements `AsRef<dyn Error + Send + Sync>`: the
    /// attribute searches its chain whether or not the `anyhow` feature is on.
    #[circuit_breaker(name = "ex-attr-anyhow", fail_max = 1, reset_timeout = "60s", exclude = [Validation])]
    fn save(error: fn() -> anyhow::Error) -> anyhow::Result<()> {
        Err(error())
    }

    #[test]
    fn an_anyhow_function_excludes_by_type_without_the_feature() {
        let cb = registry::get("ex-attr-anyhow");
        let e = save(|| anyhow::Error::new(Validation).context("while saving")).unwrap_err();
        assert_eq!(e.to_string(), "while saving");
        assert_eq!(cb.current_state(), State::Closed);
        let e = save(|| anyhow::Error::new(QueryError(Validation))).unwrap_err();
        assert!(e.downcast_ref::<QueryError>().is_some());
        assert_eq!(cb.current_state(), State::Closed);
        assert_eq!(cb.fail_counter(), 0);
        // Another error still fails, and the rejection is an anyhow error too.
        save(|| anyhow::Error::new(DbDown)).unwrap_err();
        assert_eq!(cb.current_state(), State::Open);
        let rejected = save(|| anyhow::Error::new(DbDown)).unwrap_err();
        assert!(rejected.downcast_ref::<CircuitBreakerError>().is_some());
    }

    /// Any report type of one's own that is `AsRef<dyn Error + Send + Sync>`
    /// (as `eyre::Report` is) gets the same treatment.
    #[derive(Debug)]
    struct Report(BoxError);

    impl AsRef<dyn StdError + Send + Sync> for Report {
        fn as_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
            &*self.0
        }
    }

    impl From<CircuitBreakerError> for Report {
        fn from(e: CircuitBreakerError) -> Self {
            Report(Box::new(e))
        }
    }

    #[circuit_breaker(name = "ex-attr-report", fail_max = 1, reset_timeout = "60s", exclude = [|e: &HttpError| e.status < 500])]
    fn fetch(status: u16) -> Result<(), Report> {
        Err(Report(Box::new(ClientError(HttpError { status }))))
    }

    #[test]
    fn a_report_type_is_searched_through_as_ref() {
        let cb = registry::get("ex-attr-report");
        fetch(404).unwrap_err();
        assert_eq!(cb.current_state(), State::Closed);
        fetch(503).unwrap_err();
        assert_eq!(cb.current_state(), State::Open);
    }
}

// ---- hints: exclusions that cannot match say so (debug builds) ----

mod hints {
    use super::*;
    use breaker::hint::{self, Hint};
    use breaker::{circuit_breaker, registry, CircuitBreakerError};
    use std::sync::{Mutex, Once};

    static HEARD: Mutex<Vec<Hint>> = Mutex::new(Vec::new());

    /// Sends hints to `HEARD` from now on (before a test's first failure).
    fn listen() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| hint::set_hook(|h| HEARD.lock().unwrap().push(h.clone())));
    }

    /// The hints given about `breaker` so far (the hook is the process's,
    /// shared by tests running in parallel: each test reads its own names).
    fn heard(breaker: &str) -> Vec<String> {
        HEARD
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.breaker() == breaker)
            .map(|h| h.message().to_owned())
            .collect()
    }

    #[derive(Debug, thiserror::Error)]
    enum FetchError {
        #[error(transparent)]
        Http(#[from] HttpError),
        #[error("database down")]
        Db,
        #[error(transparent)]
        Breaker(#[from] CircuitBreakerError),
    }

    #[circuit_breaker(name = "ex-hint-transparent", fail_max = 2, reset_timeout = "60s", exclude = [|e: &HttpError| e.status < 500])]
    fn fetch_transparent(status: u16) -> Result<(), FetchError> {
        Err(HttpError { status })?
    }

    /// Setup 1 of issue 12: a transparent variant hides the wrapped error
    /// from `source()`, so the predicate never sees it. It still cannot
    /// match (nothing can find it at run time), but the first failure says
    /// why and what to write instead.
    #[test]
    #[cfg(debug_assertions)]
    fn a_transparent_wrapper_is_named_with_the_fix() {
        listen();
        let cb = registry::get("ex-hint-transparent");
        fetch_transparent(404).unwrap_err();
        assert_eq!(cb.fail_counter(), 1);
        fetch_transparent(404).unwrap_err(); // told once
        assert_eq!(
            heard("ex-hint-transparent"),
            ["breaker 'ex-hint-transparent' excludes `HttpError` but `FetchError::Http` holds it outside its `source()` chain (as `#[error(transparent)]` does: its `source()` skips the error it wraps); exclude `FetchError::Http(..)` instead, or `FetchError::Http(e) if ..` to keep a condition"]
        );
    }

    #[circuit_breaker(name = "ex-hint-both", fail_max = 1, reset_timeout = "60s", exclude = [HttpError])]
    fn fetch_both(status: u16) -> Result<(), FetchError> {
        Err(HttpError { status })?
    }

    /// The breaker's own exclusions are checked first: when one of them
    /// matches, the attribute's entry that could not is not worth a hint.
    #[test]
    #[cfg(debug_assertions)]
    fn no_hint_when_another_exclusion_matched() {
        listen();
        let cb = registry::get("ex-hint-both");
        cb.add_excluded_if(|e: &FetchError| matches!(e, FetchError::Http(_)));
        fetch_both(404).unwrap_err();
        assert_eq!(cb.current_state(), State::Closed);
        assert!(heard("ex-hint-both").is_empty());
    }

    #[circuit_breaker(name = "ex-hint-variant", fail_max = 1, reset_timeout = "60s", exclude = [FetchError::Http(..)])]
    fn fetch_by_variant(status: u16) -> Result<(), FetchError> {
        match status {
            0 => Err(FetchError::Db),
            _ => Err(HttpError { status })?,
        }
    }

    #[test]
    fn the_fix_excludes_the_transparent_variant() {
        listen();
        let cb = registry::get("ex-hint-variant");
        fetch_by_variant(404).unwrap_err();
        assert_eq!(cb.current_state(), State::Closed);
        fetch_by_variant(0).unwrap_err();
        assert_eq!(cb.current_state(), State::Open);
        assert!(heard("ex-hint-variant").is_empty());
    }

    #[test]
    #[cfg(debug_assertions)]
    fn a_transparent_wrapper_through_call_with_view_is_named_too() {
        listen();
        let cb = builder("ex-hint-view").exclude::<HttpError>().build();
        fn view(e: &FetchError) -> Option<&(dyn StdError + 'static)> {
            Some(e)
        }
        // Another variant: nothing to say.
        let _ = cb.call_with_view(|| Err::<(), _>(FetchError::Db), view);
        assert!(heard("ex-hint-view").is_empty());
        cb.reset();
        let _ = cb.call_with_view(
            || Err::<(), _>(FetchError::Http(HttpError { status: 404 })),
            view,
        );
        assert_eq!(cb.current_state(), State::Open);
        let told = heard("ex-hint-view");
        assert_eq!(told.len(), 1);
        assert!(told[0].contains("exclude `FetchError::Http(..)` instead"));
    }

    /// Setup 3 of issue 12: `call` on a concrete error type that wraps the
    /// excluded one cannot search its chain; the first failure says so.
    #[test]
    #[cfg(debug_assertions)]
    fn call_on_a_concrete_wrapper_says_how_to_search_it() {
        listen();
        let cb = builder("ex-hint-call").exclude::<Validation>().build();
        assert!(is_failure(&cb, QueryError(Validation)));
        assert!(is_failure(&cb, QueryError(Validation)));
        assert_eq!(
            heard("ex-hint-call"),
            ["breaker 'ex-hint-call' excludes `Validation` but `call` and `call_async` cannot search a `QueryError`'s `source()` chain (they see boxed errors and `io::Error` only): call `call_with_view(f, |e| Some(e))` (or `call_async_with_view`), or exclude with `exclude_if(|e: &QueryError| ..)`"]
        );
        // The fix it names works.
        let r = cb.call_with_view(|| Err::<(), _>(QueryError(Validation)), |e| Some(e));
        assert!(matches!(r, Err(Error::Inner(_))));
        assert_eq!(cb.current_state(), State::Closed);
    }

    /// Setup 2 of issue 12, by hand: `call` on `anyhow::Error` needs the
    /// feature (the attribute does not); without it, the first failure says so.
    #[test]
    #[cfg(all(debug_assertions, not(feature = "anyhow")))]
    fn call_on_anyhow_without_the_feature_names_the_feature() {
        listen();
        let cb = builder("ex-hint-anyhow").exclude::<Validation>().build();
        assert!(is_failure(&cb, anyhow::Error::new(Validation)));
        let told = heard("ex-hint-anyhow");
        assert_eq!(told.len(), 1);
        assert!(told[0].contains("without the `anyhow` feature of `breaker`"));
    }

    #[test]
    fn an_error_that_can_be_searched_and_holds_nothing_is_not_a_hint() {
        listen();
        let cb = builder("ex-hint-none").exclude::<Validation>().build();
        assert!(is_failure(&cb, Box::new(DbDown) as BoxError));
        assert!(is_failure(&cb, io::Error::other(DbDown)));
        assert!(heard("ex-hint-none").is_empty());
    }
}

// ---- the attribute: guarded patterns and predicate functions ----

mod attribute_patterns {
    use super::*;
    use breaker::{circuit_breaker, registry, CircuitBreakerError};

    #[derive(Debug, thiserror::Error)]
    enum FetchError {
        #[error(transparent)]
        Http(#[from] HttpError),
        #[error("database down")]
        Db,
        #[error(transparent)]
        Breaker(#[from] CircuitBreakerError),
    }

    /// The fix for a transparent variant, with a condition on what it wraps.
    #[circuit_breaker(name = "ex-attr-guard", fail_max = 1, reset_timeout = "60s", exclude = [FetchError::Http(e) if e.status < 500])]
    fn fetch(status: u16) -> Result<(), FetchError> {
        match status {
            0 => Err(FetchError::Db),
            _ => Err(HttpError { status })?,
        }
    }

    #[test]
    fn a_guarded_pattern_excludes_what_its_guard_accepts() {
        let cb = registry::get("ex-attr-guard");
        fetch(404).unwrap_err();
        fetch(499).unwrap_err();
        assert_eq!(cb.current_state(), State::Closed);
        fetch(500).unwrap_err();
        assert_eq!(cb.current_state(), State::Open);
        cb.reset();
        fetch(0).unwrap_err();
        assert_eq!(cb.current_state(), State::Open);
    }

    #[derive(Debug, thiserror::Error)]
    enum LoadError {
        #[error("client failed")]
        Client(#[source] HttpError),
        #[error("database down")]
        Db,
        #[error("timed out")]
        Timeout,
        #[error(transparent)]
        Breaker(#[from] CircuitBreakerError),
    }

    mod predicates {
        pub fn is_client_error(e: &super::HttpError) -> bool {
            e.status < 500
        }

        pub fn is_db(e: &super::LoadError) -> bool {
            matches!(e, super::LoadError::Db)
        }
    }

    /// A named function is a predicate on its argument's type, found as a
    /// type is (here in the `source()` chain), or on the function's own
    /// error type.
    #[circuit_breaker(name = "ex-attr-fn", fail_max = 1, reset_timeout = "60s", exclude = [predicates::is_client_error, predicates::is_db])]
    fn load(status: u16) -> Result<(), LoadError> {
        match status {
            0 => Err(LoadError::Db),
            1 => Err(LoadError::Timeout),
            _ => Err(LoadError::Client(HttpError { status })),
        }
    }

    #[test]
    fn a_named_function_is_a_predicate() {
        let cb = registry::get("ex-attr-fn");
        load(404).unwrap_err();
        load(0).unwrap_err();
        assert_eq!(cb.current_state(), State::Closed);
        load(503).unwrap_err();
        assert_eq!(cb.current_state(), State::Open);
        cb.reset();
        load(1).unwrap_err();
        assert_eq!(cb.current_state(), State::Open);
    }
}
