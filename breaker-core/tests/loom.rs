//! Exhaustive concurrency models of the lock-free core, checked with loom.
//!
//! Run them with `scripts/loom`, or:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p breaker-core --release --test loom
//! ```
//!
//! Under `--cfg loom` the atomics of `MemoryStorage` (and of the breaker's
//! settings) are loom's (see `src/sync.rs`), so every model below runs the
//! real `MemoryStorage::apply` / `load` / `publish_opened` code and the real
//! transition function `state::step`, and loom explores every interleaving
//! of their atomic operations (up to the preemption bound of `model`) and
//! every value the memory model lets a load return.
//!
//! loom switches threads only after an atomic operation, so what a model's
//! main thread does between spawning and joining always runs before the
//! spawned threads start: every operation that races runs in a spawned
//! thread, and the main thread only sets up, joins and checks the end state.
//!
//! Each model states, in its doc comment, the invariant it checks. Most work
//! at the storage level (`Storage::apply` and the `Applied` it returns): the
//! breaker's listener lists and exclusions live in `arc_swap`, which loom
//! does not model. The two breaker-level models use a `ManualClock` and only
//! paths whose shared state is in loom's atomics.
#![cfg(loom)]

use std::collections::HashSet;
use std::sync::Arc as StdArc;
use std::time::Duration;

use breaker_core::clock::ManualClock;
use breaker_core::storage::{Applied, Backoff, Limits, Op, Outcome, Policy, Snapshot, Storage};
use breaker_core::{CircuitBreaker, Listener, MemoryStorage, Reason, State};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

const RESET_TIMEOUT: Duration = Duration::from_millis(100);

fn limits(fail_max: u32, success_threshold: u32, now_ms: u64) -> Limits<'static> {
    Limits {
        fail_max,
        success_threshold,
        reset_timeout: RESET_TIMEOUT,
        now: Duration::from_millis(now_ms),
        ..Limits::DEFAULT
    }
}

/// Explores every interleaving with at most `preemptions` preemptions per
/// execution (enough for every race below: each needs at most two threads
/// to be cut short once or twice).
fn model<F: Fn() + Sync + Send + 'static>(preemptions: usize, f: F) {
    let mut builder = loom::model::Builder::new();
    // `LOOM_MAX_PREEMPTIONS` (read by `Builder::new`) overrides the bound.
    builder.preemption_bound = builder.preemption_bound.or(Some(preemptions));
    builder.check(f);
}

/// Loads `reads` snapshots in a thread of its own, returning them.
fn spawn_read(storage: &Arc<MemoryStorage>, reads: usize) -> thread::JoinHandle<Vec<Snapshot>> {
    let storage = Arc::clone(storage);
    thread::spawn(move || (0..reads).map(|_| storage.load()).collect())
}

