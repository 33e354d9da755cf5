//! Bytes of heap per idle key in a `KeyedBreakers` group, counted by a
//! global allocator: `cargo run --release -p breaker-bench --bin keyed_memory [n]`.
//! Prints one line per key type: live bytes after adding `n` idle keys,
//! divided by `n`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use breaker::keyed::{Key, KeyedBreakers};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments;
// counting changes nothing the allocator returns.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn per_key<K: Key>(label: &str, n: usize, key: impl Fn(usize) -> K) {
    let group = KeyedBreakers::<K>::builder(format!("memory-{label}"), |b| b)
        .max_keys(n)
        .build();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..n {
        let _ = group.get(&key(i));
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(group.len(), n);
    println!(
        "{label}: {} bytes per idle key ({n} keys)",
        (after - before) / n as isize
    );
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    per_key("u64", n, |i| i as u64);
    per_key("host", n, |i| format!("host-{i:06}.example.com"));
}
