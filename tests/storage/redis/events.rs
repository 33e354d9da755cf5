//! With the `tracing` feature, the Redis storage tells its connection
//! events: the connection lost and the fallback taken (WARN), the storage
//! back (INFO). They come from the storage's own threads, so the capture is
//! the process's global subscriber (each test here filters by namespace).
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use breaker::{CircuitBreaker, State};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use super::{bound, eventually, storage};
use crate::support::Server;

type Events = Arc<Mutex<Vec<(Level, BTreeMap<String, String>)>>>;

struct Capture(Events);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "breaker" {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields));
    }
}

/// Every `breaker` event of the process, from the first call on.
fn events() -> &'static Events {
    static EVENTS: OnceLock<Events> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let events = Events::default();
        let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&events)));
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        events
    })
}

/// The messages (with their levels) of events in `namespace`.
fn heard(namespace: &str) -> Vec<(Level, String, BTreeMap<String, String>)> {
    events()
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, f)| f.get("namespace").map(String::as_str) == Some(namespace))
        .map(|(l, f)| (*l, f["message"].clone(), f.clone()))
        .collect()
}

#[test]
fn a_lost_connection_the_fallback_and_the_reconnection_are_told() {
    let Some(mut server) = Server::dedicated() else {
        return;
    };
    let _ = events();
    let s = storage(&server.url(), "events")
        .fallback_state(State::Open)
        .resync_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let (cb, st) = bound(CircuitBreaker::builder("events"), &s);
    let namespace = st.namespace().to_owned();
    assert!(eventually(Duration::from_secs(3), || st.is_shared()));
    assert!(heard(&namespace).is_empty(), "{:?}", heard(&namespace));

    server.stop();
    let _ = cb.call(|| Ok::<_, ()>(()));
    assert!(eventually(Duration::from_secs(3), || heard(&namespace)
        .len()
        >= 2));
    let down = heard(&namespace);
    assert_eq!(down[0].0, Level::WARN);
    assert!(down[0].1.contains("lost its connection"), "{down:?}");
    assert_eq!(down[1].0, Level::WARN);
    assert!(down[1].1.contains("fell back"), "{down:?}");
    assert_eq!(down[1].2["fallback_state"], "open");
    assert_eq!(down[1].2["breakers"], "1");

    server.restart();
    assert!(eventually(Duration::from_secs(3), || st.is_shared()));
    assert!(eventually(Duration::from_secs(1), || heard(&namespace)
        .len()
        >= 3));
    let up = &heard(&namespace)[2];
    assert_eq!(up.0, Level::INFO);
    assert!(up.1.contains("reconnected"), "{up:?}");
}
