//! The order in which a breaker's listeners hear of the transitions of a
//! Redis-backed state.
//!
//! Every change of state this process's view sees happens under the slot's
//! lock, so the order of the changes is known there: each is queued here,
//! under that lock, and reported in that order by whichever thread finds it
//! at the head of the queue while nobody else is reporting (the storage's
//! listeners' thread for changes learnt in the background, a caller's thread
//! for its own). Nobody waits for anybody: a thread that finds someone
//! reporting leaves its change to them. Reports are serial, so a listener is
//! never told of two transitions at once, and a transition made from inside
//! a listener is reported after the one being reported.
//!
//! A transition made by one of this process's own operations is queued
//! *held*: its caller reports it, through
//! [`Storage::announce`](crate::Storage::announce), once the call's
//! `success` or `failure` listeners have run, and what is queued behind it
//! waits until then. A caller that leaves without taking its result (timed
//! out, or its future dropped) has the hold released; and a hold kept longer
//! than [`HOLD_LIMIT`] lapses, so a caller that never reports cannot stop
//! the reports behind it for good.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::state::State;

/// How long a held transition may wait for its caller before whoever
/// reports next reports it in its place. Callers report theirs right after
/// their `success` or `failure` listeners; only a caller that never does
/// (a storage wrapped without forwarding [`Storage::announce`]) or a
/// listener slower than this lets a hold lapse.
///
/// [`Storage::announce`]: crate::Storage::announce
pub(crate) const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// The changes seen and not yet reported, in the order they were seen.
#[derive(Debug)]
pub(crate) struct Told {
    /// The state the listeners know of once every queued change is reported.
    last: State,
    queue: VecDeque<Change>,
    /// Whether a thread is reporting now.
    busy: bool,
}

#[derive(Clone, Copy, Debug)]
struct Change {
    old: State,
    new: State,
    /// Set while the caller that made the change has not reported it.
    hold: Option<Hold>,
}

#[derive(Clone, Copy, Debug)]
struct Hold {
    /// The generation the transition left: one transition has it.
    key: u64,
    since: Instant,
}

impl Hold {
    fn lapsed(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= HOLD_LIMIT
    }
}

impl Told {
    /// Nothing to report; the listeners know of `state` (or need not hear
    /// of it).
    pub(crate) fn new(state: State) -> Self {
        Told {
            last: state,
            queue: VecDeque::new(),
            busy: false,
        }
    }

    /// The state the listeners know of once every queued change is reported.
    #[cfg(test)]
    pub(crate) fn last(&self) -> State {
        self.last
    }

    /// Takes `state` as known without reporting a change (before anyone can
    /// listen).
    pub(crate) fn assume(&mut self, state: State) {
        self.last = state;
    }

    /// Queues the change from [`last`](Self::last) to `new`, if it is one.
    pub(crate) fn push(&mut self, new: State) {
        if new != self.last {
            self.queue.push_back(Change {
                old: self.last,
                new,
                hold: None,
            });
            self.last = new;
        }
    }

    /// Queues this process's own transition `old -> new` (after the change
    /// from [`last`](Self::last) to `old`, if there is one), held until
    /// [`release`](Self::release) with `key`, the generation it left.
    pub(crate) fn hold(&mut self, old: State, new: State, key: u64, now: Instant) {
        self.push(old);
        if new != old {
            self.queue.push_back(Change {
                old,
                new,
                hold: Some(Hold { key, since: now }),
            });
            self.last = new;
        }
    }

    /// Lets the transition held under `key` be reported; `false` if none is
    /// held (it never was, or its hold lapsed and it has been reported).
    pub(crate) fn release(&mut self, key: u64) -> bool {
        let held = self
            .queue
            .iter_mut()
            .find(|c| c.hold.is_some_and(|h| h.key == key));
        match held {
            Some(change) => {
                change.hold = None;
                true
            }
            None => false,
        }
    }

    /// Whether a change can be reported now and nobody is reporting: the
    /// listeners' thread is needed.
    pub(crate) fn wants_reporter(&self, now: Instant) -> bool {
        !self.busy && self.head_ready(now)
    }

    fn head_ready(&self, now: Instant) -> bool {
        self.queue
            .front()
            .is_some_and(|c| c.hold.is_none_or(|h| h.lapsed(now)))
    }

    /// Becomes the reporter; `false` if another thread is reporting (it will
    /// report what is queued).
    pub(crate) fn start(&mut self) -> bool {
        !std::mem::replace(&mut self.busy, true)
    }

    /// The reporter's next change to report, taken off the queue. `None`
    /// (the queue is empty, or its head is held) ends the report: the next
    /// change becomes someone else's to report.
    pub(crate) fn next(&mut self, now: Instant) -> Option<(State, State)> {
        debug_assert!(self.busy, "only the reporter takes changes");
        if self.head_ready(now) {
            let change = self.queue.pop_front()?;
            return Some((change.old, change.new));
        }
        self.busy = false;
        None
    }

