//! A listener that records every event as a line of text.

use std::sync::{Arc, Mutex};

use breaker::{CircuitBreaker, Failure, Listener, State};

/// The lines a [`Recorder`] wrote, shared with the test that reads them.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Records every event as a line, prefixed with its tag if it has one.
pub struct Recorder {
    tag: &'static str,
    log: Log,
}

impl Recorder {
    pub fn new(log: &Log) -> Self {
        Self::tagged("", log)
    }

    pub fn tagged(tag: &'static str, log: &Log) -> Self {
        Recorder {
            tag,
            log: Arc::clone(log),
        }
    }

    fn push(&self, event: String) {
        let line = if self.tag.is_empty() {
            event
        } else {
            format!("{}:{event}", self.tag)
        };
        self.log.lock().unwrap().push(line);
    }
}

impl Listener for Recorder {
    fn before_call(&self, _: &CircuitBreaker) {
        self.push("before_call".into());
    }
    fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
        self.push(format!("state_change {old}->{new}"));
    }
    fn failure(&self, _: &CircuitBreaker, error: &Failure<'_>) {
        self.push(format!("failure {error:?}"));
    }
    fn success(&self, _: &CircuitBreaker) {
        self.push("success".into());
    }
}

/// An empty log.
pub fn new_log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// The events recorded since the last call, emptying the log.
pub fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}