fn spawn_apply(
    storage: &Arc<MemoryStorage>,
    ops: Vec<(Op, Limits<'static>)>,
) -> thread::JoinHandle<Vec<Applied>> {
    let storage = Arc::clone(storage);
    thread::spawn(move || {
        ops.into_iter()
            .map(|(op, limits)| storage.apply(op, &limits))
            .collect()
    })
}

/// A storage opened by hand at `opened_ms` (generation 1, its time
/// published), then with its trial admitted at `opened_ms + 100`
/// (half-open, generation 2) when `trial` is true.
fn opened(opened_ms: u64, trial: bool) -> Arc<MemoryStorage> {
    let storage = Arc::new(MemoryStorage::new());
    storage.apply(Op::Force(State::Open), &limits(3, 1, opened_ms));
    if trial {
        let admitted = storage.apply(Op::Admit, &limits(3, 1, opened_ms + 100));
        assert_eq!(
            admitted.outcome,
            Outcome::Admitted {
                generation: 2,
                trial: true
            }
        );
    }
    storage
}

/// What the state word holds: everything but `opened_at`, which is published
/// apart (an operation may find it not yet published: `None`).
fn word(s: &Snapshot) -> (State, u64, u32, u32, bool, u16, u16) {
    (
        s.state,
        s.generation,
        s.fail_counter,
        s.success_counter,
        s.trial,
        s.trials,
        s.reopens,
    )
}

/// Every `Applied` that changed the state word must form one chain from
/// `start`: each one's `before` is exactly the previous one's `after` (so no
/// update was lost or applied twice, and each generation was made by exactly
/// one operation). Returns the last snapshot of the chain.
fn assert_one_chain(start: Snapshot, applied: &[Applied]) -> Snapshot {
    let mut changes: Vec<&Applied> = applied
        .iter()
        .filter(|a| word(&a.after) != word(&a.before))
        .collect();
    let mut current = start;
    while !changes.is_empty() {
        let next = changes
            .iter()
            .position(|a| word(&a.before) == word(&current))
            .unwrap_or_else(|| panic!("no change continues from {current:?}: {changes:?}"));
        let a = changes.remove(next);
        if a.after.generation != a.before.generation {
            assert_eq!(
                a.after.generation,
                a.before.generation + 1,
                "generations grow by one: {a:?}"
            );
        }
        current = a.after;
    }
    current
}

/// **Concurrent failures reaching `fail_max`.** Three callers admitted in
/// closed under generation 0 fail at once with `fail_max = 2`.
///
/// Invariant: exactly one failure opens the circuit (one `Applied` goes from
/// closed to open, and only it says `tripped: FailureThreshold`), the
/// counter never goes past `fail_max` (in any `Applied` nor in a concurrent
/// `load`), the failure that comes after the trip is stale (it belongs to the
/// closed generation), and the updates form one chain with none lost.
#[test]
fn concurrent_failures_open_the_circuit_once() {
    model(3, || {
        let storage = Arc::new(MemoryStorage::new());
        let failure = Op::Failure {
            generation: 0,
            trial: false,
        };
        let handles: Vec<_> = (0..3)
            .map(|i| spawn_apply(&storage, vec![(failure, limits(2, 1, 1_000 + i))]))
            .collect();
        let applied: Vec<Applied> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let trips: Vec<&Applied> = applied
            .iter()
            .filter(|a| a.before.state == State::Closed && a.after.state == State::Open)
            .collect();
        assert_eq!(trips.len(), 1, "{applied:?}");
        assert_eq!(
            trips[0].outcome,
            Outcome::Counted {
                tripped: Some(Reason::FailureThreshold)
            }
        );
        let counted: Vec<_> = applied
            .iter()
            .map(|a| a.outcome)
            .filter(|o| matches!(o, Outcome::Counted { .. }))
            .collect();
        assert_eq!(counted.len(), 2, "{applied:?}");
        assert_eq!(
            applied
                .iter()
                .filter(|a| a.outcome == Outcome::Stale)
                .count(),
            1
        );
        for a in &applied {
            assert!(a.after.fail_counter <= 2, "{a:?}");
        }

        let last = assert_one_chain(Snapshot::INITIAL, &applied);
        let end = storage.load();
        assert_eq!(word(&end), word(&last));
        assert_eq!(
            (end.state, end.generation, end.fail_counter),
            (State::Open, 1, 2)
        );
        // The tripping failure published its (rounded) time before returning.
        assert_eq!(end.opened_at, trips[0].after.opened_at);
        assert!(end.opened_at.is_some());
    });
}

/// **A reader racing failures that reach `fail_max`.** Two callers fail at
/// once with `fail_max = 2` while a third thread reads the state twice.
///
/// Invariant: every snapshot read is one the breaker went through: closed
/// with a counter below `fail_max` in generation 0, or open with the counter
/// at `fail_max` in generation 1; never a counter past `fail_max`, never
/// closed at `fail_max`, never open in the old generation.
#[test]
fn a_reader_sees_only_consistent_counters() {
    model(3, || {
        let storage = Arc::new(MemoryStorage::new());
        let failure = Op::Failure {
            generation: 0,
            trial: false,
        };
        let handles: Vec<_> = (0..2)
            .map(|_| spawn_apply(&storage, vec![(failure, limits(2, 1, 1_000))]))
            .collect();
        let reader = spawn_read(&storage, 2);
        for h in handles {
            h.join().unwrap();
        }
        for seen in reader.join().unwrap() {
            match seen.state {
                State::Closed => assert!(seen.generation == 0 && seen.fail_counter < 2),
                State::Open => assert!(seen.generation == 1 && seen.fail_counter == 2),
                State::HalfOpen => panic!("{seen:?}"),
            }
        }
        assert_eq!(storage.load().state, State::Open);
    });
}

/// **The open → half-open race after the reset timeout.** The circuit opened
/// at 1,000 ms; at 1,100 ms (the timeout has just elapsed) three callers ask
/// to run at once.
///
/// Invariant: exactly one is admitted, as the trial, under the new
/// generation; the others are rejected because a trial is in progress;
/// exactly one `Applied` reports the open → half-open transition; the
/// breaker ends half-open with its trial place taken.
#[test]
fn exactly_one_trial_is_admitted_after_the_timeout() {
    model(3, || {
        let storage = opened(1_000, false);
        let start = storage.load();
        let handles: Vec<_> = (0..3)
            .map(|_| spawn_apply(&storage, vec![(Op::Admit, limits(3, 1, 1_100))]))
            .collect();
        let applied: Vec<Applied> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let admitted: Vec<_> = applied
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Admitted { .. }))
            .collect();
        assert_eq!(admitted.len(), 1, "{applied:?}");
        assert_eq!(
            admitted[0].outcome,
            Outcome::Admitted {
                generation: 2,
                trial: true
            }
        );
        for a in &applied {
            if !matches!(a.outcome, Outcome::Admitted { .. }) {
                assert_eq!(
                    a.outcome,
                    Outcome::Rejected {
                        reason: Reason::TrialInProgress
                    }
                );
            }
        }
        let transitions = applied
            .iter()
            .filter(|a| a.before.state != a.after.state)
            .count();
        assert_eq!(transitions, 1);
        let last = assert_one_chain(start, &applied);
        assert_eq!(word(&storage.load()), word(&last));
        assert_eq!((last.state, last.trial), (State::HalfOpen, true));
        // Half-open keeps the time the circuit opened.
        assert_eq!(last.opened_at, Some(Duration::from_millis(1_000)));
    });
}

