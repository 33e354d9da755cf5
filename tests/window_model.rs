//! The rate policies' sliding window (`breaker_core::window`) against a
//! naive model that keeps every call: for any sequence of successes,
//! failures, slow calls, clock moves, clears and late results of older
//! generations, the window's totals (after each record and from `stats`)
//! are the model's. One thread: the window is exact there (its concurrency
//! is checked by its unit tests and by loom, `tests/loom_window.rs`).

use std::time::Duration;

use breaker_core::window::{Kind, Outcome, Totals, Window, BUCKETS};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// A call of the current generation.
    Call { failed: bool, slow: bool },
    /// A late result of the generation before the current one.
    Late { failed: bool },
    /// The clock moves on by this many half buckets.
    Wait(u8),
    /// The breaker entered closed again (a new generation).
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), any::<bool>()).prop_map(|(failed, slow)| Op::Call { failed, slow }),
        1 => any::<bool>().prop_map(|failed| Op::Late { failed }),
        2 => (0u8..8).prop_map(Op::Wait),
        1 => Just(Op::Clear),
    ]
}

/// Every call of the current generation, with the time it completed.
#[derive(Default)]
struct Model {
    calls: Vec<(u64, Outcome)>,
}

impl Model {
    fn totals<'a>(held: impl Iterator<Item = &'a (u64, Outcome)>) -> Totals {
        let mut t = Totals::default();
        for (_, o) in held {
            t.calls += 1;
            t.failures += u64::from(o.failed);
            t.slow += u64::from(o.slow);
        }
        t
    }

    /// The last `n` calls.
    fn count(&self, n: usize) -> Totals {
        Self::totals(self.calls.iter().rev().take(n))
    }

    /// The calls in the bucket of `now` and the `BUCKETS - 1` before it
    /// (buckets of `width` nanoseconds).
    fn time(&self, now: u64, width: u64) -> Totals {
        let current = now / width;
        Self::totals(
            self.calls
                .iter()
                .filter(|(at, _)| current - at / width < BUCKETS),
        )
    }
}

/// Runs `ops` on a window of `kind` and on the model, comparing totals
/// after every step.
fn check(kind: Kind, ops: &[Op]) -> Result<(), TestCaseError> {
    let window = Window::new(kind).unwrap();
    let mut model = Model::default();
    let width = match kind {
        Kind::Time(span) => span.as_nanos() as u64 / BUCKETS,
        Kind::Calls(_) => 1_000_000_000,
    };
    // Times sit in the middle of their half bucket, clear of the edges (a
    // bucket's number is computed by a multiplication that may put an edge
    // a few parts in 10^11 early).
    let start = (1_000_000_000_000_000_000 / width) * width + width / 4;
    let mut now = start;
    let mut generation = 0u64;
    let expected = |model: &Model, now: u64| match kind {
        Kind::Calls(n) => model.count(n as usize),
        Kind::Time(_) => model.time(now, width),
    };
    for (step, &op) in ops.iter().enumerate() {
        let at = Duration::from_nanos(now);
        match op {
            Op::Call { failed, slow } => {
                let outcome = Outcome { failed, slow };
                model.calls.push((now, outcome));
                if failed || slow {
                    let got = window.record(outcome, generation, at);
                    prop_assert_eq!(got, Some(expected(&model, now)), "step {} {:?}", step, op);
                } else {
                    window.record_success(generation, || at);
                }
            }
            Op::Late { failed } => {
                if generation > 0 {
                    if failed {
                        let got = window.record(
                            Outcome {
                                failed,
                                slow: false,
                            },
                            generation - 1,
                            at,
                        );
                        prop_assert_eq!(got, None, "step {} {:?}", step, op);
                    } else {
                        window.record_success(generation - 1, || at);
                    }
                }
            }
            Op::Wait(halves) => now += u64::from(halves) * width / 2,
            Op::Clear => {
                generation += 1;
                window.clear(generation);
                model.calls.clear();
            }
        }
        let at = Duration::from_nanos(now);
        prop_assert_eq!(
            window.stats(at),
            expected(&model, now),
            "after step {} {:?}",
            step,
            op
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn a_count_window_holds_the_last_n_calls(
        n in prop_oneof![1u32..6, 6u32..40, Just(100)],
        ops in prop::collection::vec(op(), 1..400),
    ) {
        check(Kind::Calls(n), &ops)?;
    }

    #[test]
    fn a_time_window_holds_the_calls_of_its_last_ten_buckets(
        seconds in prop_oneof![Just(1u64), Just(60), 2u64..600],
        ops in prop::collection::vec(op(), 1..400),
    ) {
        check(Kind::Time(Duration::from_secs(seconds)), &ops)?;
    }
}
