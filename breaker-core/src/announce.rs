//! Telling listeners of the memory storage's transitions in the order they
//! were committed.
//!
//! Every change of generation is one compare-and-swap of the state word, so
//! the generations order the transitions exactly. But the thread that made a
//! transition tells the listeners after its compare-and-swap, and two threads
//! racing (a failure that trips and a `reset()`, say) could tell them in the
//! opposite order: closed → open heard after open → closed. (The loom model
//! `a_listener_hears_each_transition_once` found it.)
//!
//! So each change of generation is handed here, and reported only once the
//! one before it has been: whichever thread finds the next change in order
//! reports it and every change queued behind it, outside any lock. Nobody
//! waits: a change whose predecessor has not been handed in yet stays queued
//! and its predecessor's thread reports it. Reporting is serial, so a
//! listener is never called for two transitions at once, and a transition
//! made from inside a listener is reported after the one being reported.

use std::any::Any;
use std::sync::PoisonError;

use crate::state::State;
use crate::storage::Applied;
use crate::sync::{Mutex, MutexGuard};

/// How many queued changes are kept without allocating; beyond it the queue
/// grows. (Changes queue only while their predecessor's thread is between its
/// compare-and-swap and its report.)
const INLINE: usize = 8;
/// A queue this long means a change was never handed in (a bug): report
/// what is queued rather than hold it forever.
const STALLED: usize = 4096;

pub(crate) struct Announcer {
    queue: Mutex<Queue>,
}

struct Queue {
    /// The generation the last reported change left.
    last: u64,
    /// Changes waiting for an earlier one to be reported.
    waiting: Vec<Change>,
    /// Whether a thread is reporting now.
    busy: bool,
}

#[derive(Clone, Copy)]
struct Change {
    from: u64,
    to: u64,
    old: State,
    new: State,
}

impl Announcer {
    /// An announcer for a storage whose current generation is `generation`.
    pub(crate) fn new(generation: u64, _state: crate::state::State) -> Self {
        Announcer {
            queue: Mutex::new(Queue {
                last: generation,
                waiting: Vec::with_capacity(INLINE),
                busy: false,
            }),
        }
    }

    /// Hands in what one operation did, and reports to `tell` every change
    /// that is now next in order (nothing, if another thread is reporting
    /// or the change before this one has not been handed in yet: that
    /// thread reports it). The first panic of `tell` is handed back.
    pub(crate) fn announce(
        &self,
        applied: &Applied,
        mut tell: impl FnMut(State, State) -> Result<(), Box<dyn Any + Send>>,
    ) -> Result<(), Box<dyn Any + Send>> {
        let (before, after) = (&applied.before, &applied.after);
        if before.generation == after.generation {
            return Ok(());
        }
        let mut queue = self.lock();
        queue.waiting.push(Change {
            from: before.generation,
            to: after.generation,
            old: before.state,
            new: after.state,
        });
        if queue.busy {
            return Ok(());
        }
        queue.busy = true;
        let mut first_panic = None;
        loop {
            let last = queue.last;
            let next = match queue.waiting.iter().position(|c| c.from == last) {
                Some(i) => i,
                None if queue.waiting.len() >= STALLED => 0,
                None => break,
            };
            let change = queue.waiting.swap_remove(next);
            queue.last = change.to;
            drop(queue);
            if change.old != change.new {
                if let Err(panic) = tell(change.old, change.new) {
                    first_panic.get_or_insert(panic);
                }
            }
            queue = self.lock();
        }
        queue.busy = false;
        drop(queue);
        first_panic.map_or(Ok(()), Err)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the lock is held.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::state::{Outcome, Snapshot};

    fn change(from: u64, old: State, new: State) -> Applied {
        let snap = |generation, state| Snapshot {
            state,
            generation,
            ..Snapshot::INITIAL
        };
        Applied {
            before: snap(from, old),
            after: snap(from + 1, new),
            outcome: Outcome::Done,
        }
    }

    #[test]
    fn a_change_handed_in_early_waits_for_the_one_before_it() {
        let announcer = Announcer::new(0, State::Closed);
        let mut heard = Vec::new();
        let mut tell = |old, new| {
            heard.push((old, new));
            Ok(())
        };
        // The reset (generation 1 -> 2) is handed in before the trip (0 -> 1).
        announcer
            .announce(&change(1, State::Open, State::Closed), &mut tell)
            .unwrap();
        announcer
            .announce(&change(0, State::Closed, State::Open), &mut tell)
            .unwrap();
        assert_eq!(
            heard,
            [(State::Closed, State::Open), (State::Open, State::Closed)]
        );
    }

    #[test]
    fn a_generation_without_a_change_of_state_is_passed_over_silently() {
        let announcer = Announcer::new(0, State::Closed);
        let mut heard = Vec::new();
        for applied in [
            change(0, State::Closed, State::Open),
            change(1, State::Open, State::Open), // open() while open
            change(2, State::Open, State::Closed),
        ] {
            announcer
                .announce(&applied, |old, new| {
                    heard.push((old, new));
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(
            heard,
            [(State::Closed, State::Open), (State::Open, State::Closed)]
        );
    }

    #[test]
    fn a_change_made_while_reporting_is_reported_after_the_current_one() {
        let announcer = Announcer::new(0, State::Closed);
        let heard = std::cell::RefCell::new(Vec::new());
        let mut nested = true;
        announcer
            .announce(&change(0, State::Closed, State::Open), |old, new| {
                heard.borrow_mut().push((old, new));
                if std::mem::take(&mut nested) {
                    // A listener resets the breaker: queued, not reported yet.
                    announcer
                        .announce(&change(1, State::Open, State::Closed), |_, _| {
                            panic!("reported inside the current report")
                        })
                        .unwrap();
                    assert_eq!(heard.borrow().len(), 1);
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(
            *heard.borrow(),
            [(State::Closed, State::Open), (State::Open, State::Closed)]
        );
    }

    #[test]
    fn the_first_panic_is_handed_back_after_every_report() {
        let announcer = Announcer::new(0, State::Closed);
        announcer
            .announce(&change(1, State::Open, State::Closed), |_, _| Ok(()))
            .unwrap();
        let mut told = 0;
        let result = announcer.announce(&change(0, State::Closed, State::Open), |_, _| {
            told += 1;
            Err(Box::new(told))
        });
        assert_eq!(told, 2);
        assert_eq!(result.unwrap_err().downcast_ref::<i32>(), Some(&1));
    }
}
