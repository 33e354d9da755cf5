//! One breaker's local view of its shared state, kept current by the replies
//! to its own operations, by pub/sub messages and by periodic reads; its
//! fallback state machine for when Redis cannot be used; and who tells the
//! listeners about which transition.
//!
//! # Which transitions the storage reports
//!
//! A breaker reports the transitions its own operations make (from
//! [`Applied`]). The storage reports, through [`Binding::notify_transition`],
//! every other change of the state this process sees: transitions made by
//! other processes, changes found by a read, and switches to and from the
//! fallback state. It keeps `told`, the state the listeners know of, so that
//! each change is reported once, by one of the two.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};

use super::codec::Stored;
use super::hub::Core;
use crate::memory::MemoryStorage;
use crate::state::{Limits, Op, Outcome, Snapshot, State};
use crate::storage::{Applied, Binding, Storage};

/// Set on every generation handed out by the fallback state machine, so a
/// result is applied where its call was admitted: a call admitted on the
/// fallback never counts in Redis, nor one admitted from Redis on the
/// fallback.
pub(crate) const FALLBACK_TAG: u64 = 1 << 62;

pub(crate) struct Slot {
    pub(crate) name: Arc<str>,
    pub(crate) key: String,
    pub(crate) core: Arc<Core>,
    binding: Binding,
    fallback_state: State,
    /// True while calls are decided by `fallback`.
    on_fallback: AtomicBool,
    /// The shared state, in the server's frame.
    view: ArcSwap<Stored>,
    /// Server clock minus the breaker's clock, in milliseconds.
    offset_ms: AtomicI64,
    fallback: MemoryStorage,
    inner: Mutex<Inner>,
    ready: Condvar,
}

struct Inner {
    /// The state the listeners know of (or will, from the breaker).
    told: State,
    /// The view has been read from Redis since the slot was made.
    synced: bool,
    /// The stored value is not a valid state.
    corrupt: bool,
    /// Redis is unreachable (or too slow).
    down: bool,
    /// `bind` has returned: the fallback state may have been seen.
    observable: bool,
    /// `bind` may stop waiting.
    ready: bool,
    /// Consecutive reads that found an older sequence than the view's.
    regressions: u8,
    /// Operations whose callers wait for them, with the transition a pub/sub
    /// message already showed for them.
    waiting: HashMap<u64, Option<(State, State)>>,
    /// The best clock-offset sample: its round trip and when it was taken.
    offset_rtt: Duration,
    offset_at: Option<Instant>,
}

impl Slot {
    pub(crate) fn new(core: Arc<Core>, binding: Binding, key: String, down: bool) -> Self {
        let fallback_state = core.cfg.fallback_state;
        let slot = Slot {
            name: binding.name().into(),
            key,
            binding,
            fallback_state,
            on_fallback: AtomicBool::new(true),
            view: ArcSwap::from_pointee(Stored {
                state: State::Closed,
                generation: 0,
                fail_counter: 0,
                success_counter: 0,
                trial_until_ms: 0,
                opened_at_ms: 0,
                seq: 0,
            }),
            offset_ms: AtomicI64::new(0),
            fallback: MemoryStorage::new(),
            inner: Mutex::new(Inner {
                told: fallback_state,
                synced: false,
                corrupt: false,
                down,
                observable: false,
                ready: down && core.has_failed(),
                regressions: 0,
                waiting: HashMap::new(),
                offset_rtt: Duration::MAX,
                offset_at: None,
            }),
            ready: Condvar::new(),
            core,
        };
        slot.seed_fallback();
        slot
    }

    /// The breaker's clock.
    pub(crate) fn now(&self) -> Duration {
        self.binding.now()
    }

    /// Whether calls are decided locally now.
    #[inline]
    pub(crate) fn on_fallback(&self) -> bool {
        self.on_fallback.load(Ordering::Acquire)
    }

