//! When does each trip policy open on a dependency that fails 30% of its
//! calls, at 10 and at 1,000 calls per second? The figures of the README's
//! "Choosing a policy", computed on a `ManualClock` with a seeded failure
//! pattern, so every run prints the same table:
//! `cargo run --release --example choosing_a_policy`.

use std::time::Duration;

use breaker::clock::ManualClock;
use breaker::{CircuitBreaker, CircuitBreakerBuilder, State};

/// The share of calls that fail.
const FAILING: f64 = 0.3;
/// How long each run lasts, simulated.
const HORIZON: Duration = Duration::from_secs(600);
/// The seeds: the first one's figures, and the median over all.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=21;

/// A seeded pseudo-random failure pattern (xorshift64*): each call fails
/// with probability `FAILING`, independently.
struct Pattern(u64);

impl Pattern {
    fn new(seed: u64) -> Self {
        Pattern(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn fails(&mut self) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 / (1u64 << 53) as f64) < FAILING
    }
}

/// When the breaker opened: after how many calls, how much time, and how
/// many failures.
#[derive(Clone, Copy)]
struct Opened {
    calls: u64,
    after: Duration,
    failures: u64,
}

/// Calls `per_second` calls a second through a breaker `policy` makes,
/// until it opens or the horizon ends.
fn run(
    policy: fn(CircuitBreakerBuilder) -> CircuitBreakerBuilder,
    per_second: u32,
    seed: u64,
) -> Option<Opened> {
    let clock = ManualClock::new();
    let cb = policy(CircuitBreaker::builder("scenario"))
        .clock(clock.clone())
        .build();
    let step = Duration::from_secs(1) / per_second;
    let mut pattern = Pattern::new(seed);
    let mut failures = 0;
    let calls = HORIZON.as_secs() * u64::from(per_second);
    for call in 1..=calls {
        let fails = pattern.fails();
        failures += u64::from(fails);
        let _ = cb.call(|| if fails { Err("refused") } else { Ok(()) });
        if cb.current_state() == State::Open {
            return Some(Opened {
                calls: call,
                after: step * call as u32,
                failures,
            });
        }
        clock.advance(step);
    }
    None
}

fn shown(opened: Option<Opened>) -> String {
    match opened {
        None => format!("never (in {} s)", HORIZON.as_secs()),
        Some(o) => format!(
            "{} ({} calls, {} failed)",
            time(o.after),
            o.calls,
            o.failures
        ),
    }
}

fn time(d: Duration) -> String {
    match d.as_millis() {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms => format!("{:.1} s", ms as f64 / 1_000.0),
    }
}

/// The median time to open over the seeds (`never` if it did not open in
/// half of the runs or more).
fn median(policy: fn(CircuitBreakerBuilder) -> CircuitBreakerBuilder, per_second: u32) -> String {
    let mut times: Vec<Option<Duration>> = SEEDS
        .map(|seed| run(policy, per_second, seed).map(|o| o.after))
        .collect();
    times.sort_by_key(|t| t.unwrap_or(Duration::MAX));
    match times[times.len() / 2] {
        Some(d) => time(d),
        None => "never".to_owned(),
    }
}

fn main() {
    type Policy = fn(CircuitBreakerBuilder) -> CircuitBreakerBuilder;
    let policies: [(&str, Policy); 3] = [
        ("consecutive: `fail_max(5)`", |b| b.fail_max(5)),
        ("`failure_rate(0.5)`, `window_calls(100)`", |b| {
            b.failure_rate(0.5).window_calls(100)
        }),
        (
            "`failure_rate(0.25)`, `window_time(10 s)`, `min_calls(20)`",
            |b| {
                b.failure_rate(0.25)
                    .window_time(Duration::from_secs(10))
                    .min_calls(20)
            },
        ),
    ];
    println!(
        "| policy | 10 calls/s: opens after (seed 1) | median of {} seeds | 1,000 calls/s: opens after (seed 1) | median of {} seeds |",
        SEEDS.count(),
        SEEDS.count()
    );
    println!("|---|---|---|---|---|");
    for (name, policy) in policies {
        println!(
            "| {name} | {} | {} | {} | {} |",
            shown(run(policy, 10, 1)),
            median(policy, 10),
            shown(run(policy, 1_000, 1)),
            median(policy, 1_000),
        );
    }
}
