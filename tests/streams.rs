//! Streams guarded as one call: `#[circuit_breaker]` on a function returning
//! `impl Stream<Item = Result<T, E>>`, and `CircuitBreaker::call_stream`.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::{circuit_breaker, registry, CircuitBreaker, CircuitBreakerError, Error, State};
use futures_core::Stream;

#[derive(Debug, PartialEq, Clone, Copy)]
enum PageError {
    Timeout,
    NotFound,
    Breaker,
}

impl From<CircuitBreakerError> for PageError {
    fn from(_: CircuitBreakerError) -> Self {
        PageError::Breaker
    }
}

/// One scripted item: a page, an error, "not ready yet", or a panic.
#[derive(Clone, Copy)]
enum Step {
    Page(u32),
    Fail(PageError),
    Pending,
    Panic,
}

struct Pages(VecDeque<Step>);

impl Stream for Pages {
    type Item = Result<u32, PageError>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Page(n)) => Poll::Ready(Some(Ok(n))),
            Some(Step::Fail(e)) => Poll::Ready(Some(Err(e))),
            Some(Step::Pending) => Poll::Pending,
            Some(Step::Panic) => panic!("the page stream panicked"),
        }
    }
}

/// Polls once, with a waker that does nothing.
fn poll<S: Stream + Unpin>(s: &mut S) -> Poll<Option<S::Item>> {
    Pin::new(s).poll_next(&mut Context::from_waker(Waker::noop()))
}

/// Every item until the end (the scripts here never stay pending twice).
fn collect<S: Stream + Unpin>(mut s: S) -> Vec<S::Item> {
    let mut out = Vec::new();
    loop {
        match poll(&mut s) {
            Poll::Ready(Some(item)) => out.push(item),
            Poll::Ready(None) => return out,
            Poll::Pending => {}
        }
    }
}

static MADE: AtomicU32 = AtomicU32::new(0);

fn make_clock() -> ManualClock {
    ManualClock::new()
}

#[circuit_breaker(name = "streams.pages", fail_max = 2, reset_timeout = "30s", exclude = [PageError::NotFound])]
fn pages(script: Vec<Step>) -> impl Stream<Item = Result<u32, PageError>> + Unpin {
    MADE.fetch_add(1, Ordering::SeqCst);
    Pages(script.into())
}

#[test]
fn the_whole_stream_is_one_call_through_the_attribute() {
    let cb = registry::get("streams.pages");
    cb.reset();
    // A stream that ends is a success; one failure, then a success, resets.
    let _ = collect(pages(vec![Step::Fail(PageError::Timeout)]));
    assert_eq!(cb.fail_counter(), 1);
    let items = collect(pages(vec![Step::Page(1), Step::Pending, Step::Page(2)]));
    assert_eq!(items, [Ok(1), Ok(2)]);
    assert_eq!(cb.fail_counter(), 0);
    // An excluded error is passed on and the stream goes on.
    let items = collect(pages(vec![Step::Fail(PageError::NotFound), Step::Page(3)]));
    assert_eq!(items, [Err(PageError::NotFound), Ok(3)]);
    assert_eq!(cb.fail_counter(), 0);
    // The first failing item ends the call; later items pass through.
    let items = collect(pages(vec![
        Step::Page(1),
        Step::Fail(PageError::Timeout),
        Step::Fail(PageError::Timeout),
    ]));
    assert_eq!(
        items,
        [Ok(1), Err(PageError::Timeout), Err(PageError::Timeout)]
    );
    assert_eq!(cb.fail_counter(), 1);
    // The item that trips is the breaker's error (throw_new_error_on_trip).
    let items = collect(pages(vec![Step::Fail(PageError::Timeout)]));
    assert_eq!(items, [Err(PageError::Breaker)]);
    assert_eq!(cb.current_state(), State::Open);
    // Rejected: the body does not run, one error, the end.
    let made = MADE.load(Ordering::SeqCst);
    let items = collect(pages(vec![Step::Page(1)]));
    assert_eq!(items, [Err(PageError::Breaker)]);
    assert_eq!(MADE.load(Ordering::SeqCst), made);
    cb.reset();
}

#[test]
fn a_stream_dropped_during_its_trial_gives_the_place_back() {
    let clock = make_clock();
    let cb = CircuitBreaker::builder("streams.trial")
        .fail_max(1)
        .reset_timeout(Duration::from_secs(30))
        .clock(clock.clone())
        .build();
    let _ = cb.call(|| Err::<(), _>("boom"));
    clock.advance(Duration::from_secs(30));
    let mut trial = Box::pin(cb.call_stream(Pages(vec![Step::Page(1), Step::Pending].into())));
    assert!(matches!(poll(&mut trial), Poll::Ready(Some(Ok(1)))));
    assert_eq!(cb.current_state(), State::HalfOpen);
    // The trial place is taken while the stream runs.
    assert!(cb.call(|| Ok::<_, ()>(())).unwrap_err().is_open());
    drop(trial);
    // Given back: the next call is the trial, and closes the circuit.
    assert!(cb.call(|| Ok::<_, ()>(())).is_ok());
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn call_stream_admits_on_the_first_poll() {
    let cb = CircuitBreaker::builder("streams.lazy").fail_max(1).build();
    let mut made_while_closed = Box::pin(cb.call_stream(Pages(vec![Step::Page(7)].into())));
    cb.open();
    // Made while closed, first polled while open: rejected.
    assert!(matches!(
        poll(&mut made_while_closed),
        Poll::Ready(Some(Err(Error::Open(_))))
    ));
    assert!(matches!(poll(&mut made_while_closed), Poll::Ready(None)));
    cb.close();
    // Failing items by hand: Tripped, then Inner after the result.
    let items = collect(Box::pin(
        cb.call_stream(Pages(
            vec![
                Step::Fail(PageError::Timeout),
                Step::Fail(PageError::NotFound),
            ]
            .into(),
        )),
    ));
    assert!(matches!(
        items[0],
        Err(Error::Tripped(_, PageError::Timeout))
    ));
    assert!(matches!(items[1], Err(Error::Inner(PageError::NotFound))));
    assert_eq!(cb.current_state(), State::Open);
}

#[test]
fn a_panic_while_polled_fails_the_call_and_continues() {
    let cb = CircuitBreaker::builder("streams.panic").fail_max(1).build();
    let mut s = Box::pin(cb.call_stream(Pages(vec![Step::Page(1), Step::Panic].into())));
    assert!(matches!(poll(&mut s), Poll::Ready(Some(Ok(1)))));
    let panicked = catch_unwind(AssertUnwindSafe(|| poll(&mut s)));
    assert!(panicked.is_err());
    assert_eq!(cb.current_state(), State::Open);
}
