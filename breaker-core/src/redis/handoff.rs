//! Handing one result from the background task to the caller that waits for
//! it, blocking (`apply`) or as a future (`apply_async`, on any executor),
//! with a verdict on who reports the transition when the caller has left.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::view::Slot;
use crate::storage::Applied;

/// What the background task found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    /// Redis applied the operation.
    Applied(Applied),
    /// Redis could not be used (down, slow, or the value is corrupt); the
    /// slot is on its fallback now.
    Unavailable,
}

#[derive(Default)]
struct State {
    answer: Option<Answer>,
    /// The caller stopped waiting (timed out, or its future was dropped).
    abandoned: bool,
    /// The task ended, with or without an answer.
    closed: bool,
    waker: Option<Waker>,
}

/// A one-shot meeting point between the task and the caller.
#[derive(Default)]
pub(crate) struct Handoff {
    state: Mutex<State>,
    ready: Condvar,
}

impl Handoff {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Gives the answer to the caller; `false` if it has already left, in
    /// which case it will never see the answer.
    pub(crate) fn deliver(&self, answer: Answer) -> bool {
        let mut s = self.state.lock();
        if s.abandoned {
            return false;
        }
        s.answer = Some(answer);
        s.closed = true;
        self.wake(&mut s);
        true
    }

    /// The task ends without an answer (its runtime shut down).
    pub(crate) fn close(&self) {
        let mut s = self.state.lock();
        s.closed = true;
        self.wake(&mut s);
    }

    fn wake(&self, s: &mut State) {
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        self.ready.notify_all();
    }

    /// Blocks until the answer comes or `deadline` passes; `None` means the
    /// caller gave up (and the task will learn so from [`deliver`](Self::deliver)).
    pub(crate) fn wait_until(&self, deadline: Instant) -> Option<Answer> {
        let mut s = self.state.lock();
        while !s.closed {
            if self.ready.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        let answer = s.answer.take();
        if answer.is_none() {
            s.abandoned = true;
        }
        answer
    }
}

/// The caller's side as a future; it needs no particular executor.
pub(crate) struct AnswerFuture {
    pub(crate) handoff: Arc<Handoff>,
    pub(crate) slot: Arc<Slot>,
    pub(crate) op_id: u64,
    pub(crate) done: bool,
}

impl Future for AnswerFuture {
    type Output = Option<Answer>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.handoff.state.lock();
        if let Some(answer) = s.answer.take() {
            drop(s);
            self.done = true;
            return Poll::Ready(Some(answer));
        }
        if s.closed {
            s.abandoned = true;
            drop(s);
            self.done = true;
            return Poll::Ready(None);
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for AnswerFuture {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped before taking an answer: the breaker will not report the
        // transition it may carry, so the storage does.
        let untaken = {
            let mut s = self.handoff.state.lock();
            s.abandoned = true;
            s.answer.take()
        };
        match untaken {
            Some(Answer::Applied(applied)) => {
                self.slot.announce_lost(&applied);
                self.slot.core.spawn_release_orphan(&self.slot, applied);
            }
            _ => self.slot.abandon(self.op_id),
        }
    }
}
