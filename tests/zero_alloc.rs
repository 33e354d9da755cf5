//! A guarded call allocates nothing on the success and rejection paths,
//! counted by a global allocator (per thread, so parallel tests don't mix).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use breaker::{circuit_breaker, CircuitBreaker, CircuitBreakerError};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every request to the system allocator unchanged; the
// counter is a const-initialised thread-local `Cell`, which never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as for `realloc` on `System`, which allocated `ptr`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[derive(Debug)]
struct Failed;

impl From<CircuitBreakerError> for Failed {
    fn from(_: CircuitBreakerError) -> Self {
        Failed
    }
}

#[circuit_breaker(name = "zero-alloc-attribute")]
fn attributed(x: u64) -> Result<u64, Failed> {
    Ok(x + 1)
}

fn poll_ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("ready at once"),
    }
}

#[test]
fn the_counter_sees_allocations() {
    // The test would prove nothing if the allocator did not count.
    assert!(allocations_in(|| drop(black_box(vec![1u8; 16]))) >= 1);
}

#[test]
fn closed_state_successes_allocate_nothing() {
    let cb = CircuitBreaker::new("zero-alloc-closed");
    let _ = attributed(0); // resolves the attribute's breaker once
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            black_box(cb.call(|| Ok::<_, Failed>(black_box(i)))).unwrap();
            black_box(attributed(black_box(i))).unwrap();
            black_box(poll_ready(
                cb.call_async(async { Ok::<_, Failed>(black_box(i)) }),
            ))
            .unwrap();
        }
    });
    assert_eq!(n, 0, "allocations on the closed-state success path");
}

#[test]
fn rejections_allocate_nothing() {
    let open = CircuitBreaker::builder(String::from("zero-alloc-open")) // an interned, owned name
        .reset_timeout(Duration::from_secs(3600))
        .build();
    open.open();
    let half_open = CircuitBreaker::new("zero-alloc-half-open");
    half_open.half_open();
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            assert!(black_box(open.call(|| Ok::<_, Failed>(i)))
                .unwrap_err()
                .is_open());
            assert!(
                black_box(poll_ready(open.call_async(async { Ok::<_, Failed>(i) })))
                    .unwrap_err()
                    .is_open()
            );
            // From inside the trial, the next call is rejected: trial in progress.
            let nested =
                half_open.call(|| Ok::<_, Failed>(half_open.call(|| Ok::<_, Failed>(i)).is_err()));
            assert_eq!(nested.ok(), Some(true));
            half_open.half_open();
        }
    });
    assert_eq!(n, 0, "allocations on the rejection path");
}

/// Hears `before_call`, `success` and `rejected`.
struct Heard(std::sync::atomic::AtomicU64);

impl breaker::Listener for Heard {
    fn before_call(&self, _: &CircuitBreaker) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn success(&self, _: &CircuitBreaker) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn rejected(&self, _: &CircuitBreaker, _: &CircuitBreakerError) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn calls_told_to_listeners_allocate_nothing() {
    let listener = std::sync::Arc::new(Heard(Default::default()));
    let cb = CircuitBreaker::builder("zero-alloc-listened")
        .listener_arc(listener.clone())
        .listener(Heard(Default::default()))
        .build();
    let open = CircuitBreaker::builder("zero-alloc-listened-open")
        .reset_timeout(Duration::from_secs(3600))
        .listener_arc(listener.clone())
        .build();
    open.open();
    // The first call of a thread caches the lists.
    black_box(cb.call(|| Ok::<_, Failed>(0))).unwrap();
    let _ = black_box(open.call(|| Ok::<_, Failed>(0)));
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            black_box(cb.call(|| Ok::<_, Failed>(black_box(i)))).unwrap();
            assert!(black_box(open.call(|| Ok::<_, Failed>(i)))
                .unwrap_err()
                .is_open());
        }
    });
    assert_eq!(n, 0, "allocations on a listened path");
    assert_eq!(
        listener.0.load(std::sync::atomic::Ordering::Relaxed),
        3 + 30_000
    );
}
