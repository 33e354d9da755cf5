//! Exhaustive concurrency model of the failure-rate policy's trip, checked
//! with loom: the window (`src/window/`), the pure decision
//! (`storage::trips`) and the memory storage's `Op::Trip`, as the breaker
//! chains them for a closed-state failure (`src/rate.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p breaker-core --release --test loom_rate
//! ```
//!
//! loom runs its threads on one OS thread, so each thread names the lane
//! it records on (`Window::record_on`), as in `tests/loom_window.rs`.
#![cfg(loom)]

use std::time::Duration;

use breaker_core::storage::{
    trips, Applied, Limits, Op, Outcome, RatePolicy, Storage, WindowShape,
};
use breaker_core::window::{Kind, Outcome as Call, Window};
use breaker_core::{MemoryStorage, Reason, State};
use loom::sync::Arc;
use loom::thread;

const NOW: Duration = Duration::from_secs(1_000_000_000);

fn model<F: Fn() + Sync + Send + 'static>(preemptions: usize, f: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = builder.preemption_bound.or(Some(preemptions));
    builder.check(f);
}

/// A rate every failure's own totals reach (a failure is at least half of
/// the 2 calls a window here can hold): each racing failure decides to trip.
const EVERY_FAILURE_TRIPS: RatePolicy = RatePolicy {
    failure_rate: Some(0.5),
    slow_call_rate: None,
    window: WindowShape::Calls(10),
    min_calls: 1,
    consecutive: false,
};

/// A closed-state failure of generation 0, as the breaker records it: in
/// the window on `lane`, then `Op::Trip` if the rate holds, else
/// `Op::Failure`.
fn fail(window: &Window, storage: &MemoryStorage, lane: usize) -> (Option<Reason>, Applied) {
    let failed = Call {
        failed: true,
        slow: false,
    };
    let totals = window
        .record_on(lane, failed, 0, NOW)
        .expect("generation 0 is the window's");
    let reason = trips(&totals, &EVERY_FAILURE_TRIPS);
    let op = match reason {
        Some(reason) => Op::Trip {
            generation: 0,
            reason,
        },
        None => Op::Failure {
            generation: 0,
            trial: false,
        },
    };
    let policy = breaker_core::storage::Policy {
        rate: EVERY_FAILURE_TRIPS,
        ..breaker_core::storage::Policy::DEFAULT
    };
    let limits = Limits {
        now: NOW,
        policy: &policy,
        ..Limits::DEFAULT
    };
    (reason, storage.apply(op, &limits))
}

/// Two failures of the same generation race, each deciding that the rate
/// holds: the circuit opens exactly once (one `Op::Trip` is counted as the
/// trip, the other is stale), into generation 1, and the window counts both
/// failures once each.
#[test]
fn two_failures_deciding_the_same_generation_trip_it_once() {
    model(3, || {
        let window = Arc::new(Window::new(Kind::Calls(10)).unwrap());
        let storage = Arc::new(MemoryStorage::new());
        let handles: Vec<_> = (0..2)
            .map(|lane| {
                let (window, storage) = (Arc::clone(&window), Arc::clone(&storage));
                thread::spawn(move || fail(&window, &storage, lane))
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (reason, _) in &results {
            assert_eq!(*reason, Some(Reason::FailureRate));
        }
        let trips: Vec<_> = results
            .iter()
            .filter(|(_, a)| {
                a.outcome
                    == Outcome::Counted {
                        tripped: Some(Reason::FailureRate),
                    }
            })
            .collect();
        assert_eq!(trips.len(), 1, "one trip: {results:?}");
        let other = results.iter().find(|(_, a)| a.outcome == Outcome::Stale);
        assert!(other.is_some(), "the other is stale: {results:?}");
        let (_, tripped) = trips[0];
        assert_eq!(tripped.before.generation, 0);
        assert_eq!(
            (tripped.after.state, tripped.after.generation),
            (State::Open, 1)
        );
        let now = storage.load();
        assert_eq!((now.state, now.generation), (State::Open, 1));
        let totals = window.stats_for(0, NOW);
        assert_eq!((totals.calls, totals.failures), (2, 2));
    });
}