/// **Several trial places.** Half-open with one trial running and
/// `half_open_calls = 2`: two callers ask at once, then the two trials
/// finish at once.
///
/// Invariant: exactly one is admitted (one place was free); the word then
/// counts two trials (the wide half-open layout); both results are
/// counted and both places freed.
#[test]
fn two_trial_places_are_taken_once_each() {
    static TWO: Policy = Policy {
        half_open_calls: 2,
        backoff: Backoff::constant(),
        rate: breaker_core::storage::RatePolicy::DEFAULT,
    };
    let two = |now_ms| Limits {
        policy: &TWO,
        ..limits(3, 5, now_ms)
    };
    model(3, move || {
        let storage = opened(1_000, true); // half-open, one trial running
        let start = storage.load();
        let handles: Vec<_> = (0..2)
            .map(|_| spawn_apply(&storage, vec![(Op::Admit, two(1_200))]))
            .collect();
        let applied: Vec<Applied> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let admitted = applied
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Admitted { trial: true, .. }))
            .count();
        assert_eq!(admitted, 1, "one place was free: {applied:?}");
        let last = assert_one_chain(start, &applied);
        assert_eq!(word(&storage.load()), word(&last));
        // Two trials at once: the wide half-open word, no failure count.
        assert_eq!(
            (last.state, last.trials, last.fail_counter),
            (State::HalfOpen, 2, 0)
        );
        // Both finish: every place is free again, no update lost.
        let success = Op::Success {
            generation: 2,
            trial: true,
        };
        let finisher = spawn_apply(&storage, vec![(success, two(1_300))]);
        storage.apply(success, &two(1_300));
        finisher.join().unwrap();
        let end = storage.load();
        assert_eq!(
            (end.running_trials(), end.success_counter),
            (0, 2),
            "{end:?}"
        );
    });
}

