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
//! No executor is needed: one thread of the breaker's own, started on first
//! use, polls these futures, each time they are woken. A waker must be
//! cheap and must not poll in place: a storage may wake a future while it
//! holds a lock the future's next poll takes (the Redis storage's answer
//! hand-off does), so polling on the waking thread could deadlock it.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Wake, Waker};
use std::thread;

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

/// Waiting to be woken.
const IDLE: u8 = 0;
/// Woken: sent to the worker, which will poll it.
const SCHEDULED: u8 = 1;
/// The worker is polling it.
const POLLING: u8 = 2;
/// Woken while the worker polls it: the worker polls it again.
const WOKEN: u8 = 3;
/// The future has finished.
const DONE: u8 = 4;

/// A future driven by its own wake-ups.
struct Task {
    state: AtomicU8,
    future: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

/// Runs `future` to completion without an executor: polled once here (the
/// storage has often answered already, and then it is done at once), then
/// on the worker thread each time it is woken.
pub(crate) fn spawn(future: Pin<Box<dyn Future<Output = ()> + Send>>) {
    let task = Arc::new(Task {
        state: AtomicU8::new(SCHEDULED),
        future: Mutex::new(Some(future)),
    });
    task.run();
}

/// Hands `task` to the worker thread, starting it on first use. If no
/// thread can be started, the task is polled here instead.
fn schedule(task: Arc<Task>) {
    static WORKER: OnceLock<Option<Sender<Arc<Task>>>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (send, receive) = channel::<Arc<Task>>();
        let started = thread::Builder::new()
            .name("breaker-detach".into())
            .spawn(move || {
                while let Ok(task) = receive.recv() {
                    task.run();
                }
            });
        started.ok().map(|_| send)
    });
    match worker {
        Some(send) => {
            if let Err(unsent) = send.send(task) {
                unsent.0.run();
            }
        }
        None => task.run(),
    }
}

impl Task {
    /// Polls the future until it is pending with no wake-up in between, or
    /// finished. Called for a `SCHEDULED` task: by `spawn`, then by the
    /// worker.
    fn run(self: Arc<Self>) {
        self.state.store(POLLING, Ordering::Release);
        let waker = Waker::from(Arc::clone(&self));
        let mut cx = Context::from_waker(&waker);
        loop {
            let mut slot = self.future.lock().unwrap_or_else(PoisonError::into_inner);
            let finished = match slot.as_mut() {
                // A panic here would end the worker: it is caught and the
                // future dropped, as a spawned task's would be.
                Some(future) => catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)))
                    .map_or(true, |polled| polled.is_ready()),
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

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => SCHEDULED,
                POLLING => WOKEN,
                _ => return,
            };
            match self
                .state
                .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next == SCHEDULED => return schedule(self),
                Ok(_) => return,
                Err(actual) => state = actual,
            }
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
    fn a_spawned_future_runs_to_completion_each_time_it_is_woken() {
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = Arc::new(Mutex::new(None::<Waker>));
        let polls = Arc::new(AtomicUsize::new(0));
        let (done, finished) = std::sync::mpsc::channel();
        let gate = Gate {
            open: Arc::clone(&open),
            waker: Arc::clone(&waker),
            polls: Arc::clone(&polls),
        };
        spawn(Box::pin(async move {
            gate.await;
            done.send(()).unwrap();
        }));
        // Polled once by the worker: pending, with its waker left behind.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let wake = loop {
            if let Some(wake) = waker.lock().unwrap().take() {
                break wake;
            }
            assert!(std::time::Instant::now() < deadline, "never polled");
            std::thread::yield_now();
        };
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        open.store(true, Ordering::SeqCst);
        // Woken while the waker's owner holds a lock the future does not
        // take: the worker, not this thread, polls it again.
        wake.wake();
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("finished once woken");
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