    /// Whether Redis is reachable but the stored value is corrupt: a manual
    /// transition, which overwrites it, goes to Redis.
    pub(crate) fn only_corrupt(&self) -> bool {
        let inner = self.inner.lock();
        inner.corrupt && !inner.down
    }

    // ---- reading ----

    /// The state as this process knows it, without I/O.
    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        if self.on_fallback() {
            return tag(self.fallback.load());
        }
        let v = self.view.load();
        let mut snap = self.local(&v);
        if snap.trial {
            // A lease that ran out frees the trial place without a write.
            let until = shift(v.trial_until_ms, self.offset_ms.load(Ordering::Relaxed));
            snap.trial = until > self.now();
        }
        snap
    }

    /// `s` in the breaker's frame: times moved by the clock offset.
    fn local(&self, s: &Stored) -> Snapshot {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let mut snap = s.snapshot();
        snap.opened_at = (s.opened_at_ms != 0).then(|| shift(s.opened_at_ms, offset));
        snap
    }

    /// Records a clock sample: the server's time `now_us`, read between
    /// `sent` and `received` on the breaker's clock. Samples with the shortest
    /// round trip win; the estimate is renewed at least every 5 seconds.
    pub(crate) fn sample_clock(&self, now_us: u64, sent: Duration, received: Duration) {
        let rtt = received.saturating_sub(sent);
        let mut inner = self.inner.lock();
        let stale = inner
            .offset_at
            .is_none_or(|at| at.elapsed() > Duration::from_secs(5));
        if !stale && rtt > inner.offset_rtt + Duration::from_millis(1) {
            return;
        }
        let mid_us = (sent.as_micros() + received.as_micros()) / 2;
        let offset = (i128::from(now_us) - mid_us as i128) / 1_000;
        self.offset_ms.store(
            offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            Ordering::Relaxed,
        );
        inner.offset_rtt = rtt;
        inner.offset_at = Some(Instant::now());
    }

    /// An [`Applied`] in the breaker's frame.
    pub(crate) fn applied(&self, before: &Stored, after: &Stored, outcome: Outcome) -> Applied {
        Applied {
            before: self.local(before),
            after: self.local(after),
            outcome,
        }
    }

    /// Nothing changes: the result of a call admitted where the state no
    /// longer is (on the fallback, or before it).
    pub(crate) fn stale(&self) -> Applied {
        let snap = self.load();
        Applied {
            before: snap,
            after: snap,
            outcome: Outcome::Stale,
        }
    }

    /// Frees the trial place of `generation` in the view (its cancellation
    /// is on its way to Redis), as `Op::Cancel` would.
    pub(crate) fn release_trial(&self, generation: u64) -> Applied {
        let _inner = self.inner.lock();
        let v = **self.view.load();
        if v.state == State::HalfOpen && v.generation == generation && v.trial_until_ms != 0 {
            let after = Stored {
                trial_until_ms: 0,
                ..v
            };
            self.view.store(Arc::new(after));
            self.applied(&v, &after, Outcome::Done)
        } else {
            self.applied(&v, &v, Outcome::Stale)
        }
    }

    // ---- the fallback state machine ----

    fn seed_fallback(&self) {
        let limits = Limits {
            fail_max: 1,
            success_threshold: 1,
            reset_timeout: Duration::ZERO,
            now: self.now(),
        };
        self.fallback.apply(Op::Force(self.fallback_state), &limits);
    }

    /// Applies `op` on the fallback state machine, as the breaker's own
    /// operation (it reports the transition).
    pub(crate) fn apply_fallback(&self, op: Op, limits: &Limits) -> Applied {
        let untagged = match op {
            Op::Success { generation, trial } if generation & FALLBACK_TAG != 0 => Op::Success {
                generation: generation & !FALLBACK_TAG,
                trial,
            },
            Op::Failure { generation, trial } if generation & FALLBACK_TAG != 0 => Op::Failure {
                generation: generation & !FALLBACK_TAG,
                trial,
            },
            Op::Cancel { generation } if generation & FALLBACK_TAG != 0 => Op::Cancel {
                generation: generation & !FALLBACK_TAG,
            },
            Op::Success { .. } | Op::Failure { .. } | Op::Cancel { .. } => return self.stale(),
            other => other,
        };
        let mut inner = self.inner.lock();
        let applied = self.fallback.apply(untagged, limits);
        if self.on_fallback() {
            inner.told = applied.after.state;
        }
        Applied {
            before: tag(applied.before),
            after: tag(applied.after),
            outcome: match applied.outcome {
                Outcome::Admitted { generation, trial } => Outcome::Admitted {
                    generation: generation | FALLBACK_TAG,
                    trial,
                },
                other => other,
            },
        }
    }

    // ---- modes ----

    /// Switches to or from the fallback as the flags say, reporting the
    /// change of state it makes.
    fn settle(&self, inner: &mut Inner) {
        let want = !inner.synced || inner.corrupt || inner.down;
        if !want {
            self.set_ready(inner);
        }
        if want == self.on_fallback() {
            return;
        }
        let new = if want {
            self.seed_fallback();
            self.on_fallback.store(true, Ordering::Release);
            self.fallback_state
        } else {
            self.on_fallback.store(false, Ordering::Release);
            self.view.load().state
        };
        self.tell(inner, new);
    }

    /// Reports a change of state to `new` unless the listeners know it.
    fn tell(&self, inner: &mut Inner, new: State) {
        if inner.told != new {
            if inner.observable {
                self.core.notify(&self.binding, inner.told, new);
            }
            inner.told = new;
        }
    }

    fn set_ready(&self, inner: &mut Inner) {
        if !inner.ready {
            inner.ready = true;
            self.ready.notify_all();
        }
    }

    /// Redis became unreachable (`true`) or reachable again (`false`).
    pub(crate) fn set_down(&self, down: bool, epoch: u64) {
        let mut inner = self.inner.lock();
        if !down && self.core.epoch() != epoch {
            return; // it went down again meanwhile
        }
        inner.down = down;
        if down {
            self.set_ready(&mut inner);
        }
        self.settle(&mut inner);
    }

    /// A connection attempt failed: `bind` need not wait any longer.
    pub(crate) fn attempt_failed(&self) {
        let mut inner = self.inner.lock();
        self.set_ready(&mut inner);
    }

    /// The stored value is not a valid state: decide on the fallback until a
    /// read or a manual transition finds a valid one.
    pub(crate) fn set_corrupt(&self) {
        let mut inner = self.inner.lock();
        inner.corrupt = true;
        self.set_ready(&mut inner);
        self.settle(&mut inner);
    }

    /// Waits until the view is read, or Redis is known to be unreachable, or
    /// `deadline` passes; then the fallback may be seen.
    pub(crate) fn wait_ready(&self, deadline: Instant) {
        let mut inner = self.inner.lock();
        while !inner.ready {
            if self.ready.wait_until(&mut inner, deadline).timed_out() {
                break;
            }
        }
        inner.observable = true;
    }

    // ---- absorbing what Redis says ----

    fn accept(&self, inner: &mut Inner, s: Stored) {
        inner.regressions = 0;
        self.view.store(Arc::new(s));
    }

    /// A read of the whole state (at startup, after a reconnection, and every
    /// resync interval). Normally only a newer write replaces the view; a
    /// read that twice in a row finds an older one (a restarted server whose
    /// clock went back, a forged message) replaces it too.
    pub(crate) fn absorb_read(&self, s: Stored) {
        let mut inner = self.inner.lock();
        let current = self.view.load().seq;
        if s.seq > current || !inner.synced {
            self.accept(&mut inner, s);
        } else if s.seq < current {
            inner.regressions += 1;
            if inner.regressions >= 2 {
                self.accept(&mut inner, s);
            }
        } else {
            inner.regressions = 0;
        }
        inner.synced = true;
        inner.corrupt = false;
        if !self.on_fallback() {
            let state = self.view.load().state;
            self.tell(&mut inner, state);
        }
        self.settle(&mut inner);
    }

    /// A pub/sub message: the state after a write by `origin` (this hub's
    /// operation `op_id`, or anyone else's) that found the state `before`.
    pub(crate) fn absorb_message(&self, own_op: Option<u64>, before: State, s: Stored) {
        let mut inner = self.inner.lock();
        if s.seq <= self.view.load().seq || !inner.synced {
            return;
        }
        self.accept(&mut inner, s);
        if self.on_fallback() {
            return;
        }
        match own_op.and_then(|id| inner.waiting.get(&id).map(|_| id)) {
            Some(id) => {
                // This process's own write, whose reply is on its way: the
                // breaker reports `before -> after`; anything before that
                // happened elsewhere.
                self.tell(&mut inner, before);
                inner.told = s.state;
                inner.waiting.insert(id, Some((before, s.state)));
            }
            None => self.tell(&mut inner, s.state),
        }
    }

    /// Registers an operation whose caller waits for its reply.
    pub(crate) fn begin(&self, op_id: u64) {
        self.inner.lock().waiting.insert(op_id, None);
    }

    /// The reply to this process's operation `op_id`. Returns the result in
    /// the breaker's frame, and whether its caller was still waiting (then
    /// the breaker reports the transition, or [`announce_lost`] does if the
    /// caller leaves before taking it).
    ///
    /// [`announce_lost`]: Self::announce_lost
    pub(crate) fn absorb_own(
        &self,
        op_id: u64,
        before: Stored,
        after: Stored,
        outcome: Outcome,
    ) -> (Applied, bool) {
        let mut inner = self.inner.lock();
        let waiting = inner.waiting.remove(&op_id);
        let newer = after.seq > self.view.load().seq;
        if newer {
            self.accept(&mut inner, after);
        }
        let was_synced = inner.synced;
        inner.synced = true;
        inner.corrupt = false;
        let shared = was_synced && !self.on_fallback();
        match waiting {
            Some(None) if newer && shared => {
                self.tell(&mut inner, before.state);
                inner.told = after.state;
            }
            Some(_) => {}
            None if newer && shared => self.tell(&mut inner, after.state),
            None => {}
        }
        self.settle(&mut inner);
        (self.applied(&before, &after, outcome), waiting.is_some())
    }

    /// The caller of operation `op_id` stopped waiting before its reply: if a
    /// message already showed its transition, report it now.
    pub(crate) fn abandon(&self, op_id: u64) {
        let mut inner = self.inner.lock();
        if let Some(Some((old, new))) = inner.waiting.remove(&op_id) {
            if old != new && inner.observable {
                self.core.notify(&self.binding, old, new);
            }
        }
    }

    /// A result the breaker will never see: report its transition.
    pub(crate) fn announce_lost(&self, applied: &Applied) {
        let (old, new) = (applied.before.state, applied.after.state);
        if old != new && self.inner.lock().observable {
            self.core.notify(&self.binding, old, new);
        }
    }
}

/// `ms` on the server's clock, on the breaker's.
fn shift(ms: u64, offset_ms: i64) -> Duration {
    Duration::from_millis(ms.saturating_add_signed(offset_ms.saturating_neg()))
}

/// A fallback snapshot, its generation tagged.
fn tag(mut snap: Snapshot) -> Snapshot {
    snap.generation |= FALLBACK_TAG;
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_saturates() {
        assert_eq!(shift(1_000, 250), Duration::from_millis(750));
        assert_eq!(shift(1_000, -250), Duration::from_millis(1_250));
        assert_eq!(shift(10, 250), Duration::ZERO);
        assert_eq!(shift(u64::MAX, i64::MIN), Duration::from_millis(u64::MAX));
    }
}