/// The same race through a whole breaker: two threads call through a
/// breaker whose reset timeout has passed (manual clock), each counting the
/// calls running at once in a loom atomic.
///
/// Invariant: the guarded function of a half-open trial never runs
/// alongside another (at most one running at any moment, in every
/// interleaving), and the trial's success closes the circuit.
#[test]
fn a_breaker_runs_one_trial_at_a_time() {
    model(2, || {
        let clock = ManualClock::new();
        let cb = StdArc::new(
            CircuitBreaker::builder("loom-trial")
                .fail_max(1)
                .reset_timeout(RESET_TIMEOUT)
                .clock(clock.clone())
                .build(),
        );
        cb.open();
        clock.advance(RESET_TIMEOUT);
        let running = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (cb, running, ran) = (cb.clone(), running.clone(), ran.clone());
                thread::spawn(move || {
                    let _ = cb.call(|| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        assert_eq!(now, 1, "two calls ran at once in half-open");
                        ran.fetch_add(1, Ordering::SeqCst);
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, ()>(())
                    });
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // The first call ran as the trial; the second either was rejected
        // (trial in progress) or ran after it closed the circuit.
        assert!(ran.load(Ordering::SeqCst) >= 1);
        assert_eq!(cb.current_state(), State::Closed);
    });
}

/// **A trial finishing while a manual transition races it.** A half-open
/// trial (generation 2) reports success or failure while another thread
/// calls `open()`, `close()`, `half_open()` or `reset()`.
///
/// Invariant, in every interleaving and for every pair: the manual
/// transition wins (the breaker ends in its state, with the counters that
/// state requires and no trial running); the trial's result either counted
/// before it (and the manual transition then starts from what the result
/// left) or is stale because the manual transition came first, never both
/// and never lost half-way; the updates form one chain.
#[test]
fn a_trial_result_racing_a_manual_transition() {
    let manuals = [
        (Op::Force(State::Open), State::Open),
        (Op::Force(State::Closed), State::Closed),
        (Op::Force(State::HalfOpen), State::HalfOpen),
        (Op::Reset, State::Closed),
    ];
    for (manual, target) in manuals {
        for success in [true, false] {
            model(3, move || {
                let storage = opened(1_000, true);
                let start = storage.load();
                let result = if success {
                    Op::Success {
                        generation: 2,
                        trial: true,
                    }
                } else {
                    Op::Failure {
                        generation: 2,
                        trial: true,
                    }
                };
                let a = spawn_apply(&storage, vec![(result, limits(3, 1, 1_200))]);
                let b = spawn_apply(&storage, vec![(manual, limits(3, 1, 1_300))]);
                let result = a.join().unwrap()[0];
                let manual_applied = b.join().unwrap()[0];
                let end = storage.load();
                let last = assert_one_chain(start, &[result, manual_applied]);
                assert_eq!(word(&end), word(&last));

                assert_eq!(end.state, target);
                assert!(!end.trial, "{end:?}");
                assert_eq!(end.success_counter, 0);
                if target == State::Closed {
                    assert_eq!((end.fail_counter, end.opened_at), (0, None));
                }
                if result.outcome == Outcome::Stale {
                    // The manual transition came first.
                    assert_eq!(word(&manual_applied.before), word(&start));
                    assert_eq!(end.generation, 3);
                } else {
                    // The result counted first, and the manual transition
                    // started from what it left.
                    assert_eq!(word(&result.before), word(&start));
                    assert_eq!(word(&manual_applied.before), word(&result.after));
                    assert_eq!(end.generation, 4);
                    let expected = if success {
                        Outcome::Counted { tripped: None }
                    } else {
                        Outcome::Counted {
                            tripped: Some(Reason::TrialFailed),
                        }
                    };
                    assert_eq!(result.outcome, expected);
                }
                match target {
                    State::Open => {
                        assert_eq!(end.opened_at, Some(Duration::from_millis(1_300)))
                    }
                    State::HalfOpen => {
                        // Entered by hand: from open it keeps the time that
                        // open had; from closed it has none.
                        // (Or, entered from an opening whose time was not
                        // published yet, that time once its opener has
                        // published it: the opener may still do so.)
                        let from = manual_applied.before;
                        match from.state {
                            State::Closed => assert_eq!(end.opened_at, None),
                            _ => assert!(
                                end.opened_at == from.opened_at
                                    || (from.opened_at.is_none()
                                        && end.opened_at == result.after.opened_at),
                                "{from:?} {end:?}"
                            ),
                        }
                    }
                    State::Closed => {}
                }
            });
        }
    }
}

/// **A cancelled trial frees its place.** The trial of generation 2 is
/// cancelled (its `call_async` future was dropped) while another caller asks
/// to run; after both, a third caller asks.
///
/// Invariant: the place is freed exactly once and given to exactly one
/// caller: either the racing caller came after the cancel and is the new
/// trial (and the third is rejected, trial in progress), or it came before
/// and was rejected (and the third is the new trial). Never both, never
/// neither.
#[test]
fn a_cancelled_trial_frees_its_place_once() {
    model(3, || {
        let storage = opened(1_000, true);
        let cancel = spawn_apply(
            &storage,
            vec![(Op::Cancel { generation: 2 }, limits(3, 1, 1_200))],
        );
        let racer = spawn_apply(&storage, vec![(Op::Admit, limits(3, 1, 1_200))]);
        let cancelled = cancel.join().unwrap()[0];
        let raced = racer.join().unwrap()[0];
        assert_eq!(cancelled.outcome, Outcome::Done);
        let third = storage.apply(Op::Admit, &limits(3, 1, 1_300));
        let trial = Outcome::Admitted {
            generation: 2,
            trial: true,
        };
        let busy = Outcome::Rejected {
            reason: Reason::TrialInProgress,
        };
        match raced.outcome {
            o if o == trial => assert_eq!(third.outcome, busy),
            o if o == busy => assert_eq!(third.outcome, trial),
            other => panic!("unexpected {other:?}"),
        }
        let end = storage.load();
        assert_eq!(
            (end.state, end.generation, end.trial),
            (State::HalfOpen, 2, true)
        );
    });
}

/// **A late cancel never frees a newer trial's place.** The trial of
/// generation 2 is cancelled while another thread re-enters half-open by
/// hand (generation 3) and takes the new trial place.
///
/// Invariant: the old trial's cancel applies only to its own generation:
/// after both threads, the new trial still holds the place (a further caller
/// is rejected, trial in progress), however the cancel interleaved.
#[test]
fn a_late_cancel_never_frees_a_newer_trial() {
    model(3, || {
        let storage = opened(1_000, true);
        let cancel = spawn_apply(
            &storage,
            vec![(Op::Cancel { generation: 2 }, limits(3, 1, 1_200))],
        );
        let newer = spawn_apply(
            &storage,
            vec![
                (Op::Force(State::HalfOpen), limits(3, 1, 1_200)),
                (Op::Admit, limits(3, 1, 1_200)),
            ],
        );
        let cancelled = cancel.join().unwrap()[0];
        let newer = newer.join().unwrap();
        assert_eq!(
            newer[1].outcome,
            Outcome::Admitted {
                generation: 3,
                trial: true
            }
        );
        // Stale if it came after the manual transition, else applied to its
        // own trial.
        assert!(matches!(cancelled.outcome, Outcome::Done | Outcome::Stale));
        let again = storage.apply(Op::Admit, &limits(3, 1, 1_300));
        assert_eq!(
            again.outcome,
            Outcome::Rejected {
                reason: Reason::TrialInProgress
            }
        );
    });
}

/// **A trial's holder reports once.** With `success_threshold = 2`, the
/// trial of generation 2 succeeds while another caller asks to run; the
/// half-open circuit stays in generation 2, so a new trial runs under the
/// same generation as the finished one.
///
/// Invariant: at most one trial runs at a time: once the first trial has
/// reported its success (its one and only report: `call_async` no longer
/// sends a cancel after a result, see `call.rs`), a new trial may start, and
/// the place it holds stays taken until it reports.
#[test]
fn a_finished_trial_does_not_free_the_next_one() {
    model(3, || {
        let storage = opened(1_000, true);
        let success = Op::Success {
            generation: 2,
            trial: true,
        };
        let first = spawn_apply(&storage, vec![(success, limits(3, 2, 1_200))]);
        let next = spawn_apply(&storage, vec![(Op::Admit, limits(3, 2, 1_200))]);
        let first = first.join().unwrap()[0];
        let next = next.join().unwrap()[0];
        assert_eq!(first.outcome, Outcome::Counted { tripped: None });
        let end = storage.load();
        assert_eq!((end.state, end.success_counter), (State::HalfOpen, 1));
        let trial = Outcome::Admitted {
            generation: 2,
            trial: true,
        };
        // Whoever took the place after the success holds it.
        let holder = if next.outcome == trial {
            next
        } else {
            storage.apply(Op::Admit, &limits(3, 2, 1_300))
        };
        assert_eq!(holder.outcome, trial);
        assert!(storage.load().trial);
        let busy = storage.apply(Op::Admit, &limits(3, 2, 1_300));
        assert_eq!(
            busy.outcome,
            Outcome::Rejected {
                reason: Reason::TrialInProgress
            }
        );
    });
}

/// **Publishing `opened_at`: a reader never sees a wrong time.** The
/// circuit opened at 1,000 ms (generation 1); one thread opens it again at
/// 2,000 ms while another reads and a third asks to run at 1,150 ms (after
/// the first opening's timeout, before the second's).
///
/// Invariant: every snapshot shows the opening time of its own generation,
/// or nothing: before that generation's opener has published it, or when
/// the time was replaced between reading the state word and reading the
/// time (read as "just opened": the reset timeout counts in full). Never
/// another generation's time. The caller is admitted as a trial only if it
/// came before the second opening, never on the first opening's time after
/// it.
#[test]
fn a_reader_never_sees_another_generations_opened_at() {
    model(3, || {
        let storage = opened(1_000, false);
        let opener = spawn_apply(
            &storage,
            vec![(Op::Force(State::Open), limits(3, 1, 2_000))],
        );
        let reader = spawn_read(&storage, 2);
        // A caller after the timeout of the first opening, racing the
        // second: admitted only if it came first, never on the old time.
        let caller = spawn_apply(&storage, vec![(Op::Admit, limits(3, 1, 1_150))]);
        let opened = opener.join().unwrap()[0];
        let admit = caller.join().unwrap()[0];
        let time_of = |generation: u64| match generation {
            g if g == opened.after.generation => Some(Duration::from_millis(2_000)),
            // The first opening, and the half-open the caller entered from it.
            _ => Some(Duration::from_millis(1_000)),
        };
        for seen in reader.join().unwrap() {
            assert!(
                seen.opened_at.is_none() || seen.opened_at == time_of(seen.generation),
                "{seen:?}"
            );
        }
        if let Outcome::Admitted { .. } = admit.outcome {
            assert_eq!(admit.before.generation, 1, "{admit:?}");
        }
        let end = storage.load();
        assert_eq!(end.opened_at, time_of(end.generation), "{end:?}");
    });
}

/// **Publishing `opened_at`: a delayed publisher never overwrites a newer
/// time.** Two threads open the circuit at once, at 2,000 ms and 3,000 ms
/// (each is a transition of its own: generations 2 and 3, in either order).
///
/// Invariant: once both have returned, the published time is that of the
/// opening that made the current generation, whichever publisher ran last;
/// a reader meanwhile sees, for each generation, its own time or nothing.
#[test]
fn a_delayed_publisher_never_overwrites_a_newer_opened_at() {
    model(3, || {
        let storage = opened(1_000, false);
        let a = spawn_apply(
            &storage,
            vec![(Op::Force(State::Open), limits(3, 1, 2_000))],
        );
        let b = spawn_apply(
            &storage,
            vec![(Op::Force(State::Open), limits(3, 1, 3_000))],
        );
        let reader = spawn_read(&storage, 1);
        let a = a.join().unwrap()[0];
        let b = b.join().unwrap()[0];
        let seen = reader.join().unwrap()[0];
        let time_of = |generation: u64| {
            [a, b]
                .into_iter()
                .find(|x| x.after.generation == generation)
                .map(|x| x.after.opened_at.unwrap())
                .unwrap_or(Duration::from_millis(1_000))
        };
        if let Some(at) = seen.opened_at {
            assert_eq!(at, time_of(seen.generation), "{seen:?}");
        }
        let end = storage.load();
        assert_eq!(end.generation, 3);
        assert_eq!(end.opened_at, Some(time_of(3)), "{a:?} {b:?}");
    });
}

/// **Publishing `opened_at` around half-open.** The circuit opened at
/// 1,000 ms (generation 1). One thread takes the trial (half-open,
/// generation 2, which keeps the opening time), the trial fails at 1,200 ms
/// (open again, generation 3), then closes and re-enters half-open by hand
/// (generations 4 and 5: half-open from closed has no opening time). Another
/// thread reads meanwhile.
///
/// Invariant: every snapshot shows the opening time of its own generation
/// (1,000 ms in generations 1 and 2, 1,200 ms in 3, none in 4 and 5) or,
/// for an opening not yet published, nothing. Never a time left by an
/// earlier opening nor one published for a later generation.
#[test]
fn half_open_shows_its_own_opened_at() {
    model(3, || {
        let storage = opened(1_000, false);
        let writer = spawn_apply(
            &storage,
            vec![
                (Op::Admit, limits(3, 1, 1_100)),
                (
                    Op::Failure {
                        generation: 2,
                        trial: true,
                    },
                    limits(3, 1, 1_200),
                ),
                (Op::Force(State::Closed), limits(3, 1, 1_300)),
                (Op::Force(State::HalfOpen), limits(3, 1, 1_300)),
            ],
        );
        for seen in spawn_read(&storage, 2).join().unwrap() {
            let own = match seen.generation {
                1 | 2 => Some(Duration::from_millis(1_000)),
                3 => Some(Duration::from_millis(1_200)),
                _ => None,
            };
            assert!(
                seen.opened_at.is_none() || seen.opened_at == own,
                "{seen:?}"
            );
        }
        let applied = writer.join().unwrap();
        let end = storage.load();
        assert_eq!(
            (end.state, end.generation, end.opened_at),
            (State::HalfOpen, 5, None)
        );
        assert_eq!(
            applied[1].after.opened_at,
            Some(Duration::from_millis(1_200))
        );
    });
}

/// **Each transition is reported once.** Three threads race failures
/// (`fail_max = 2`), a manual `open()` and a `reset()`; every thread keeps
/// the `Applied` of each of its operations, which is what a breaker reports
/// to its listeners (a change of state between `before` and `after`).
///
/// Invariant: the changes, taken together, form one chain from the initial
/// state (each generation made by exactly one operation, each `before` the
/// previous `after`), so every transition of the breaker is reported by
/// exactly one operation, with the right old and new states, and the last
/// one reported is the state the breaker is in.
#[test]
fn each_transition_is_reported_once() {
    model(3, || {
        let storage = Arc::new(MemoryStorage::new());
        let failure = Op::Failure {
            generation: 0,
            trial: false,
        };
        let handles = vec![
            spawn_apply(
                &storage,
                vec![
                    (failure, limits(2, 1, 1_000)),
                    (failure, limits(2, 1, 1_000)),
                ],
            ),
            spawn_apply(
                &storage,
                vec![(Op::Force(State::Open), limits(2, 1, 1_000))],
            ),
            spawn_apply(&storage, vec![(Op::Reset, limits(2, 1, 1_000))]),
        ];
        let applied: Vec<Applied> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let last = assert_one_chain(Snapshot::INITIAL, &applied);
        assert_eq!(word(&storage.load()), word(&last));
        // Transitions as listeners hear them: replayed in generation order,
        // each one's old state is the previous one's new state.
        let mut reported: Vec<&Applied> = applied
            .iter()
            .filter(|a| a.before.state != a.after.state)
            .collect();
        reported.sort_by_key(|a| a.after.generation);
        let mut state = State::Closed;
        for a in &reported {
            assert_eq!(a.before.state, state, "{reported:?}");
            state = a.after.state;
        }
        assert_eq!(state, last.state);
        let generations: HashSet<u64> = applied
            .iter()
            .filter(|a| a.after.generation != a.before.generation)
            .map(|a| a.after.generation)
            .collect();
        assert_eq!(generations.len() as u64, last.generation, "{applied:?}");
    });
}

/// Records every `state_change` a breaker reports, in order of arrival.
struct Recorder(Mutex<Vec<(State, State)>>);

impl Listener for Recorder {
    fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
        self.0.lock().unwrap().push((old, new));
    }
}

