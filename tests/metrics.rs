//! The `metrics` feature: after a scripted trip and recovery, a debugging
//! recorder holds the names, labels and values the docs promise.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::metrics::MetricsListener;
use breaker::CircuitBreaker;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// `name{label=value,..}` (labels sorted) to its value, for every metric.
fn read(snapshotter: &Snapshotter) -> BTreeMap<String, String> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.to_string(),
                DebugValue::Histogram(h) => format!("{} samples", h.len()),
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

fn value<'a>(metrics: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    metrics.get(key).map(String::as_str)
}

#[test]
fn a_trip_and_a_recovery_are_counted_with_their_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    metrics::with_local_recorder(&recorder, || {
        let cb = CircuitBreaker::builder("metered")
            .fail_max(2)
            .reset_timeout(Duration::from_secs(10))
            .clock(clock.clone())
            .exclude::<std::fmt::Error>()
            .listener(MetricsListener::new())
            .build();
        let _ = cb.call(|| Ok::<_, &str>(()));
        let _ = cb.call(|| Err::<(), _>(std::fmt::Error)); // excluded
        let mut dropped = Box::pin(cb.call_async(async {
            std::future::pending::<()>().await;
            Ok::<_, &str>(())
        }));
        let waker = std::task::Waker::noop();
        let _ = dropped
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        drop(dropped); // cancelled
        let _ = cb.call(|| Err::<(), _>("down"));
        let _ = cb.call(|| Err::<(), _>("down")); // opens
        let _ = cb.call(|| Ok::<_, &str>(())); // rejected
        let _ = cb.call(|| Ok::<_, &str>(())); // rejected
        clock.advance(Duration::from_secs(10));
        let _ = cb.call(|| Ok::<_, &str>(())); // the trial closes it
    });
    let m = read(&snapshotter);
    let calls = |outcome: &str| {
        value(
            &m,
            &format!("breaker_calls_total{{breaker=metered,outcome={outcome}}}"),
        )
    };
    assert_eq!(calls("success"), Some("2"), "{m:#?}");
    assert_eq!(calls("failure"), Some("2"));
    assert_eq!(calls("rejected"), Some("2"));
    assert_eq!(calls("excluded"), Some("1"));
    assert_eq!(calls("cancelled"), Some("1"));
    let transitions = |from: &str, to: &str| {
        value(
            &m,
            &format!("breaker_transitions_total{{breaker=metered,from={from},to={to}}}"),
        )
    };
    assert_eq!(transitions("closed", "open"), Some("1"));
    assert_eq!(transitions("open", "half-open"), Some("1"));
    assert_eq!(transitions("half-open", "closed"), Some("1"));
    assert_eq!(transitions("half-open", "open"), Some("0"));
    let state = |s: &str| value(&m, &format!("breaker_state{{breaker=metered,state={s}}}"));
    assert_eq!(
        (state("closed"), state("open"), state("half-open")),
        (Some("1"), Some("0"), Some("0"))
    );
}

#[test]
fn observe_shows_the_state_at_once_and_follows_it() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cb = Arc::new(CircuitBreaker::new("observed-now"));
    cb.open();
    metrics::with_local_recorder(&recorder, || {
        breaker::metrics::observe(&cb);
        let m = read(&snapshotter);
        assert_eq!(
            value(&m, "breaker_state{breaker=observed-now,state=open}"),
            Some("1")
        );
        cb.close();
    });
    let m = read(&snapshotter);
    assert_eq!(
        value(&m, "breaker_state{breaker=observed-now,state=open}"),
        Some("0")
    );
    assert_eq!(
        value(&m, "breaker_state{breaker=observed-now,state=closed}"),
        Some("1")
    );
}

#[test]
fn one_listener_shared_by_two_breakers_records_each_under_its_name() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let shared: Arc<dyn breaker::Listener> = Arc::new(MetricsListener::new());
        let a = CircuitBreaker::builder("shared-a")
            .listener_arc(Arc::clone(&shared))
            .build();
        let b = CircuitBreaker::builder("shared-b")
            .listener_arc(shared)
            .build();
        let _ = a.call(|| Ok::<_, ()>(()));
        let _ = b.call(|| Ok::<_, ()>(()));
        let _ = b.call(|| Ok::<_, ()>(()));
    });
    let m = read(&snapshotter);
    assert_eq!(
        value(&m, "breaker_calls_total{breaker=shared-a,outcome=success}"),
        Some("1")
    );
    assert_eq!(
        value(&m, "breaker_calls_total{breaker=shared-b,outcome=success}"),
        Some("2")
    );
}