    /// Changes queued and not yet reported.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    /// Every change ready now, as one reporter takes them.
    fn report(told: &mut Told, now: Instant) -> Vec<(State, State)> {
        let mut heard = Vec::new();
        if told.start() {
            while let Some(change) = told.next(now) {
                heard.push(change);
            }
        }
        heard
    }

    #[test]
    fn changes_are_reported_in_the_order_seen() {
        let now = Instant::now();
        let mut told = Told::new(Closed);
        told.push(Open);
        told.push(Open); // no change
        told.push(HalfOpen);
        told.push(Closed);
        assert!(told.wants_reporter(now));
        assert_eq!(
            report(&mut told, now),
            [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
        );
        assert!(!told.wants_reporter(now));
        assert_eq!(told.queued(), 0);
    }

    #[test]
    fn changes_behind_a_held_one_wait_for_its_release() {
        let now = Instant::now();
        let mut told = Told::new(Closed);
        // This process's failure trips the circuit; its caller's `failure`
        // listeners are running when another process resets it.
        told.hold(Closed, Open, 7, now);
        told.push(Closed);
        assert_eq!(told.last(), Closed);
        assert!(!told.wants_reporter(now), "the head is held");
        assert_eq!(report(&mut told, now), []);
        assert!(told.release(7));
        assert!(!told.release(7), "released once");
        assert_eq!(report(&mut told, now), [(Closed, Open), (Open, Closed)]);
    }

    #[test]
    fn a_change_seen_before_a_held_one_is_reported_before_it() {
        let now = Instant::now();
        let mut told = Told::new(Closed);
        // The view learns of another process's trip, then of this process's
        // reset (which found the circuit open).
        told.push(Open);
        told.hold(Open, Closed, 3, now);
        assert!(told.wants_reporter(now));
        assert_eq!(report(&mut told, now), [(Closed, Open)]);
        assert!(!told.wants_reporter(now));
        assert!(told.release(3));
        assert_eq!(report(&mut told, now), [(Open, Closed)]);
    }

    #[test]
    fn a_hold_from_a_state_not_yet_told_first_tells_the_change_to_it() {
        let now = Instant::now();
        let mut told = Told::new(Closed);
        // A missed message: the own operation found the circuit open.
        told.hold(Open, HalfOpen, 4, now);
        assert_eq!(report(&mut told, now), [(Closed, Open)]);
        assert!(told.release(4));
        assert_eq!(report(&mut told, now), [(Open, HalfOpen)]);
    }

    #[test]
    fn an_operation_that_changes_no_state_holds_nothing() {
        let now = Instant::now();
        let mut told = Told::new(Open);
        told.hold(Open, Open, 9, now);
        assert_eq!(told.queued(), 0);
        assert!(!told.release(9));
    }

    #[test]
    fn held_changes_are_released_in_any_order_and_reported_in_theirs() {
        let now = Instant::now();
        let mut told = Told::new(Closed);
        told.hold(Closed, Open, 1, now);
        told.hold(Open, Closed, 2, now);
        told.push(Open);
        // The second caller reports first: nothing is ready.
        assert!(told.release(2));
        assert!(!told.wants_reporter(now));
        assert_eq!(report(&mut told, now), []);
        // The first caller's report takes every change behind its own.
        assert!(told.release(1));
        assert_eq!(
            report(&mut told, now),
            [(Closed, Open), (Open, Closed), (Closed, Open)]
        );
    }

    #[test]
    fn one_reporter_at_a_time_and_it_takes_what_is_queued_meanwhile() {
        let now = Instant::now();
        let mut told = Told::new(Closed);
        told.push(Open);
        assert!(told.start());
        assert_eq!(told.next(now), Some((Closed, Open)));
        // While the reporter tells the listeners, another thread queues a
        // change and releases its own: it cannot report.
        told.hold(Open, Closed, 5, now);
        assert!(!told.wants_reporter(now));
        assert!(told.release(5));
        assert!(!told.start(), "a second reporter");
        assert!(!told.wants_reporter(now));
        assert_eq!(told.next(now), Some((Open, Closed)));
        assert_eq!(told.next(now), None);
        // The report ended: the next change is someone else's.
        told.push(Open);
        assert!(told.wants_reporter(now));
        assert!(told.start());
    }

    #[test]
    fn a_hold_lapses_after_the_limit() {
        let now = Instant::now();
        let mut told = Told::new(Closed);
        told.hold(Closed, Open, 8, now);
        told.push(Closed);
        assert!(!told.wants_reporter(now + HOLD_LIMIT - Duration::from_millis(1)));
        let later = now + HOLD_LIMIT;
        assert!(told.wants_reporter(later));
        assert_eq!(report(&mut told, later), [(Closed, Open), (Open, Closed)]);
        // Its caller comes back: already reported, nothing to do.
        assert!(!told.release(8));
    }
}