/// The same through a whole breaker and a listener: one thread's failing
/// call opens the circuit (`fail_max = 1`) while another calls `reset()`.
///
/// Invariant: the listener hears each transition the breaker made exactly
/// once, with its true old and new states, *in the order they were made*:
/// each `old` is the previous report's `new`, starting from closed and
/// ending in the state the breaker is in. (Without the ordered reports of
/// `announce.rs`, loom finds open → closed heard before closed → open.)
///
/// Run twice: callers waiting for their turn (loom has no time: they never
/// give up), and callers leaving their change at once to whoever reports
/// the one before it (`loom_impatient`).
#[test]
fn a_listener_hears_each_transition_once_and_in_order() {
    for impatient in [false, true] {
        breaker_core::loom_impatient(impatient);
        listener_hears_each_transition_once_and_in_order();
    }
    breaker_core::loom_impatient(false);
}

fn listener_hears_each_transition_once_and_in_order() {
    model(2, || {
        let recorder = StdArc::new(Recorder(Mutex::new(Vec::new())));
        let cb = StdArc::new(
            CircuitBreaker::builder("loom-listener")
                .fail_max(1)
                .clock(ManualClock::new())
                .listener_arc(recorder.clone())
                .build(),
        );
        let failing = {
            let cb = cb.clone();
            thread::spawn(move || cb.call(|| Err::<(), _>("boom")).is_err())
        };
        let resetting = {
            let cb = cb.clone();
            thread::spawn(move || cb.reset())
        };
        assert!(failing.join().unwrap());
        resetting.join().unwrap();
        let heard = recorder.0.lock().unwrap().clone();
        let end = cb.current_state();
        let mut state = State::Closed;
        for &(old, new) in &heard {
            assert_eq!(old, state, "{heard:?}");
            state = new;
        }
        assert_eq!(state, end, "{heard:?}");
        // closed → open from the failure if it counted, open → closed from
        // the reset if it came after: at most these two.
        assert!(heard.len() <= 2, "{heard:?}");
    });
}

