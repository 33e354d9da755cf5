//! `fail_if`: `Ok` values that are failures (API.md, "Trip policies"), on
//! the breaker (the public call family) and per call site (the `__private`
//! shims the attribute calls). Time is a `ManualClock`; nothing sleeps.

mod common;

use std::future::poll_fn;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::{Arc, Mutex};

use breaker::{listener, CircuitBreaker, CircuitBreakerError, Error, FailedValue, State};
use common::breakers::clocked_builder;
use common::{Backend, BACKENDS};

/// A response whose status says whether the dependency worked.
#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
}

fn server_error(r: &Response) -> bool {
    r.status >= 500
}

fn judging(name: &'static str, backend: Backend, fail_max: u32) -> CircuitBreaker {
    let (builder, _) = clocked_builder(name, fail_max, 1);
    backend.storage(builder.fail_if(server_error)).build()
}

fn respond(cb: &CircuitBreaker, status: u16) -> Result<Response, Error<&'static str>> {
    cb.call(|| Ok(Response { status }))
}

#[test]
fn an_accepted_ok_counts_toward_fail_max_and_is_still_returned() {
    for backend in BACKENDS {
        let cb = judging("fail-if-counts", backend, 3);
        assert_eq!(respond(&cb, 503).unwrap(), Response { status: 503 });
        assert_eq!(respond(&cb, 500).unwrap().status, 500);
        assert_eq!(cb.fail_counter(), 2, "{backend:?}");
        // A value it does not accept is a success, which resets the count.
        assert_eq!(respond(&cb, 200).unwrap().status, 200);
        assert_eq!(cb.fail_counter(), 0, "{backend:?}");
        // Failures and accepted values count together.
        let _ = cb.call(|| Err::<Response, _>("refused"));
        let _ = respond(&cb, 502);
        assert_eq!(cb.fail_counter(), 2, "{backend:?}");
        assert_eq!(cb.current_state(), State::Closed);
    }
}

#[test]
fn the_accepted_ok_that_trips_the_circuit_is_returned_as_ok() {
    for backend in BACKENDS {
        let cb = judging("fail-if-trips", backend, 2);
        let _ = respond(&cb, 503);
        let tripping = respond(&cb, 504);
        assert_eq!(tripping.unwrap(), Response { status: 504 }, "{backend:?}");
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
        assert!(respond(&cb, 200).unwrap_err().is_open());
    }
}

#[test]
fn a_trial_whose_ok_is_accepted_opens_the_circuit_again() {
    for backend in BACKENDS {
        let cb = judging("fail-if-trial", backend, 5);
        cb.half_open();
        assert_eq!(respond(&cb, 503).unwrap().status, 503);
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
    }
}

#[test]
fn listeners_hear_a_failure_of_a_failed_value() {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    let (builder, _) = clocked_builder("fail-if-listeners", 5, 1);
    let cb = builder
        .fail_if(server_error)
        .listener(listener::on_failure(move |_, failure| {
            let judged = failure.downcast_ref::<FailedValue>().is_some();
            log.lock().unwrap().push(format!("failure judged={judged}"));
        }))
        .listener(listener::on_success(|_| panic!("no success here")))
        .build();
    let _ = respond(&cb, 503);
    assert_eq!(*heard.lock().unwrap(), ["failure judged=true"]);
}

