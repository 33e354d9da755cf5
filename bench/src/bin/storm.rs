//! A storm of manual transitions (issue 10, item 3): three threads call
//! `open()` / `close()` on one breaker with no listener for a while (1 s by
//! default: `storm [SECONDS]`), timing every `open()`. Prints one line for
//! `scripts/bench_table.py`:
//!
//! ```text
//! storm <seconds> <worst open() during, µs> <latest return after the stop, µs> <generations>
//! ```
//!
//! "After the stop": how long after the threads were told to stop the last
//! of them returned from its last call (a call held hostage to report
//! others' transitions shows here); `-1` if one had not returned 60 s after
//! the stop (`storm SECONDS LIMIT` changes the 60), and the worst `open()`
//! then only counts the threads that returned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use breaker::CircuitBreaker;

const THREADS: usize = 3;

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let limit: f64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let cb = Arc::new(CircuitBreaker::new("storm"));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let (done, results) = mpsc::channel();
    for _ in 0..THREADS {
        let (cb, stop, start, done) = (cb.clone(), stop.clone(), start.clone(), done.clone());
        std::thread::spawn(move || {
            start.wait();
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                cb.open();
                worst = worst.max(t.elapsed());
                cb.close();
            }
            let _ = done.send((worst, Instant::now()));
        });
    }
    start.wait();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let stopped = Instant::now();
    let mut worst = Duration::ZERO;
    let mut after = Some(Duration::ZERO);
    let deadline = stopped + Duration::from_secs_f64(limit);
    for _ in 0..THREADS {
        let wait = deadline.saturating_duration_since(Instant::now());
        match results.recv_timeout(wait) {
            Ok((w, returned)) => {
                worst = worst.max(w);
                after = after.map(|a| a.max(returned.saturating_duration_since(stopped)));
            }
            Err(_) => {
                after = None;
                break;
            }
        }
    }
    let after = after.map_or(-1, |a| a.as_micros() as i128);
    println!(
        "storm {seconds} {} {after} {}",
        worst.as_micros(),
        cb.snapshot().generation
    );
    // A thread still held hostage is left behind.
    std::process::exit(0);
}
