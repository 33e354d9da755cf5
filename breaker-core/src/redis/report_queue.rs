//! The queue of transitions a breaker's listeners have yet to hear, for a
//! Redis-backed state.
//!
//! Every change of state this process's view sees happens under the slot's
//! lock, so the order of the changes is known there: each is queued here,
//! under that lock, and reported in that order by whichever thread finds it
//! at the head of the queue while nobody else is reporting (the storage's
//! listeners' thread for changes learnt in the background, a caller's thread
//! for its own). Nobody waits for anybody: a thread that finds someone
//! reporting leaves its change to them. Reports are serial, so a listener
//! never hears of two transitions at once, and a transition made from
//! inside a listener is reported after the one being reported.
//!
//! A transition made by one of this process's own operations is queued for
//! its *caller*: the caller reports it, through
//! [`Storage::announce`](crate::Storage::announce), once the call's
//! `success` or `failure` listeners have run, and what is queued behind it
//! waits until then. A caller that leaves without taking its result (timed
//! out, or its future dropped) releases it to whoever reports next; and a
//! transition left waiting for its caller longer than [`CALLER_TIMEOUT`] is
//! reported without it, so a caller that never reports cannot stop the
//! reports behind it for good.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::state::State;

/// How long a transition may wait for its caller before whoever reports
/// next reports it in its place. Callers report theirs right after their
/// `success` or `failure` listeners; only a caller that never does (a
/// storage wrapped without forwarding [`Storage::announce`]) or a listener
/// slower than this runs out of it.
///
/// [`Storage::announce`]: crate::Storage::announce
pub(crate) const CALLER_TIMEOUT: Duration = Duration::from_secs(10);

/// The changes seen and not yet reported, in the order they were seen.
#[derive(Debug)]
pub(crate) struct ReportQueue {
    /// The state the listeners know of once every queued change is reported.
    known: State,
    queue: VecDeque<Change>,
    /// Whether a thread is reporting now.
    busy: bool,
}

#[derive(Clone, Copy, Debug)]
struct Change {
    old: State,
    new: State,
    /// Set while the caller that made the change has not reported it.
    caller: Option<Caller>,
}

#[derive(Clone, Copy, Debug)]
struct Caller {
    /// The generation the transition left: one transition has it.
    generation: u64,
    since: Instant,
}

impl Caller {
    fn gave_up(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= CALLER_TIMEOUT
    }
}

impl ReportQueue {
    /// Nothing to report; the listeners know of `state` (or need not hear
    /// of it).
    pub(crate) fn new(state: State) -> Self {
        ReportQueue {
            known: state,
            queue: VecDeque::new(),
            busy: false,
        }
    }

    /// The state the listeners know of once every queued change is reported.
    pub(crate) fn known(&self) -> State {
        self.known
    }

    /// Takes `state` as known without reporting a change (before anyone can
    /// listen).
    pub(crate) fn set_known(&mut self, state: State) {
        self.known = state;
    }

    /// Queues the change from the known state to `new`, if it is one.
    pub(crate) fn push(&mut self, new: State) {
        if new != self.known {
            self.queue.push_back(Change {
                old: self.known,
                new,
                caller: None,
            });
            self.known = new;
        }
    }

    /// Queues this process's own transition `old -> new` (after the change
    /// from the known state to `old`, if there is one), left to its caller
    /// until [`release`](Self::release) with `generation`, the generation
    /// the transition left.
    pub(crate) fn push_own(&mut self, old: State, new: State, generation: u64, now: Instant) {
        self.push(old);
        if new != old {
            self.queue.push_back(Change {
                old,
                new,
                caller: Some(Caller {
                    generation,
                    since: now,
                }),
            });
            self.known = new;
        }
    }

    /// Lets the transition left to the caller of `generation` be reported;
    /// `false` if none waits for it (none ever did, or it waited too long
    /// and has been reported).
    pub(crate) fn release(&mut self, generation: u64) -> bool {
        let waiting = self
            .queue
            .iter_mut()
            .find(|c| c.caller.is_some_and(|h| h.generation == generation));
        match waiting {
            Some(change) => {
                change.caller = None;
                true
            }
            None => false,
        }
    }

    /// Whether a change can be reported now and nobody is reporting: the
    /// listeners' thread is needed.
    pub(crate) fn needs_reporter(&self, now: Instant) -> bool {
        !self.busy && self.head_ready(now)
    }

    fn head_ready(&self, now: Instant) -> bool {
        self.queue
            .front()
            .is_some_and(|c| c.caller.is_none_or(|h| h.gave_up(now)))
    }

    /// Becomes the reporter; `false` if another thread is reporting (it will
    /// report what is queued).
    pub(crate) fn start_report(&mut self) -> bool {
        !std::mem::replace(&mut self.busy, true)
    }