#[test]
fn every_public_way_to_call_applies_it() {
    let cb = judging("fail-if-family", Backend::Memory, 100);
    let fell_back = cb.call_or_else(|| Ok::<_, ()>(Response { status: 500 }), |_| unreachable!());
    assert_eq!(fell_back.unwrap().status, 500);
    let viewed = cb.call_with_view(
        || Ok::<_, std::io::Error>(Response { status: 501 }),
        |e| Some(e),
    );
    assert_eq!(viewed.unwrap().status, 501);
    let awaited = block_on(cb.call_async(async { Ok::<_, ()>(Response { status: 502 }) }));
    assert_eq!(awaited.unwrap().status, 502);
    let fallen = block_on(
        cb.call_async_or_else(async { Ok::<_, ()>(Response { status: 503 }) }, |_| async {
            unreachable!()
        }),
    );
    assert_eq!(fallen.unwrap().status, 503);
    assert_eq!(cb.fail_counter(), 4);
    // A stream: its first accepted item fails the call, and is yielded.
    let items = block_on(collect(cb.call_stream(Items(vec![200, 504, 200]))));
    assert_eq!(items, [Some(200), Some(504), Some(200)]);
    assert_eq!(cb.fail_counter(), 5);
}

#[test]
fn a_panicking_predicate_fails_the_call_and_the_panic_continues() {
    for backend in BACKENDS {
        let (builder, _) = clocked_builder("fail-if-panics", 1, 1);
        let cb = backend
            .storage(builder.fail_if(|_: &Response| panic!("predicate")))
            .build();
        let caught = catch_unwind(AssertUnwindSafe(|| respond(&cb, 200)));
        assert!(caught.is_err());
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
    }
}

#[test]
fn without_fail_if_every_ok_is_a_success() {
    let (builder, _) = clocked_builder("fail-if-none", 1, 1);
    let cb = builder.build();
    assert_eq!(respond(&cb, 503).unwrap().status, 503);
    assert_eq!(cb.fail_counter(), 0);
}

// ---- a value of another type is never judged: a hint says so ----

#[cfg(debug_assertions)]
mod hints {
    use super::*;
    use breaker::hint::{self, Hint};
    use std::sync::Once;

    static HEARD: Mutex<Vec<Hint>> = Mutex::new(Vec::new());

    fn heard(breaker: &str) -> Vec<String> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| hint::set_hook(|h| HEARD.lock().unwrap().push(h.clone())));
        HEARD
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.breaker() == breaker)
            .map(|h| h.message().to_owned())
            .collect()
    }

    #[test]
    fn a_value_of_another_type_is_not_judged_and_a_hint_says_so_once() {
        let _ = heard("");
        let (builder, _) = clocked_builder("fail-if-other-type", 1, 1);
        let cb = builder.fail_if(server_error).build();
        for _ in 0..3 {
            assert_eq!(cb.call(|| Ok::<u16, ()>(503)).unwrap(), 503);
        }
        assert_eq!(cb.fail_counter(), 0);
        let hints = heard("fail-if-other-type");
        assert_eq!(hints.len(), 1, "{hints:?}");
        assert!(
            hints[0].contains("`fail_if` for `Response` values")
                && hints[0].contains("returned a `u16`"),
            "{}",
            hints[0]
        );
        // Another type: a hint of its own.
        let _ = cb.call(|| Ok::<&str, ()>("503"));
        assert_eq!(heard("fail-if-other-type").len(), 2);
    }
}

// ---- per call site: the `__private` shims the attribute expands to ----

#[derive(Debug)]
struct SiteError;

impl From<CircuitBreakerError> for SiteError {
    fn from(_: CircuitBreakerError) -> Self {
        SiteError
    }
}

fn no_view(_: &SiteError) -> Option<&(dyn std::error::Error + 'static)> {
    None
}

