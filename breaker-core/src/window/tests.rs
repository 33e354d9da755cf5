use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::*;

const FAIL: Outcome = Outcome {
    failed: true,
    slow: false,
};
const SLOW: Outcome = Outcome {
    failed: false,
    slow: true,
};
const SLOW_FAIL: Outcome = Outcome {
    failed: true,
    slow: true,
};
const OK: Outcome = Outcome {
    failed: false,
    slow: false,
};

/// ManualClock's start: 10^9 s after the epoch.
const T0: Duration = Duration::from_secs(1_000_000_000);

fn totals(calls: u64, failures: u64, slow: u64) -> Totals {
    Totals {
        calls,
        failures,
        slow,
    }
}

fn count(n: u32) -> Window {
    Window::new(Kind::Calls(n)).unwrap()
}

fn time(span: Duration) -> Window {
    Window::new(Kind::Time(span)).unwrap()
}

/// The first millisecond after `T0` at which a new bucket of `w` starts.
fn bucket_start(w: &Window) -> Duration {
    let Shape::Time(t) = &w.shape else {
        panic!("not a time window")
    };
    let bucket = |d: Duration| t.bucket(crate::clock::as_nanos(d));
    (0..)
        .map(|ms| T0 + Duration::from_millis(ms))
        .find(|&d| bucket(d) > bucket(T0))
        .unwrap()
}

#[test]
fn bad_shapes_are_errors_naming_what_is_wrong() {
    assert_eq!(
        Window::new(Kind::Calls(0)).unwrap_err(),
        WindowError::NoCalls
    );
    let too_many = Window::new(Kind::Calls(Window::MAX_CALLS + 1)).unwrap_err();
    assert_eq!(too_many, WindowError::TooManyCalls(Window::MAX_CALLS + 1));
    assert_eq!(
        too_many.to_string(),
        "a count window holds at most 32768 calls, not 32769"
    );
    let short = Window::new(Kind::Time(Duration::from_millis(9))).unwrap_err();
    assert_eq!(
        short.to_string(),
        "a time window spans at least 10ms, not 9ms"
    );
    assert!(Window::new(Kind::Calls(Window::MAX_CALLS)).is_ok());
    assert!(Window::new(Kind::Time(Window::MIN_SPAN)).is_ok());
}

#[test]
fn kind_reports_the_shape() {
    assert_eq!(count(100).kind(), Kind::Calls(100));
    assert_eq!(
        time(Duration::from_secs(60)).kind(),
        Kind::Time(Duration::from_secs(60))
    );
}

#[test]
fn a_count_window_drops_its_oldest_call_first() {
    let w = count(5);
    // Calls: F S S F S | S S S
    assert_eq!(w.record(FAIL, 0, T0), Some(totals(1, 1, 0)));
    w.record_success(0, || T0);
    w.record_success(0, || T0);
    assert_eq!(w.record(FAIL, 0, T0), Some(totals(4, 2, 0)));
    w.record_success(0, || T0);
    assert_eq!(w.stats(T0), totals(5, 2, 0));
    // The sixth call pushes the first failure out, not the second.
    w.record_success(0, || T0);
    assert_eq!(w.stats(T0), totals(5, 1, 0));
    w.record_success(0, || T0);
    w.record_success(0, || T0);
    assert_eq!(w.stats(T0), totals(5, 1, 0));
    // The ninth pushes out the second failure.
    w.record_success(0, || T0);
    assert_eq!(w.stats(T0), totals(5, 0, 0));
}

#[test]
fn a_count_window_full_of_failures_counts_each_once() {
    let w = count(3);
    for i in 1..=3 {
        assert_eq!(w.record(FAIL, 0, T0), Some(totals(i, i, 0)));
    }
    for _ in 0..10 {
        assert_eq!(w.record(FAIL, 0, T0), Some(totals(3, 3, 0)));
    }
    w.record_success(0, || T0);
    assert_eq!(w.stats(T0), totals(3, 2, 0));
}

#[test]
fn the_log_wraps_around_its_ring() {
    // 100 calls, a ring of 128 events: 1,000 failures lap it several times.
    let w = count(100);
    for i in 0..1000u64 {
        let t = w.record(FAIL, 0, T0).unwrap();
        assert_eq!(t, totals((i + 1).min(100), (i + 1).min(100), 0));
    }
    for i in 0..150u64 {
        w.record_success(0, || T0);
        let left = 100u64.saturating_sub(i + 1);
        assert_eq!(w.stats(T0), totals(100, left, 0));
    }
}

