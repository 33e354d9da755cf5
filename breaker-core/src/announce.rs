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
//! # The protocol
//!
//! Each change of generation is handed here by the thread that made it, and
//! reported once the one before it has been: `last` is the generation the
//! last reported change left, and a change is *next* when its `from` is
//! `last`. Generations are compared for equality only (`to` of one change is
//! `from` of the next), never ordered, so their width does not matter.
//!
//! - **Its own turn.** A caller whose change is next, with nobody reporting,
//!   reports it itself: it becomes the *reporter*, moves `last` on and tells
//!   the listeners outside the lock. Reporting is serial, so a listener is
//!   never called for two transitions at once.
//! - **Waiting.** A caller whose change is not next registers it as *held*
//!   (keyed by `from`, so finding the next change is one hash lookup, never a
//!   scan) and waits for its turn: it re-checks a few times, then parks on a
//!   condition variable that every reporter signals when it stops. Its
//!   patience ([`PATIENCE`]) restarts whenever `last` moves, so callers queue
//!   behind listeners that are slow but working.
//! - **Giving up.** A caller that saw no progress for its whole patience (the
//!   thread that made the change before it is descheduled between its
//!   compare-and-swap and its report, or a listener blocks on this very
//!   thread) *leaves* its change: it stays queued, no longer held, and the
//!   caller returns. Whoever moves `last` up to it reports it: the late
//!   predecessor, the current reporter, or a waiter taking over. A change is
//!   never orphaned: a reporter stops only at a change that is missing
//!   (its owner will find it is its turn), held (its owner is woken) or left
//!   with a waiter present to take over (woken, it finds nobody reporting).
//! - **Re-entrance.** A transition a listener makes from inside
//!   `state_change` (`cb.reset()`) comes back here on the reporter's own
//!   thread: it is left queued without waiting, and reported after the
//!   current one.
//!
//! # Bounds
//!
//! - Each report is O(1): one lookup of `last` in a hash map.
//! - A caller reports its own change and, beyond it, the changes left
//!   queued (by callers that gave up and by its own listeners) that were
//!   there when it became the reporter or that its listeners made; past that
//!   allowance it hands the rest to a waiting caller. Only when nobody waits
//!   does it go on, and then only through changes left by callers that gave
//!   up, each of which waited a whole patience without progress first.
//! - Memory: the held changes are at most one per waiting thread; the left
//!   ones at most [`LEFT_MAX`]. A caller that gives up with the queue full
//!   keeps waiting instead, except when the change that is next is missing
//!   while nobody reports: then it *bridges* the gap (see [`Queue::bridge`]),
//!   reporting the missing change from its neighbours (the state the last
//!   report left, and the old state of the change after the gap: a
//!   transition the state machine can always make by hand, or nothing if
//!   they are equal). The missing change, when it arrives late, is
//!   recognised and passed over ([`SKIPPED_MAX`] of them are remembered).
//! - Panics: the first panic of `tell` is handed back to the caller once its
//!   reports are done; the others still run.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use crate::state::State;
use crate::storage::Applied;
use crate::sync::{current_thread, Condvar, Mutex, MutexGuard, ThreadId};

/// How long a caller waits for its turn without seeing any change reported
/// before it leaves its change for others to report.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const PATIENCE: Duration = Duration::from_millis(1);
/// At most this many changes are left queued at once (by callers that gave
/// up); see the module's *Bounds*.
pub(crate) const LEFT_MAX: usize = 1024;
/// How many bridged generations are remembered, so that their changes,
/// handed in late, are passed over.
const SKIPPED_MAX: usize = 64;
/// How many times a waiting caller re-checks (yielding in between) before
/// it parks. Under loom a waiter parks at once: every re-check would be
/// another interleaving to explore.
#[cfg(not(loom))]
const SPINS: u32 = 8;
#[cfg(loom)]
const SPINS: u32 = 0;

/// How long a caller waits for its turn without progress before leaving its
/// change to others.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(any(loom, test)), allow(dead_code))]
pub(crate) enum Patience {
    /// Wait as long as it takes (loom: it never times out).
    Forever,
    /// Wait this long (zero: leave at once if it is not this caller's turn).
    For(Duration),
}