    /// The reporter's next change to report, taken off the queue. `None`
    /// (the queue is empty, or its head waits for its caller) ends the report: the next
    /// change becomes someone else's to report.
    pub(crate) fn next_change(&mut self, now: Instant) -> Option<(State, State)> {
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
    fn report(queue: &mut ReportQueue, now: Instant) -> Vec<(State, State)> {
        let mut heard = Vec::new();
        if queue.start_report() {
            while let Some(change) = queue.next_change(now) {
                heard.push(change);
            }
        }
        heard
    }

    #[test]
    fn changes_are_reported_in_the_order_seen() {
        let now = Instant::now();
        let mut queue = ReportQueue::new(Closed);
        queue.push(Open);
        queue.push(Open); // no change
        queue.push(HalfOpen);
        queue.push(Closed);
        assert!(queue.needs_reporter(now));
        assert_eq!(
            report(&mut queue, now),
            [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
        );
        assert!(!queue.needs_reporter(now));
        assert_eq!(queue.queued(), 0);
    }

    #[test]
    fn changes_behind_an_own_one_wait_for_its_caller() {
        let now = Instant::now();
        let mut queue = ReportQueue::new(Closed);
        // This process's failure trips the circuit; its caller's `failure`
        // listeners are running when another process resets it.
        queue.push_own(Closed, Open, 7, now);
        queue.push(Closed);
        assert_eq!(queue.known(), Closed);
        assert!(!queue.needs_reporter(now), "the head waits for its caller");
        assert_eq!(report(&mut queue, now), []);
        assert!(queue.release(7));
        assert!(!queue.release(7), "released once");
        assert_eq!(report(&mut queue, now), [(Closed, Open), (Open, Closed)]);
    }

    #[test]
    fn a_change_seen_before_an_own_one_is_reported_before_it() {
        let now = Instant::now();
        let mut queue = ReportQueue::new(Closed);
        // The view learns of another process's trip, then of this process's
        // reset (which found the circuit open).
        queue.push(Open);
        queue.push_own(Open, Closed, 3, now);
        assert!(queue.needs_reporter(now));
        assert_eq!(report(&mut queue, now), [(Closed, Open)]);
        assert!(!queue.needs_reporter(now));
        assert!(queue.release(3));
        assert_eq!(report(&mut queue, now), [(Open, Closed)]);
    }

    #[test]
    fn an_own_change_from_a_state_not_yet_known_first_reports_the_change_to_it() {
        let now = Instant::now();
        let mut queue = ReportQueue::new(Closed);
        // A missed message: the own operation found the circuit open.
        queue.push_own(Open, HalfOpen, 4, now);
        assert_eq!(report(&mut queue, now), [(Closed, Open)]);
        assert!(queue.release(4));
        assert_eq!(report(&mut queue, now), [(Open, HalfOpen)]);
    }

    #[test]
    fn an_operation_that_changes_no_state_queues_nothing() {
        let now = Instant::now();
        let mut queue = ReportQueue::new(Open);
        queue.push_own(Open, Open, 9, now);
        assert_eq!(queue.queued(), 0);
        assert!(!queue.release(9));
    }

    #[test]
    fn own_changes_are_released_in_any_order_and_reported_in_theirs() {
        let now = Instant::now();
        let mut queue = ReportQueue::new(Closed);
        queue.push_own(Closed, Open, 1, now);
        queue.push_own(Open, Closed, 2, now);
        queue.push(Open);
        // The second caller reports first: nothing is ready.
        assert!(queue.release(2));
        assert!(!queue.needs_reporter(now));
        assert_eq!(report(&mut queue, now), []);
        // The first caller's report takes every change behind its own.
        assert!(queue.release(1));
        assert_eq!(
            report(&mut queue, now),
            [(Closed, Open), (Open, Closed), (Closed, Open)]
        );
    }

    #[test]
    fn one_reporter_at_a_time_and_it_takes_what_is_queued_meanwhile() {
        let now = Instant::now();
        let mut queue = ReportQueue::new(Closed);
        queue.push(Open);
        assert!(queue.start_report());
        assert_eq!(queue.next_change(now), Some((Closed, Open)));
        // While the reporter tells the listeners, another thread queues a
        // change and releases its own: it cannot report.
        queue.push_own(Open, Closed, 5, now);
        assert!(!queue.needs_reporter(now));
        assert!(queue.release(5));
        assert!(!queue.start_report(), "a second reporter");
        assert!(!queue.needs_reporter(now));
        assert_eq!(queue.next_change(now), Some((Open, Closed)));
        assert_eq!(queue.next_change(now), None);
        // The report ended: the next change is someone else's.
        queue.push(Open);
        assert!(queue.needs_reporter(now));
        assert!(queue.start_report());
    }

    #[test]
    fn an_own_change_is_reported_without_its_caller_after_the_timeout() {
        let now = Instant::now();
        let mut queue = ReportQueue::new(Closed);
        queue.push_own(Closed, Open, 8, now);
        queue.push(Closed);
        assert!(!queue.needs_reporter(now + CALLER_TIMEOUT - Duration::from_millis(1)));
        let later = now + CALLER_TIMEOUT;
        assert!(queue.needs_reporter(later));
        assert_eq!(report(&mut queue, later), [(Closed, Open), (Open, Closed)]);
        // Its caller comes back: already reported, nothing to do.
        assert!(!queue.release(8));
    }
}