fn not_excluded(_: &SiteError, _: Option<&(dyn std::error::Error + 'static)>) -> bool {
    false
}

struct Cache {
    hits: u64,
}

impl Cache {
    /// A borrowed return, judged at the call site.
    fn get(&self, cb: &CircuitBreaker) -> Result<&u64, SiteError> {
        breaker::__private::call(
            cb,
            || Ok(&self.hits),
            no_view,
            not_excluded,
            SiteError::from,
            breaker::__private::fail_if(|hits: &&u64| **hits == 0),
        )
    }

    /// A borrowed return without a judge.
    fn peek(&self, cb: &CircuitBreaker) -> Result<&u64, SiteError> {
        breaker::__private::call(
            cb,
            || Ok(&self.hits),
            no_view,
            not_excluded,
            SiteError::from,
            breaker::__private::Unjudged,
        )
    }
}

#[test]
fn a_site_judge_sees_borrowed_returns() {
    for backend in BACKENDS {
        let (builder, _) = clocked_builder("fail-if-site", 2, 1);
        let cb = backend.storage(builder).build();
        let empty = Cache { hits: 0 };
        assert_eq!(*empty.get(&cb).unwrap(), 0);
        assert_eq!(cb.fail_counter(), 1, "{backend:?}");
        assert_eq!(*empty.peek(&cb).unwrap(), 0); // no judge: a success
        assert_eq!(cb.fail_counter(), 0, "{backend:?}");
        let _ = empty.get(&cb);
        assert_eq!(
            *empty.get(&cb).unwrap(),
            0,
            "the tripping value is returned"
        );
        assert_eq!(cb.current_state(), State::Open, "{backend:?}");
        assert!(Cache { hits: 3 }.get(&cb).is_err());
    }
}

#[test]
fn a_site_judge_applies_to_async_calls_and_fallbacks() {
    let (builder, _) = clocked_builder("fail-if-site-async", 10, 1);
    let cb = builder.build();
    let judged = breaker::__private::call_async(
        &cb,
        async { Ok::<u16, SiteError>(503) },
        no_view,
        not_excluded,
        SiteError::from,
        breaker::__private::fail_if(|s: &u16| *s >= 500),
    );
    assert_eq!(block_on(judged).unwrap(), 503);
    let ran = breaker::__private::run(
        &cb,
        || Ok::<u16, SiteError>(500),
        no_view,
        not_excluded,
        SiteError::from,
        breaker::__private::fail_if(|s: &u16| *s >= 500),
    );
    assert_eq!(ran.unwrap().unwrap(), 500);
    let ran_async = breaker::__private::run_async(
        &cb,
        async { Ok::<u16, SiteError>(200) },
        no_view,
        not_excluded,
        SiteError::from,
        breaker::__private::fail_if(|s: &u16| *s >= 500),
    );
    assert_eq!(block_on(ran_async).unwrap().unwrap(), 200);
    assert_eq!(cb.fail_counter(), 0, "the last call succeeded");
    let _ = breaker::__private::call(
        &cb,
        || Ok::<u16, SiteError>(501),
        no_view,
        not_excluded,
        SiteError::from,
        breaker::__private::fail_if(|s: &u16| *s >= 500),
    );
    assert_eq!(cb.fail_counter(), 1);
}

#[test]
fn a_breaker_fail_if_on_a_builder_made_for_the_attribute_is_not_applied_by_the_shims() {
    // The shims take any `T`, borrowed ones included: they apply the
    // call site's judge alone.
    let cb = judging("fail-if-shim-ignores-breaker", Backend::Memory, 5);
    let plain = breaker::__private::call(
        &cb,
        || Ok::<_, SiteError>(Response { status: 503 }),
        no_view,
        not_excluded,
        SiteError::from,
        breaker::__private::Unjudged,
    );
    assert_eq!(plain.unwrap().status, 503);
    assert_eq!(cb.fail_counter(), 0);
}

// ---- helpers ----

/// A stream of responses with these statuses.
struct Items(Vec<u16>);

impl futures_core::Stream for Items {
    type Item = Result<Response, ()>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = (!self.0.is_empty()).then(|| {
            Ok(Response {
                status: self.0.remove(0),
            })
        });
        std::task::Poll::Ready(next)
    }
}

async fn collect<S>(stream: S) -> Vec<Option<u16>>
where
    S: futures_core::Stream<Item = Result<Response, Error<()>>>,
{
    let mut stream = pin!(stream);
    let mut seen = Vec::new();
    while let Some(item) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        seen.push(item.ok().map(|r| r.status));
    }
    seen
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}