#[cfg(loom)]
std::thread_local! {
    static LOOM_IMPATIENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Under loom: whether breakers this (OS) thread builds from now on leave a
/// change at once when it is not their turn (to model giving up and the
/// hand-over), or wait for it without a timeout (loom has no time: the
/// default). A loom model runs on the thread that checks it.
#[cfg(loom)]
#[doc(hidden)]
pub fn loom_impatient(on: bool) {
    LOOM_IMPATIENT.with(|i| i.set(on));
}

pub(crate) struct Announcer {
    queue: Mutex<Queue>,
    /// Signalled when a reporter stops (only if someone is parked).
    turn: Condvar,
    patience: Patience,
}

struct Queue {
    /// The generation the last reported change left.
    last: u64,
    /// The state the last reported change left, once one has been.
    state: Option<State>,
    /// The thread reporting now.
    reporter: Option<ThreadId>,
    /// How many left changes the reporter may still report for others
    /// before it hands over to a waiting caller.
    allowance: usize,
    /// Changes handed in but not reported yet, by `from`.
    queued: HashMap<u64, Queued>,
    /// How many of `queued` are left (not held).
    left: usize,
    /// The `from` of recently bridged changes, oldest first.
    skipped: VecDeque<u64>,
    /// Callers waiting for their turn (re-checking or parked).
    waiters: usize,
    /// Callers parked on the condition variable.
    parked: usize,
    /// Steps taken (lookups and checks), for the tests' bounds.
    #[cfg(all(test, not(loom)))]
    steps: u64,
    /// The most changes ever left queued at once.
    #[cfg(all(test, not(loom)))]
    most_left: usize,
}

#[derive(Clone, Copy)]
struct Queued {
    change: Change,
    /// Whether its caller waits to report it itself (else: left to others).
    held: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Change {
    from: u64,
    to: u64,
    old: State,
    new: State,
}

/// What a waiting caller does next.
enum Step {
    /// Re-check after yielding.
    Spin,
    /// Park until signalled, or for at most this long.
    Park(Option<Duration>),
    /// No progress for the whole patience.
    GiveUp,
}

/// A waiting caller's patience: how many re-checks and how long since
/// `last` last moved.
struct Wait {
    patience: Patience,
    seen: u64,
    spins: u32,
    since: Option<Instant>,
}

impl Wait {
    fn new(patience: Patience, last: u64) -> Self {
        Wait {
            patience,
            seen: last,
            spins: 0,
            since: None,
        }
    }

    fn restart(&mut self) {
        self.spins = 0;
        self.since = None;
    }

    // Under loom `SPINS` is 0.
    #[cfg_attr(loom, allow(clippy::absurd_extreme_comparisons))]
    fn next(&mut self, last: u64) -> Step {
        if last != self.seen {
            // Progress: patience starts over.
            self.seen = last;
            self.restart();
        }
        let patience = match self.patience {
            Patience::For(d) if d.is_zero() => return Step::GiveUp,
            Patience::For(d) => Some(d),
            Patience::Forever => None,
        };
        if self.spins < SPINS {
            self.spins += 1;
            return Step::Spin;
        }
        match patience {
            None => Step::Park(None),
            Some(patience) => {
                let waited = self.since.get_or_insert_with(Instant::now).elapsed();
                match patience.checked_sub(waited) {
                    Some(left) if !left.is_zero() => Step::Park(Some(left)),
                    _ => Step::GiveUp,
                }
            }
        }
    }
}

/// What a waiting caller found.
enum Turn {
    /// Nobody reports and the next change is its own, or left: it reports,
    /// first the bridged change if there is one.
    Go(Option<Change>),
    /// Its change needs nothing more from it: left to others, or bridged.
    Done,
}

impl Queue {
    fn step(&mut self) {
        #[cfg(all(test, not(loom)))]
        {
            self.steps += 1;
        }
    }

    /// Leaves `change` queued for whoever reports the one before it.
    fn leave(&mut self, change: Change) {
        self.queued.insert(
            change.from,
            Queued {
                change,
                held: false,
            },
        );
        self.left += 1;
        #[cfg(all(test, not(loom)))]
        {
            self.most_left = self.most_left.max(self.left);
        }
    }

    /// Whether the change from `from` was bridged already (forgetting it:
    /// each is handed in once).
    fn forget_skipped(&mut self, from: u64) -> bool {
        match self.skipped.iter().position(|&g| g == from) {
            Some(i) => {
                self.skipped.remove(i);
                true
            }
            None => false,
        }
    }

    /// The fallback of a full queue: the change from `last` is missing (not
    /// handed in) and nobody reports; if the change after it is queued,
    /// the missing one is made up from its neighbours, to be reported by
    /// the caller. Generations are consecutive, so the one after `last` is
    /// `last + 1`, or 0 where the generation wraps.
    fn bridge(&mut self) -> Option<Change> {
        let to = [self.last.wrapping_add(1), 0]
            .into_iter()
            .find(|g| self.queued.contains_key(g))?;
        let new = self.queued[&to].change.old;
        if self.skipped.len() == SKIPPED_MAX {
            self.skipped.pop_front();
        }
        self.skipped.push_back(self.last);
        Some(Change {
            from: self.last,
            to,
            old: self.state.unwrap_or(new),
            new,
        })
    }

    /// Takes the change that is next if the reporter may report it: its own
    /// or the bridged one first, then one left queued (within the
    /// allowance, or beyond it with nobody to hand over to). `None`: stop,
    /// the next one is missing, held by a waiting caller, or handed over.
    fn take_next(
        &mut self,
        own: &mut Option<Change>,
        bridged: &mut Option<Change>,
    ) -> Option<Change> {
        self.step();
        let last = self.last;
        if let Some(change) = bridged.take_if(|c| c.from == last) {
            return Some(change);
        }
        if let Some(change) = own.take_if(|c| c.from == last) {
            return Some(change);
        }
        match self.queued.get(&last) {
            Some(q) if !q.held => {
                if own.is_none() && self.allowance == 0 && self.waiters > 0 {
                    return None; // hand over to a waiting caller
                }
                self.allowance = self.allowance.saturating_sub(1);
                self.left -= 1;
                self.queued.remove(&last).map(|q| q.change)
            }
            _ => None,
        }
    }
}

impl Announcer {
    /// An announcer for a storage whose current generation is `generation`,
    /// in `state`.
    pub(crate) fn new(generation: u64, state: State) -> Self {
        #[cfg(not(loom))]
        let patience = Patience::For(PATIENCE);
        #[cfg(loom)]
        let patience = if LOOM_IMPATIENT.with(std::cell::Cell::get) {
            Patience::For(Duration::ZERO)
        } else {
            Patience::Forever
        };
        let announcer = Self::with_patience(generation, patience);
        announcer.lock().state = Some(state);
        announcer
    }

    /// An announcer whose callers wait `patience` for their turn.
    pub(crate) fn with_patience(generation: u64, patience: Patience) -> Self {
        Announcer {
            queue: Mutex::new(Queue {
                last: generation,
                state: None,
                reporter: None,
                allowance: 0,
                queued: HashMap::new(),
                left: 0,
                skipped: VecDeque::new(),
                waiters: 0,
                parked: 0,
                #[cfg(all(test, not(loom)))]
                steps: 0,
                #[cfg(all(test, not(loom)))]
                most_left: 0,
            }),
            turn: Condvar::new(),
            patience,
        }
    }

    /// Hands in what one operation did, and reports its change to `tell`
    /// once every change before it has been reported (see the module's
    /// protocol): by this caller, which may report changes others left
    /// before and after its own, or, if it gives up waiting, by whoever
    /// reports the one before it. The first panic of `tell` is handed back
    /// after the other reports.
    pub(crate) fn announce(
        &self,
        applied: &Applied,
        mut tell: impl FnMut(State, State) -> Result<(), Box<dyn Any + Send>>,
    ) -> Result<(), Box<dyn Any + Send>> {
        let (before, after) = (&applied.before, &applied.after);
        if before.generation == after.generation {
            return Ok(());
        }
        let change = Change {
            from: before.generation,
            to: after.generation,
            old: before.state,
            new: after.state,
        };
        let mut q = self.lock();
        let me = current_thread().id();
        if q.reporter == Some(me) {
            // A listener's transition: reported after the current one.
            q.leave(change);
            q.allowance += 1;
            return Ok(());
        }
        if !q.skipped.is_empty() && q.forget_skipped(change.from) {
            return Ok(());
        }
        let mut own = Some(change);
        let mut first_panic = None;
        let mut wait = Wait::new(self.patience, q.last);
        loop {
            let bridged;
            (q, bridged) = if q.reporter.is_none() && q.last == change.from {
                (q, None)
            } else {
                match self.wait_turn(q, change, &mut wait) {
                    (q, Turn::Go(bridged)) => (q, bridged),
                    (_, Turn::Done) => break,
                }
            };
            q = self.report(q, me, &mut own, bridged, &mut tell, &mut first_panic);
            if own.is_none() {
                break;
            }
        }
        first_panic.map_or(Ok(()), Err)
    }

    /// Waits, holding `change`, until nobody reports and either it is next
    /// or the next one is left for anyone to report; or gives up.
    fn wait_turn<'a>(
        &'a self,
        mut q: MutexGuard<'a, Queue>,
        change: Change,
        wait: &mut Wait,
    ) -> (MutexGuard<'a, Queue>, Turn) {
        let held = Queued { change, held: true };
        q.queued.insert(change.from, held);
        q.waiters += 1;
        let turn = loop {
            q.step();
            if q.reporter.is_none() {
                let last = q.last;
                if last == change.from || q.queued.get(&last).is_some_and(|n| !n.held) {
                    q.queued.remove(&change.from);
                    break Turn::Go(None);
                }
            }
            match wait.next(q.last) {
                Step::Spin => {
                    drop(q);
                    std::thread::yield_now();
                    q = self.lock();
                }
                Step::Park(timeout) => {
                    q.parked += 1;
                    q = match timeout {
                        None => self.turn.wait(q).unwrap_or_else(PoisonError::into_inner),
                        Some(d) => {
                            self.turn
                                .wait_timeout(q, d)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0
                        }
                    };
                    q.parked -= 1;
                }
                Step::GiveUp if q.left < LEFT_MAX => {
                    q.queued.remove(&change.from);
                    q.leave(change);
                    break Turn::Done;
                }
                Step::GiveUp => {
                    // Full: keep waiting, unless the next change is missing
                    // with nobody reporting (then nobody else will).
                    if q.reporter.is_none() && !q.queued.contains_key(&q.last) {
                        if let Some(bridged) = q.bridge() {
                            q.queued.remove(&change.from);
                            break Turn::Go(Some(bridged));
                        }
                    }
                    wait.restart();
                }
            }
        };
        q.waiters -= 1;
        (q, turn)
    }

    /// Reports, as the reporter, every change that is next in turn and its
    /// to report (see [`Queue::take_next`]), each outside the lock; then
    /// stops reporting and wakes the waiting callers.
    fn report<'a>(
        &'a self,
        mut q: MutexGuard<'a, Queue>,
        me: ThreadId,
        own: &mut Option<Change>,
        mut bridged: Option<Change>,
        tell: &mut impl FnMut(State, State) -> Result<(), Box<dyn Any + Send>>,
        first_panic: &mut Option<Box<dyn Any + Send>>,
    ) -> MutexGuard<'a, Queue> {
        q.reporter = Some(me);
        q.allowance = q.left;
        while let Some(change) = q.take_next(own, &mut bridged) {
            q.last = change.to;
            q.state = Some(change.new);
            if change.old != change.new {
                drop(q);
                if let Err(panic) = tell(change.old, change.new) {
                    first_panic.get_or_insert(panic);
                }
                q = self.lock();
            }
        }
        q.reporter = None;
        if q.parked > 0 {
            self.turn.notify_all();
        }
        q
    }

    /// How many callers wait for their turn now.
    #[cfg(all(test, not(loom)))]
    fn waiters(&self) -> usize {
        self.lock().waiters
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

    /// An announcer whose callers leave their change at once when it is not
    /// their turn (no timing in the single-threaded tests).
    fn impatient(generation: u64) -> Announcer {
        Announcer::with_patience(generation, Patience::For(Duration::ZERO))
    }

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
        let announcer = impatient(0);
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
        let announcer = impatient(0);
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
        let announcer = impatient(0);
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
        let announcer = impatient(0);
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

    /// The state after `g` changes of a breaker that alternates.
    fn alternating(g: u64) -> State {
        if g.is_multiple_of(2) {
            State::Closed
        } else {
            State::Open
        }
    }

    fn step(from: u64) -> Applied {
        change(from, alternating(from), alternating(from + 1))
    }

    /// The regression of issue 10 (item 3): a reporter no longer reports
    /// the changes others hand in while it reports. Two callers hand in
    /// theirs while the first one's listener runs; each then reports its
    /// own, in order, and the first reports only its own.
    #[test]
    fn a_reporter_hands_the_next_changes_to_their_waiting_callers() {
        let announcer = std::sync::Arc::new(Announcer::with_patience(0, Patience::Forever));
        let heard = std::sync::Arc::new(Mutex::new(Vec::new()));
        let record = |who: &'static str| {
            let heard = heard.clone();
            move |old, new| {
                heard.lock().unwrap().push((who, old, new));
                Ok(())
            }
        };
        let mut others = Vec::new();
        let first = record("first");
        announcer
            .announce(&step(0), |old, new| {
                for (from, who) in [(1, "second"), (2, "third")] {
                    let (announcer, mut tell) = (announcer.clone(), record(who));
                    others.push(std::thread::spawn(move || {
                        announcer.announce(&step(from), &mut tell).unwrap()
                    }));
                }
                // Both wait for their turn (no timing: they wait forever).
                while announcer.waiters() < 2 {
                    std::thread::yield_now();
                }
                first(old, new)
            })
            .unwrap();
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(
            *heard.lock().unwrap(),
            [
                ("first", State::Closed, State::Open),
                ("second", State::Open, State::Closed),
                ("third", State::Closed, State::Open),
            ]
        );
        let q = announcer.lock();
        assert_eq!((q.last, q.queued.len(), q.waiters), (3, 0, 0));
    }

    /// A huge backlog behind a change that is never handed in: the queue
    /// stays within [`LEFT_MAX`], the missing change is bridged from its
    /// neighbours, every transition is heard once and in order, the late
    /// change is passed over, and the work is linear in the changes.
    #[test]
    fn a_backlog_behind_a_missing_change_is_bounded_and_linear() {
        const N: u64 = 100_000;
        let announcer = impatient(0);
        let mut heard = Vec::new();
        let mut tell = |old, new| {
            heard.push((old, new));
            Ok(())
        };
        announcer.announce(&step(0), &mut tell).unwrap();
        // 1 -> 2 is missing; 2 -> 3, ..., N + 1 -> N + 2 are handed in.
        for from in 2..N + 2 {
            announcer.announce(&step(from), &mut tell).unwrap();
        }
        // The late change was bridged already: passed over.
        announcer
            .announce(&step(1), |_, _| panic!("reported twice"))
            .unwrap();
        let expected: Vec<_> = (0..N + 2)
            .map(|g| (alternating(g), alternating(g + 1)))
            .collect();
        assert_eq!(heard, expected);
        let q = announcer.lock();
        assert_eq!((q.last, q.queued.len(), q.left), (N + 2, 0, 0));
        assert_eq!(q.most_left, LEFT_MAX);
        assert!(q.steps <= 4 * N, "{} steps for {N} changes", q.steps);
        assert!(q.skipped.is_empty());
    }

    /// A listener that waits for a thread which makes a transition: that
    /// thread cannot report before the listener returns, so it gives up
    /// after its patience and its change is reported after the current one.
    #[test]
    fn a_listener_waiting_for_a_transition_on_another_thread_does_not_deadlock() {
        let announcer = Announcer::new(0, State::Closed);
        let mut heard = Vec::new();
        announcer
            .announce(&step(0), |old, new| {
                heard.push((old, new));
                if heard.len() == 1 {
                    std::thread::scope(|s| {
                        s.spawn(|| {
                            announcer
                                .announce(&step(1), |_, _| panic!("not its turn"))
                                .unwrap()
                        });
                    });
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(
            heard,
            [(State::Closed, State::Open), (State::Open, State::Closed)]
        );
    }

    /// A queue filled to [`LEFT_MAX`] behind a late change: the late caller
    /// reports its own change and every one left behind it.
    #[test]
    fn the_late_change_reports_a_full_queue_left_behind_it() {
        let announcer = impatient(0);
        for from in 1..=LEFT_MAX as u64 {
            announcer.announce(&step(from), |_, _| Ok(())).unwrap();
        }
        let mut heard = 0;
        announcer
            .announce(&step(0), |_, _| {
                heard += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(heard, LEFT_MAX + 1);
        assert_eq!(announcer.lock().most_left, LEFT_MAX);
    }
}