#[test]
fn a_breaker_without_the_listener_records_nothing() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let cb = CircuitBreaker::builder("unmetered").fail_max(1).build();
        let _ = cb.call(|| Err::<(), _>("down"));
        let _ = cb.call(|| Ok::<_, &str>(()));
    });
    assert!(read(&snapshotter).is_empty());
}

#[test]
fn a_keyed_groups_breakers_carry_their_key() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let hosts = breaker::keyed::KeyedBreakers::<String>::builder("metered-hosts", |b| {
            b.fail_max(1).listener(MetricsListener::new())
        })
        .build();
        let _ = hosts.get("host-a").call(|| Err::<(), _>("down")); // opens host-a
        let _ = hosts.get("host-b").call(|| Ok::<_, &str>(()));
        let _ = hosts.get("host-b").call(|| Ok::<_, &str>(()));
    });
    let m = read(&snapshotter);
    let key = |name: &str, key: &str, rest: &str| {
        value(
            &m,
            &format!("{name}{{breaker=metered-hosts,key={key},{rest}}}"),
        )
    };
    assert_eq!(
        key("breaker_calls_total", "host-a", "outcome=failure"),
        Some("1"),
        "{m:#?}"
    );
    assert_eq!(
        key("breaker_calls_total", "host-b", "outcome=success"),
        Some("2"),
        "{m:#?}"
    );
    assert_eq!(
        key("breaker_calls_total", "host-a", "outcome=success"),
        Some("0"),
        "{m:#?}"
    );
    // (labels sorted by name)
    assert_eq!(
        value(
            &m,
            "breaker_transitions_total{breaker=metered-hosts,from=closed,key=host-a,to=open}"
        ),
        Some("1"),
        "{m:#?}"
    );
    assert_eq!(
        key("breaker_state", "host-a", "state=open"),
        Some("1"),
        "{m:#?}"
    );
    assert_eq!(
        key("breaker_state", "host-b", "state=closed"),
        Some("1"),
        "{m:#?}"
    );
}

/// Every breaker's histogram samples, in seconds (a snapshot takes them:
/// take one).
fn durations(snapshotter: &Snapshotter) -> BTreeMap<String, Vec<f64>> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let breaker = key
                .labels()
                .find(|l| l.key() == "breaker")?
                .value()
                .to_owned();
            match value {
                DebugValue::Histogram(samples) if key.name() == "breaker_call_duration_seconds" => {
                    Some((
                        breaker,
                        samples.into_iter().map(|s| s.into_inner()).collect(),
                    ))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn call_durations_go_to_the_histogram_when_the_breaker_times_calls() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();
    let took = |cb: &CircuitBreaker, ms: u64| {
        let _ = cb.call(|| {
            clock.advance(Duration::from_millis(ms));
            Ok::<_, &str>(())
        });
    };
    metrics::with_local_recorder(&recorder, || {
        // Asked for: every completed call, failures too; not a rejection.
        let timed = CircuitBreaker::builder("timed")
            .fail_max(1)
            .clock(clock.clone())
            .listener(MetricsListener::with_durations())
            .build();
        took(&timed, 250);
        let _ = timed.call(|| {
            clock.advance(Duration::from_millis(1500));
            Err::<(), _>("down")
        });
        took(&timed, 10); // rejected: the circuit is open
                          // A slow-call duration times calls anyway: a plain listener records.
        let slow = CircuitBreaker::builder("timed-slow")
            .clock(clock.clone())
            .slow_call_duration(Duration::from_secs(1))
            .listener(MetricsListener::new())
            .build();
        took(&slow, 2000);
        // Neither: nothing is timed.
        let plain = CircuitBreaker::builder("untimed")
            .clock(clock.clone())
            .listener(MetricsListener::new())
            .build();
        took(&plain, 100);
    });
    let seen = durations(&snapshotter);
    assert_eq!(seen.get("timed"), Some(&vec![0.25, 1.5]));
    assert_eq!(seen.get("timed-slow"), Some(&vec![2.0]));
    assert_eq!(seen.get("untimed").map(Vec::len).unwrap_or(0), 0);
}
