//! The `tracing` feature: the events of `TracingListener` (names, levels,
//! fields) caught by a capturing subscriber; hints routed to tracing; and
//! `#[circuit_breaker]` composed with `#[tracing::instrument]` in either
//! order.
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::tracing::TracingListener;
use breaker::{circuit_breaker, registry, CircuitBreaker, CircuitBreakerError, State};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One event as captured: level, target, fields (as text), and the name of
/// the span it was emitted in.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    target: String,
    fields: BTreeMap<String, String>,
    span: Option<String>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = ctx.event_span(event).map(|s| s.name().to_owned());
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
            span,
        });
    }
}

/// Runs `f` with a capturing subscriber as this thread's default.
fn captured<R>(f: impl FnOnce() -> R) -> (R, Vec<Captured>) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let result = tracing::subscriber::with_default(subscriber, f);
    (result, capture.take())
}

fn of_breaker<'a>(events: &'a [Captured], name: &str) -> Vec<&'a Captured> {
    events
        .iter()
        .filter(|e| e.target == "breaker" && e.field("breaker") == Some(name))
        .collect()
}

#[test]
fn a_trip_a_rejection_and_a_recovery_are_told_with_their_fields() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("traced-db")
        .fail_max(2)
        .reset_timeout(Duration::from_secs(30))
        .clock(clock.clone())
        .listener(TracingListener)
        .build();
    let ((), events) = captured(|| {
        let _ = cb.call(|| Ok::<_, &str>(()));
        let _ = cb.call(|| Err::<(), _>("refused"));
        let _ = cb.call(|| Err::<(), _>("refused"));
        clock.advance(Duration::from_secs(10));
        let _ = cb.call(|| Ok::<_, &str>(()));
        clock.advance(Duration::from_secs(20));
        let _ = cb.call(|| Ok::<_, &str>(()));
    });
    let events = of_breaker(&events, "traced-db");
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.level, e.field("message").unwrap_or_default()))
        .collect();
    assert_eq!(
        summary,
        [
            (Level::DEBUG, "call failed"),
            (Level::DEBUG, "call failed"),
            (Level::WARN, "state changed"),
            (Level::DEBUG, "call rejected"),
            (Level::WARN, "state changed"),
            (Level::WARN, "state changed"),
        ]
    );
    assert_eq!(events[0].field("error"), Some("\"refused\""));
    let opened = events[2];
    assert_eq!(opened.field("from"), Some("closed"));
    assert_eq!(opened.field("to"), Some("open"));
    assert_eq!(opened.field("retry_after_ms"), Some("30000"));
    let rejected = events[3];
    assert_eq!(rejected.field("state"), Some("open"));
    assert_eq!(rejected.field("retry_after_ms"), Some("20000"));
    assert_eq!(rejected.field("reason"), Some("TimeoutNotElapsed"));
    let (half, closed) = (events[4], events[5]);
    assert_eq!(
        (half.field("from"), half.field("to")),
        (Some("open"), Some("half-open"))
    );
    assert_eq!(half.field("retry_after_ms"), None);
    assert_eq!(
        (closed.field("from"), closed.field("to")),
        (Some("half-open"), Some("closed"))
    );
}

#[test]
fn a_breaker_without_the_listener_emits_nothing() {
    let cb = CircuitBreaker::builder("untraced").fail_max(1).build();
    let ((), events) = captured(|| {
        let _ = cb.call(|| Err::<(), _>("refused"));
        let _ = cb.call(|| Ok::<_, &str>(()));
    });
    assert!(events.is_empty(), "{events:?}");
}