#[test]
fn slow_successes_and_slow_failures_are_counted_as_slow() {
    let w = count(10);
    assert_eq!(w.record(SLOW, 0, T0), Some(totals(1, 0, 1)));
    assert_eq!(w.record(SLOW_FAIL, 0, T0), Some(totals(2, 1, 2)));
    assert_eq!(w.record(FAIL, 0, T0), Some(totals(3, 2, 2)));
    assert_eq!(w.record(OK, 0, T0), Some(totals(4, 2, 2)));
    let t = time(Duration::from_secs(10));
    assert_eq!(t.record(SLOW, 0, T0), Some(totals(1, 0, 1)));
    assert_eq!(t.record(SLOW_FAIL, 0, T0), Some(totals(2, 1, 2)));
    assert_eq!(t.record(FAIL, 0, T0), Some(totals(3, 2, 2)));
    assert_eq!(t.record(OK, 0, T0), Some(totals(4, 2, 2)));
}

#[test]
fn a_time_window_expires_whole_buckets() {
    let span = Duration::from_secs(60);
    let w = time(span);
    let start = bucket_start(&w);
    let at = |s: u64| start + Duration::from_secs(s);
    // Buckets start at at(0), at(6), ... (to the millisecond)
    w.record_success(0, || at(0));
    w.record_success(0, || at(5));
    assert_eq!(w.record(FAIL, 0, at(5)), Some(totals(3, 1, 0)));
    w.record_success(0, || at(6));
    assert_eq!(w.stats(at(6)), totals(4, 1, 0));
    // 9 buckets later the first bucket is still in the window...
    assert_eq!(w.stats(at(59)), totals(4, 1, 0));
    // ... and at 60 s it has expired, its failure with it.
    assert_eq!(w.stats(at(60)), totals(1, 0, 0));
    assert_eq!(w.stats(at(65)), totals(1, 0, 0));
    assert_eq!(w.stats(at(66)), totals(0, 0, 0));
    // A call long after: the lane's expired slots are reused.
    assert_eq!(w.record(FAIL, 0, at(600)), Some(totals(1, 1, 0)));
    w.record_success(0, || at(601));
    assert_eq!(w.stats(at(601)), totals(2, 1, 0));
    assert_eq!(w.stats(at(660)), totals(0, 0, 0));
}

#[test]
fn a_time_window_keeps_each_bucket_apart() {
    let w = time(Duration::from_secs(10));
    let start = bucket_start(&w);
    let at = |ms: u64| start + Duration::from_millis(ms);
    for second in 0..10u64 {
        for _ in 0..=second {
            w.record_success(0, || at(second * 1000));
        }
    }
    assert_eq!(w.stats(at(9_999)), totals(55, 0, 0));
    for second in 10..20u64 {
        // Each new second drops the second ten before it (second - 9 calls).
        let dropped: u64 = (0..=second - 10).map(|s| s + 1).sum();
        assert_eq!(w.stats(at(second * 1000)), totals(55 - dropped, 0, 0));
    }
}

#[test]
fn clearing_starts_an_empty_window_and_older_generations_are_not_counted() {
    for w in [count(10), time(Duration::from_secs(10))] {
        w.record_success(0, || T0);
        w.record(FAIL, 0, T0).unwrap();
        assert_eq!(w.stats(T0), totals(2, 1, 0));
        w.clear(3);
        assert_eq!(w.generation(), 3);
        assert_eq!(w.stats(T0), totals(0, 0, 0));
        // Results of calls admitted before the clear.
        w.record_success(0, || T0);
        assert_eq!(w.record(FAIL, 2, T0), None);
        assert_eq!(w.stats(T0), totals(0, 0, 0));
        w.record_success(3, || T0);
        assert_eq!(w.record(FAIL, 3, T0), Some(totals(2, 1, 0)));
        // An older clear changes nothing.
        w.clear(1);
        assert_eq!(w.generation(), 3);
        assert_eq!(w.stats(T0), totals(2, 1, 0));
    }
}

#[test]
fn a_record_under_a_newer_generation_moves_the_window_to_it() {
    for w in [count(10), time(Duration::from_secs(10))] {
        w.record_success(0, || T0);
        // The breaker closed under generation 5 and a call of it finished
        // before the breaker cleared the window.
        w.record_success(5, || T0);
        assert_eq!(w.record(FAIL, 5, T0), Some(totals(2, 1, 0)));
        assert_eq!(w.generation(), 5);
        w.clear(5);
        assert_eq!(w.stats(T0), totals(2, 1, 0));
    }
}

#[test]
fn a_stale_success_after_a_newer_one_on_the_same_thread_is_not_counted() {
    let w = count(10);
    w.record_success(4, || T0);
    w.record_success(3, || T0);
    w.clear(4);
    assert_eq!(w.stats(T0), totals(1, 0, 0));
}

