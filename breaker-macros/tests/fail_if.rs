//! `fail_if = |r: &T| predicate`: an `Ok` value the predicate accepts is
//! recorded as a failure at this call site, and still returned.

use breaker::{circuit_breaker, registry, CircuitBreakerError, State};

#[derive(Debug, PartialEq)]
struct Rejected;

impl From<CircuitBreakerError> for Rejected {
    fn from(_: CircuitBreakerError) -> Self {
        Rejected
    }
}

#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
}

#[circuit_breaker(name = "fail-if-sync", fail_max = 2, fail_if = |r: &Response| r.status >= 500)]
fn get(status: u16) -> Result<Response, Rejected> {
    Ok(Response { status })
}

#[circuit_breaker(name = "fail-if-async", fail_max = 1, fail_if = |n: &u32| *n == 0)]
async fn count(n: u32) -> Result<u32, Rejected> {
    Ok(n)
}

fn cached(_: u16) -> Result<Response, Rejected> {
    Ok(Response { status: 200 })
}

#[circuit_breaker(
    name = "fail-if-fallback",
    fail_max = 1,
    fallback = cached,
    fail_if = |r: &Response| r.status == 503
)]
fn with_fallback(status: u16) -> Result<Response, Rejected> {
    Ok(Response { status })
}

#[test]
fn an_ok_value_the_predicate_accepts_is_a_failure_and_still_returned() {
    let cb = registry::get("fail-if-sync");
    assert_eq!(get(200), Ok(Response { status: 200 }));
    assert_eq!(get(503), Ok(Response { status: 503 }));
    assert_eq!(cb.fail_counter(), 1);
    assert_eq!(
        get(200),
        Ok(Response { status: 200 }),
        "a success resets it"
    );
    assert_eq!(cb.fail_counter(), 0);
    assert_eq!(get(500), Ok(Response { status: 500 }));
    // The value that opens the circuit is returned too.
    assert_eq!(get(502), Ok(Response { status: 502 }));
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(get(200), Err(Rejected));
}

#[test]
fn fail_if_judges_async_fns_and_functions_with_a_fallback() {
    let cb = registry::get("fail-if-async");
    let run = |f| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    };
    assert_eq!(run(count(0)), Ok(0));
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(run(count(1)), Err(Rejected));

    let cb = registry::get("fail-if-fallback");
    assert_eq!(with_fallback(503), Ok(Response { status: 503 }));
    assert_eq!(cb.current_state(), State::Open);
    assert_eq!(
        with_fallback(404),
        Ok(Response { status: 200 }),
        "the fallback"
    );
}