#[cfg(debug_assertions)]
#[test]
fn hints_go_to_tracing_when_a_subscriber_listens() {
    #[derive(Debug, thiserror::Error)]
    #[error("invalid")]
    struct Invalid;
    #[derive(Debug, thiserror::Error)]
    #[error("query failed")]
    struct QueryError(#[source] Invalid);

    let cb = CircuitBreaker::builder("hinted")
        .exclude::<Invalid>()
        .build();
    let ((), events) = captured(|| {
        let _ = cb.call(|| Err::<(), _>(QueryError(Invalid)));
    });
    let hints = of_breaker(&events, "hinted");
    assert_eq!(hints.len(), 1, "{events:?}");
    assert_eq!(hints[0].level, Level::WARN);
    assert!(hints[0]
        .field("message")
        .unwrap()
        .contains("call_with_view"));
}

// ---- the attribute composes with #[tracing::instrument], either order ----

#[derive(Debug)]
enum AppError {
    Down,
    Breaker(CircuitBreakerError),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl From<CircuitBreakerError> for AppError {
    fn from(e: CircuitBreakerError) -> Self {
        AppError::Breaker(e)
    }
}

// Attributes expand from the top: the upper one sees the lower one still
// unexpanded on the function it returns, so the lower one ends up outermost
// at run time. `#[tracing::instrument]` above `#[circuit_breaker]`: the
// breaker guards a body that opens the span (a rejected call opens none).
// Below it: the span wraps the guarded call, the breaker's own events and
// errors included.

#[tracing::instrument]
#[circuit_breaker(name = "instrument-above", fail_max = 1, listeners = [breaker::tracing::listener])]
fn instrument_above(id: u32) -> Result<u32, AppError> {
    tracing::info!("inside");
    if id == 0 {
        return Err(AppError::Down);
    }
    Ok(id)
}

#[circuit_breaker(name = "instrument-below", fail_max = 1, listeners = [breaker::tracing::listener])]
#[tracing::instrument(err)]
fn instrument_below(id: u32) -> Result<u32, AppError> {
    tracing::info!("inside");
    if id == 0 {
        return Err(AppError::Down);
    }
    Ok(id)
}

#[tracing::instrument]
#[circuit_breaker(name = "instrument-above-async", fail_max = 1)]
async fn instrument_above_async(id: u32) -> Result<u32, AppError> {
    tracing::info!("inside");
    Ok(id)
}

#[circuit_breaker(name = "instrument-below-async", fail_max = 1)]
#[tracing::instrument]
async fn instrument_below_async(id: u32) -> Result<u32, AppError> {
    tracing::info!("inside");
    Ok(id)
}

fn inside_spans(events: &[Captured]) -> Vec<Option<&str>> {
    events
        .iter()
        .filter(|e| e.field("message") == Some("inside"))
        .map(|e| e.span.as_deref())
        .collect()
}

fn rejection_span(events: &[Captured]) -> Option<&str> {
    events
        .iter()
        .find(|e| e.field("message") == Some("call rejected"))
        .expect("a rejection event")
        .span
        .as_deref()
}

fn three_calls(f: fn(u32) -> Result<u32, AppError>) {
    assert_eq!(f(1).unwrap(), 1);
    assert!(matches!(f(0), Err(AppError::Breaker(e)) if e.state() == State::Open));
    assert!(matches!(f(2), Err(AppError::Breaker(e)) if e.state() == State::Open));
}

#[test]
fn instrument_above_the_attribute_spans_the_guarded_body() {
    let ((), events) = captured(|| three_calls(instrument_above));
    assert_eq!(
        inside_spans(&events),
        [Some("instrument_above"), Some("instrument_above")]
    );
    assert_eq!(rejection_span(&events), None);
    assert_eq!(
        registry::get("instrument-above").current_state(),
        State::Open
    );
}

#[test]
fn instrument_below_the_attribute_spans_the_guarded_call() {
    let ((), events) = captured(|| three_calls(instrument_below));
    assert_eq!(
        inside_spans(&events),
        [Some("instrument_below"), Some("instrument_below")]
    );
    assert_eq!(rejection_span(&events), Some("instrument_below"));
    // `err` records what the caller gets: the breaker's error, for the
    // tripping call and the rejected one.
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e.level == Level::ERROR)
        .filter_map(|e| e.field("error"))
        .collect();
    assert_eq!(errors.len(), 2, "{events:?}");
    assert!(
        errors.iter().all(|e| e.starts_with("Breaker(")),
        "{errors:?}"
    );
    assert_eq!(
        registry::get("instrument-below").current_state(),
        State::Open
    );
}

#[test]
fn async_functions_compose_in_either_order() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ((), events) = captured(|| {
        rt.block_on(async {
            assert_eq!(instrument_above_async(3).await.unwrap(), 3);
            assert_eq!(instrument_below_async(4).await.unwrap(), 4);
        })
    });
    assert_eq!(
        inside_spans(&events),
        [
            Some("instrument_above_async"),
            Some("instrument_below_async")
        ]
    );
}

#[test]
fn a_slow_call_is_told_at_debug_with_how_long_it_took() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("traced-slow")
        .slow_call_duration(Duration::from_secs(1))
        .clock(clock.clone())
        .listener(TracingListener)
        .build();
    let ((), events) = captured(|| {
        let _ = cb.call(|| {
            clock.advance(Duration::from_millis(200));
            Ok::<_, &str>(())
        });
        let _ = cb.call(|| {
            clock.advance(Duration::from_millis(1500));
            Ok::<_, &str>(())
        });
    });
    let events = of_breaker(&events, "traced-slow");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::DEBUG);
    assert_eq!(events[0].field("message"), Some("slow call"));
    assert_eq!(events[0].field("elapsed_ms"), Some("1500"));
}
