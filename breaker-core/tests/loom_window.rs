//! Exhaustive concurrency models of the rate policies' sliding window
//! (`breaker-core/src/window/`), checked with loom.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p breaker-core --release --test loom_window
//! ```
//!
//! Under `--cfg loom` the window's atomics, fences and stripe pointers are
//! loom's, so these models run the real stripe protocol (the owner's
//! seqlock-style reset, the readers' double check of the era), the count
//! window's log (the head's compare-and-swap, the entries) and the time
//! window's shared buckets, through every interleaving up to the
//! preemption bound. loom runs all its threads on one OS thread, so each
//! model names the lane a thread records on (`record_on`,
//! `record_success_on`) instead of taking one from the thread-local
//! registry (tested on real threads in `window/lane.rs`).
//!
//! Each model states the invariant it checks in its doc comment.
#![cfg(loom)]

use std::time::Duration;

use breaker_core::window::{Kind, Outcome, Totals, Window};
use loom::sync::Arc;
use loom::thread;

const NOW: Duration = Duration::from_secs(1_000_000_000);
const FAIL: Outcome = Outcome {
    failed: true,
    slow: false,
};

fn model<F: Fn() + Sync + Send + 'static>(preemptions: usize, f: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = builder.preemption_bound.or(Some(preemptions));
    builder.check(f);
}

fn count(n: u32) -> Arc<Window> {
    Arc::new(Window::new(Kind::Calls(n)).unwrap())
}

fn time() -> Arc<Window> {
    Arc::new(Window::new(Kind::Time(Duration::from_secs(60))).unwrap())
}

/// Every completed call is counted once: two threads' successes and
/// failures, each on its own lane, are all in the window at quiescence,
/// and each failure's totals include itself and never exceed what was
/// recorded.
#[test]
fn concurrent_records_are_each_counted_once() {
    for make in [|| count(10), time] {
        model(3, move || {
            let w = make();
            let handles: Vec<_> = (0..2)
                .map(|lane| {
                    let w = Arc::clone(&w);
                    thread::spawn(move || {
                        w.record_success_on(lane, 0, NOW);
                        let t = w.record_on(lane, FAIL, 0, NOW).unwrap();
                        assert!(t.failures >= 1, "{t:?}");
                        assert!(t.failures <= 2 && t.calls <= 4, "{t:?}");
                        assert!(t.calls >= 2, "its own success and failure: {t:?}");
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(
                w.stats(NOW),
                Totals {
                    calls: 4,
                    failures: 2,
                    slow: 0
                }
            );
        });
    }
}

/// A fold never counts a generation's calls in another: while one lane's
/// owner moves from generation 0 to 1 (resetting its stripe) a reader's
/// fold of generation 1 counts at most what it recorded, and at
/// quiescence generation 1 holds exactly its own calls (the count window:
/// the stripe protocol is the same for both shapes; the time window's
/// wider stripe makes the same model too large to explore).
#[test]
fn a_stripe_reset_never_leaks_counts_across_generations() {
    model(2, || {
        let w = count(10);
        let owner = {
            let w = Arc::clone(&w);
            thread::spawn(move || {
                w.record_success_on(0, 0, NOW);
                w.record_success_on(0, 0, NOW);
                w.record_success_on(0, 1, NOW);
            })
        };
        let reader = {
            let w = Arc::clone(&w);
            thread::spawn(move || {
                let one = w.stats_for(1, NOW);
                assert!(one.calls <= 1, "{one:?}");
            })
        };
        owner.join().unwrap();
        reader.join().unwrap();
        assert_eq!(w.stats_for(1, NOW).calls, 1);
        assert_eq!(w.stats_for(0, NOW).calls, 0, "the stripe moved on");
    });
}

/// Clearing races recording: a late result of generation 0 (admitted
/// before the breaker entered closed again) is never counted in
/// generation 1's window, and generation 1's own calls all are.
#[test]
fn a_clear_racing_late_results_counts_only_the_new_generation() {
    for make in [|| count(10), time] {
        model(3, move || {
            let w = make();
            let late = {
                let w = Arc::clone(&w);
                thread::spawn(move || {
                    w.record_success_on(0, 0, NOW);
                    // Stale once the clear is in: not recorded.
                    let _ = w.record_on(0, FAIL, 0, NOW);
                })
            };
            let fresh = {
                let w = Arc::clone(&w);
                thread::spawn(move || {
                    w.clear(1);
                    w.record_success_on(1, 1, NOW);
                    let t = w.record_on(1, FAIL, 1, NOW).unwrap();
                    assert_eq!((t.calls, t.failures), (2, 1), "{t:?}");
                })
            };
            late.join().unwrap();
            fresh.join().unwrap();
            assert_eq!(w.generation(), 1);
            assert_eq!(
                w.stats(NOW),
                Totals {
                    calls: 2,
                    failures: 1,
                    slow: 0
                }
            );
        });
    }
}

/// A decision sees every outcome that completed before it began: a
/// failure recorded after joining a thread that recorded a failure and a
/// success counts both, whatever happened to the log and the stripes.
#[test]
fn a_fold_after_a_join_sees_everything_recorded_before() {
    for make in [|| count(10), time] {
        model(3, move || {
            let w = make();
            let first = {
                let w = Arc::clone(&w);
                thread::spawn(move || {
                    w.record_on(1, FAIL, 0, NOW).unwrap();
                    w.record_success_on(1, 0, NOW);
                })
            };
            let other = {
                let w = Arc::clone(&w);
                thread::spawn(move || {
                    w.record_success_on(2, 0, NOW);
                })
            };
            first.join().unwrap();
            let t = w.record_on(0, FAIL, 0, NOW).unwrap();
            assert!(t.failures == 2 && (3..=4).contains(&t.calls), "{t:?}");
            other.join().unwrap();
        });
    }
}

/// Two lanes of one chunk (lanes 1 and 2) installing it at once: one
/// chunk wins, the other is freed, and both lanes' calls are counted.
#[test]
fn lanes_racing_to_install_their_chunk_share_it() {
    model(3, || {
        let w = count(10);
        let handles: Vec<_> = [1usize, 2]
            .into_iter()
            .map(|lane| {
                let w = Arc::clone(&w);
                thread::spawn(move || w.record_success_on(lane, 0, NOW))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(w.stats(NOW).calls, 2);
    });
}