/// Checks what `recorder` heard against the breaker: each `old` is the
/// previous report's `new`, starting from closed and ending in the state the
/// breaker is in, never a report without a change.
fn assert_heard_in_order(recorder: &Recorder, cb: &CircuitBreaker) -> Vec<(State, State)> {
    let heard = recorder.0.lock().unwrap().clone();
    let mut state = State::Closed;
    for &(old, new) in &heard {
        assert_eq!(old, state, "{heard:?}");
        assert_ne!(old, new, "{heard:?}");
        state = new;
    }
    assert_eq!(state, cb.current_state(), "{heard:?}");
    heard
}

/// **A storm of manual transitions** (issue 10, item 3), in small: three
/// threads call `open()`, `close()` and `half_open()` at once on a breaker
/// with a listener, the callers waiting for their turn (so one reporting
/// hands the next change to its waiting caller) or, in the second run,
/// leaving their change at once to whoever reports the one before it.
///
/// Invariant: the listener hears each transition once, in the order made,
/// ending in the breaker's state (a change orphaned in the queue would end
/// the reports early), and every caller returns.
#[test]
fn a_storm_of_manual_transitions_is_heard_once_and_in_order() {
    for impatient in [false, true] {
        breaker_core::loom_impatient(impatient);
        model(2, || {
            let recorder = StdArc::new(Recorder(Mutex::new(Vec::new())));
            let cb = StdArc::new(
                CircuitBreaker::builder("loom-storm")
                    .clock(ManualClock::new())
                    .listener_arc(recorder.clone())
                    .build(),
            );
            let ops: [fn(&CircuitBreaker); 3] = [
                CircuitBreaker::open,
                CircuitBreaker::close,
                CircuitBreaker::half_open,
            ];
            let handles: Vec<_> = ops
                .into_iter()
                .map(|op| {
                    let cb = cb.clone();
                    thread::spawn(move || op(&cb))
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let heard = assert_heard_in_order(&recorder, &cb);
            assert!(heard.len() <= 3, "{heard:?}");
            assert_eq!(cb.snapshot().generation, 3);
        });
    }
    breaker_core::loom_impatient(false);
}

/// Counts the calls a listener is told about.
struct Counter(AtomicUsize);

impl Listener for Counter {
    fn before_call(&self, _: &CircuitBreaker) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// **Listener edits keep the hot path's flag true.** One thread adds a
/// listener while another removes the only one there was. (The flag word
/// the hot path reads instead of the list, the kept list's pointer and the
/// lock that serialises edits are loom's; a list past the kept ones is in
/// `arc_swap`, which loom does not model.)
///
/// Invariant: after both, the added listener hears the next call: the flag
/// says "listening" whenever the list is not empty. (With edits that set the
/// flag from their own view of the list, unserialised, loom finds the
/// removal's `false` stored after the addition's `true`: a listener in the
/// list that no call reaches.)
#[test]
fn listener_edits_never_hide_a_listener() {
    model(2, || {
        let first: StdArc<dyn Listener> = StdArc::new(Counter(AtomicUsize::new(0)));
        let added = StdArc::new(Counter(AtomicUsize::new(0)));
        let cb = StdArc::new(
            CircuitBreaker::builder("loom-listener-edits")
                .clock(ManualClock::new())
                .listener_arc(first.clone())
                .build(),
        );
        let adding = {
            let (cb, added) = (cb.clone(), added.clone());
            thread::spawn(move || cb.add_listener(added))
        };
        let removing = {
            let cb = cb.clone();
            thread::spawn(move || assert!(cb.remove_listener(&first)))
        };
        adding.join().unwrap();
        removing.join().unwrap();
        assert_eq!(cb.listeners().len(), 1);
        cb.call(|| Ok::<_, ()>(())).unwrap();
        assert_eq!(
            added.0.load(Ordering::SeqCst),
            1,
            "the added listener was not told"
        );
    });
}

/// **A call racing the edit that ends the kept lists hears each listener
/// once.** A breaker keeps its first 16 lists of listeners (`dispatch.rs`);
/// it has made 16 when one thread adds a listener (the 17th list: the kept
/// list's pointer goes null, for good) while another calls.
///
/// Invariant: the listener there all along hears the racing call once (from
/// a kept list or from the new one, never from neither), the added one at
/// most once; the next call reaches both.
#[test]
fn a_call_racing_the_end_of_kept_lists_hears_each_listener_once() {
    model(2, || {
        let kept = StdArc::new(Counter(AtomicUsize::new(0)));
        let added = StdArc::new(Counter(AtomicUsize::new(0)));
        let cb = StdArc::new(
            CircuitBreaker::builder("loom-kept-lists")
                .clock(ManualClock::new())
                .listener_arc(kept.clone())
                .build(),
        );
        let passing: StdArc<dyn Listener> = StdArc::new(Counter(AtomicUsize::new(0)));
        for _ in 0..7 {
            cb.add_listener(passing.clone());
            assert!(cb.remove_listener(&passing));
        }
        cb.add_listener(passing); // the 16th list
        let adding = {
            let (cb, added) = (cb.clone(), added.clone());
            thread::spawn(move || cb.add_listener(added))
        };
        let calling = {
            let cb = cb.clone();
            thread::spawn(move || cb.call(|| Ok::<_, ()>(())).unwrap())
        };
        adding.join().unwrap();
        calling.join().unwrap();
        assert_eq!(kept.0.load(Ordering::SeqCst), 1);
        let racing = added.0.load(Ordering::SeqCst);
        assert!(racing <= 1, "told {racing} times");
        cb.call(|| Ok::<_, ()>(())).unwrap();
        assert_eq!(kept.0.load(Ordering::SeqCst), 2);
        assert_eq!(added.0.load(Ordering::SeqCst), racing + 1);
    });
}
