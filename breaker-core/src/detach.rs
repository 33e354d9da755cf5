//! Finishing an admission whose `call_async` was dropped while a custom
//! storage was still applying it.
//!
//! A storage applies an operation even if the future it returned is dropped
//! (the [`Storage`](crate::Storage) contract), so a dropped admission may
//! still take a half-open trial place, with nobody left to run the trial
//! or give the place back. The breaker keeps the storage's future instead
//! of dropping it and finishes it here: once the storage answers, the
//! transition is announced and, if a trial place was taken, it is freed.
//!
//! No executor is needed: the future is polled once at once, then again
//! on whichever thread wakes it (the storage's own I/O thread, typically),
//! one poll at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};

use crate::breaker::CircuitBreaker;
use crate::recording::{Applying, Recorded};
use crate::state::{Op, Outcome};
use crate::storage::ApplyFuture;

/// Finishes `admitting`, the storage's future of an `Op::Admit` whose caller
/// is gone: announces what it did and frees the trial place it took.
pub(crate) fn admission(cb: &CircuitBreaker, admitting: ApplyFuture<'static>) {
    let cb = CircuitBreaker::from_shared(Arc::clone(&cb.shared));
    spawn(Box::pin(async move {
        let applied = admitting.await;
        // Listener panics have no caller to go to.
        let _ = cb.announce(Recorded {
            applied,
            clock_panic: None,
        });
        if let Outcome::Admitted {
            generation,
            trial: true,
        } = applied.outcome
        {
            if let Applying::Later(cancel, _) = cb.applying(Op::Cancel { generation }) {
                cancel.await;
            }
        }
    }));
}

/// Not polling.
const IDLE: u8 = 0;
/// A thread is polling.
const POLLING: u8 = 1;
/// A thread is polling, and was woken meanwhile: it polls again.
const WOKEN: u8 = 2;
/// The future has finished.
const DONE: u8 = 3;

/// A future driven by its own wake-ups.
struct Task {
    state: AtomicU8,
    future: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

/// Runs `future` to completion without an executor: polled now, and again
/// each time it is woken.
pub(crate) fn spawn(future: Pin<Box<dyn Future<Output = ()> + Send>>) {
    let task = Arc::new(Task {
        state: AtomicU8::new(IDLE),
        future: Mutex::new(Some(future)),
    });
    task.wake();
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => POLLING,
                POLLING => WOKEN,
                _ => return,
            };
            match self
                .state
                .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next == POLLING => break,
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        // This thread polls: only one does at a time.
        let waker = Waker::from(Arc::clone(&self));
        let mut cx = Context::from_waker(&waker);
        loop {
            let mut slot = self.future.lock().unwrap_or_else(PoisonError::into_inner);
            let finished = match slot.as_mut() {
                Some(future) => future.as_mut().poll(&mut cx).is_ready(),
                None => true,
            };
            if finished {
                *slot = None;
                self.state.store(DONE, Ordering::Release);
                return;
            }
            drop(slot);
            // Woken while polling: poll again; otherwise rest until woken.
            if self
                .state
                .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
            self.state.store(POLLING, Ordering::Release);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    /// Pending until `open` is set; counts its polls.
    struct Gate {
        open: Arc<std::sync::atomic::AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
        polls: Arc<AtomicUsize>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_spawned_future_runs_to_completion_on_the_thread_that_wakes_it() {
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = Arc::new(Mutex::new(None::<Waker>));
        let polls = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = Gate {
            open: Arc::clone(&open),
            waker: Arc::clone(&waker),
            polls: Arc::clone(&polls),
        };
        let done = Arc::clone(&finished);
        spawn(Box::pin(async move {
            gate.await;
            done.store(true, Ordering::SeqCst);
        }));
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        assert!(!finished.load(Ordering::SeqCst));
        open.store(true, Ordering::SeqCst);
        let wake = waker.lock().unwrap().take().expect("the gate left a waker");
        std::thread::spawn(move || wake.wake()).join().unwrap();
        assert!(finished.load(Ordering::SeqCst));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