/// 8 threads, each `per` successes and a failure every `every`: exact
/// counts at quiescence.
fn recorded_by_8_threads(w: &Arc<Window>, per: u64, every: u64, now: Duration) {
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (w, start) = (Arc::clone(w), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for i in 1..=per {
                    if i % every == 0 {
                        let t = w.record(FAIL, 0, now).unwrap();
                        assert!(t.failures >= 1 && t.failures <= t.calls, "{t:?}");
                    } else {
                        w.record_success(0, || now);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn eight_threads_lose_no_call_and_count_none_twice() {
    let w = Arc::new(count(Window::MAX_CALLS));
    recorded_by_8_threads(&w, 4_000, 7, T0);
    let failures = 8 * (4_000 / 7);
    assert_eq!(w.stats(T0), totals(32_000, failures, 0));

    let w = Arc::new(time(Duration::from_secs(60)));
    recorded_by_8_threads(&w, 20_000, 7, T0);
    let failures = 8 * (20_000 / 7);
    assert_eq!(w.stats(T0), totals(160_000, failures, 0));
}

#[test]
fn eight_threads_fill_a_count_window_to_its_size() {
    let w = Arc::new(count(100));
    recorded_by_8_threads(&w, 10_000, 2, T0);
    let t = w.stats(T0);
    assert_eq!(t.calls, 100);
    // Every thread's last 50 calls alternate; the window's last 100 calls
    // are about half failures.
    assert!((30..=70).contains(&t.failures), "{t:?}");
}

#[test]
fn a_decision_sees_every_outcome_completed_before_it_began() {
    for w in [count(1000), time(Duration::from_secs(60))] {
        let w = Arc::new(w);
        let other = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || {
                for _ in 0..300 {
                    w.record_success(0, || T0);
                }
                w.record(FAIL, 0, T0).unwrap();
            })
        };
        other.join().unwrap();
        // Joined: everything the other thread recorded happens-before this.
        assert_eq!(w.record(FAIL, 0, T0), Some(totals(302, 2, 0)));
    }
}

#[test]
fn clearing_while_threads_record_counts_only_the_new_generation() {
    for w in [count(Window::MAX_CALLS), time(Duration::from_secs(60))] {
        let w = Arc::new(w);
        let cleared = Arc::new(Barrier::new(5));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (w, cleared) = (Arc::clone(&w), Arc::clone(&cleared));
                std::thread::spawn(move || {
                    // Generation 0 calls, some racing the clear.
                    for i in 0..5_000u64 {
                        if i % 10 == 0 {
                            let _ = w.record(FAIL, 0, T0);
                        } else {
                            w.record_success(0, || T0);
                        }
                    }
                    cleared.wait();
                    for i in 0..1_000u64 {
                        if i % 10 == 0 {
                            w.record(FAIL, 1, T0).unwrap();
                        } else {
                            w.record_success(1, || T0);
                        }
                        // A late result of generation 0.
                        w.record_success(0, || T0);
                    }
                })
            })
            .collect();
        w.clear(1);
        cleared.wait();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(w.stats(T0), totals(4_000, 400, 0));
    }
}

/// The bytes one window takes, with 2 and 16 threads having recorded
/// into it (lanes 0-1 and 0-15, as the first threads of a process get):
/// the figures the README states.
fn bytes_with_lanes(kind: Kind, lanes: usize) -> usize {
    let w = Window::new(kind).unwrap();
    w.touch_lanes(lanes);
    w.bytes()
}

#[test]
fn memory_figures() {
    let count100 = Kind::Calls(100);
    let time60 = Kind::Time(Duration::from_secs(60));
    let figures = [
        bytes_with_lanes(count100, 2),
        bytes_with_lanes(count100, 16),
        bytes_with_lanes(time60, 2),
        bytes_with_lanes(time60, 16),
    ];
    println!(
        "count window 100: {} B (2 threads), {} B (16 threads); \
         time window 60 s: {} B (2 threads), {} B (16 threads)",
        figures[0], figures[1], figures[2], figures[3]
    );
    // 2 threads: 3 lanes; 16 threads: 31 lanes (chunks of 1, 2, 4, 8, 16).
    let base = std::mem::size_of::<Window>();
    assert_eq!(figures[0], base + 128 * 8 + 3 * 64);
    assert_eq!(figures[1], base + 128 * 8 + 31 * 64);
    assert_eq!(figures[2], base + 30 * 8 + 3 * 128);
    assert_eq!(figures[3], base + 30 * 8 + 31 * 128);
    // 10,000 time-window breakers, each used by 16 threads, under 64 MiB.
    assert!(10_000 * figures[3] < 64 << 20, "{}", 10_000 * figures[3]);
}
