//! Runs one scenario `n` times, for instruction counts under callgrind:
//! `valgrind --tool=callgrind target/release/instructions <scenario> <n>`;
//! (count(n) - count(0)) / n is the cost per call, repeatable to the
//! instruction whatever else the machine is doing.

use std::hint::black_box;
use std::time::Duration;

use breaker::CircuitBreaker;
use breaker_bench::{work, Failure};

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_default();
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let cb = CircuitBreaker::builder("instructions")
        .reset_timeout(Duration::from_secs(3600))
        .build();
    match scenario.as_str() {
        "bare" => {
            for i in 0..n {
                let _ = black_box(work(black_box(i)));
            }
        }
        "call" => {
            for i in 0..n {
                let _ = black_box(cb.call(|| work(black_box(i))));
            }
        }
        "rejection" => {
            cb.open();
            for i in 0..n {
                let _ = black_box(cb.call(|| work(black_box(i))));
            }
        }
        "failure" => {
            cb.set_fail_max(1_000_000).unwrap();
            for i in 0..n {
                let _ = black_box(cb.call(|| Err::<u64, _>(black_box(Failure))));
                let _ = i;
            }
        }
        other => panic!("unknown scenario {other:?}: bare, call, rejection, failure"),
    }
}
