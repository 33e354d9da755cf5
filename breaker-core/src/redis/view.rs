//! One breaker's local view of its shared state, kept current by the replies
//! to its own operations, by pub/sub messages and by periodic reads; its
//! fallback state machine for when Redis cannot be used; and which
//! transitions its listeners hear, in which order.
//!
//! # Which transitions the storage reports, and in what order
//!
//! Every write of the shared state carries a sequence number, one more than
//! the write before it, and each write's message and reply say the state it
//! found and the state it left. The listeners hear the writes in the order
//! of their sequence numbers, each once: a write seen ahead of its turn (a
//! reply, or a read, can arrive before the messages of earlier writes) waits
//! in `ahead` until the writes before it have been heard. The changes are
//! queued in `reports` (see [`ReportQueue`]) under the slot's lock and
//! reported in that order, once, one at a time: transitions made by this
//! process's own operations (left for their caller, which reports them
//! through [`Storage::announce`] after its `success` or `failure`
//! listeners), transitions made by other processes, and switches to and
//! from the fallback state (reported, through
//! [`Binding::notify_transition`], from the storage's listeners' thread, or
//! by a caller that finds them behind its own).
//!
//! Writes missing from that order whose messages cannot come any more (the
//! subscription dropped or never covered them, pub/sub is off, or they are
//! [`GAP_LIMIT`] late: a key that expired or was set by hand) are jumped
//! over: the listeners hear the shortest path of the state machine's own
//! transitions (closed → open → half-open → closed, half-open → open) from
//! the state they last heard to the one after the gap (see [`path`]).

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::codec::Stored;
use super::hub::Core;
use super::report_queue::ReportQueue;
use super::script::OwnedLimits;
use crate::memory::MemoryStorage;
use crate::state::{Limits, Op, Outcome, Snapshot, State, Totals};
use crate::storage::{Applied, Binding, ClosedHint, Storage};

/// Set on every generation handed out by the fallback state machine, so a
/// result is applied where its call was admitted: a call admitted on the
/// fallback never counts in Redis, nor one admitted from Redis on the
/// fallback.
pub(crate) const FALLBACK_TAG: u64 = 1 << 62;

/// How long the listeners wait for the messages of writes missing from the
/// order of writes while the subscription that would bring them stays up,
/// before jumping over them: longer than any message takes on a working
/// connection; writes made without the script (a key that expired, was
/// deleted or set by hand) have no message.
pub(crate) const GAP_LIMIT: Duration = Duration::from_secs(1);

/// The fields of [`Slot`]'s `closed` word.
const CLOSED: u64 = 1 << 63;
const FAILURES: u64 = 1 << 62;
const GENERATION: u64 = (1 << 48) - 1;

pub(crate) struct Slot {
    /// This slot, for the listeners' thread to find it.
    me: Weak<Slot>,
    pub(crate) name: Arc<str>,
    pub(crate) key: String,
    pub(crate) core: Arc<Core>,
    binding: Binding,
    fallback_state: State,
    /// True while calls are decided by `fallback`.
    on_fallback: AtomicBool,
    /// The shared state, in the server's frame.
    view: ArcSwap<Stored>,
    /// The view's closed state in one word, for [`closed_hint`]: 0 unless
    /// calls are decided by the shared state and it is closed; then
    /// `CLOSED | failures << 62 | generation`. Kept with the view and the
    /// fallback switch, under `inner`.
    ///
    /// [`closed_hint`]: Slot::closed_hint
    closed: AtomicU64,
    /// Server clock minus the breaker's clock, in milliseconds.
    offset_ms: AtomicI64,
    fallback: MemoryStorage,
    inner: Mutex<Inner>,
    ready: Condvar,
    /// The rate policies' window: the closed generation whose counted
    /// successes have been reported up to the count held here.
    reported: Mutex<(u64, u64)>,
    /// The fleet's window as the last reply showed it, with its generation.
    window: Mutex<Option<(u64, Totals)>>,
}

struct Inner {
    /// The changes of state seen and not yet reported, in order; its
    /// `known()` is the state the listeners know of once they are.
    reports: ReportQueue,
    /// The sequence number of the last write queued in `reports` (or jumped
    /// over); while on the fallback, the view's.
    heard_seq: u64,
    /// Writes seen before their turn, by sequence number: each waits for
    /// the write before it.
    ahead: BTreeMap<u64, Write>,
    /// Since when writes have been missing from the order.
    gap_since: Option<Instant>,
    /// The subscription whose messages bring every write after `heard_seq`
    /// (`None`: nothing says one does).
    covered_by: Option<u64>,
    /// The view is a key found missing (no write made it).
    view_missing: bool,
    /// `heard_seq` is a key found missing: the next write may have any
    /// greater number (a missing key's writes start from the server's
    /// time), and its message is taken as the next in turn.
    heard_missing: bool,
    /// The listeners' thread has been asked to report and has not started.
    report_requested: bool,
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
    /// Operations whose callers wait for them, with the generation of the
    /// transition a pub/sub message already showed (and `told` holds) for
    /// them.
    waiting: HashMap<u64, Option<u64>>,
    /// The best clock-offset sample: its round trip and when it was taken.
    offset_rtt: Duration,
    offset_at: Option<Instant>,
}

impl Slot {
    pub(crate) fn new(core: Arc<Core>, binding: Binding, key: String, down: bool) -> Arc<Self> {
        let fallback_state = core.cfg.fallback_state;
        let slot = Arc::new_cyclic(|me| Slot {
            me: Weak::clone(me),
            name: binding.name().into(),
            key,
            binding,
            fallback_state,
            on_fallback: AtomicBool::new(true),
            closed: AtomicU64::new(0),
            view: ArcSwap::from_pointee(Stored {
                state: State::Closed,
                generation: 0,
                fail_counter: 0,
                success_counter: 0,
                trial_until_ms: 0,
                opened_at_ms: 0,
                seq: 0,
                trials: 0,
                reopens: 0,
            }),
            offset_ms: AtomicI64::new(0),
            fallback: MemoryStorage::new(),
            inner: Mutex::new(Inner {
                reports: ReportQueue::new(fallback_state),
                heard_seq: 0,
                ahead: BTreeMap::new(),
                gap_since: None,
                covered_by: None,
                view_missing: false,
                heard_missing: false,
                report_requested: false,
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
            reported: Mutex::new((0, 0)),
            window: Mutex::new(None),
            core,
        });
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

    /// Whether the view has been read from Redis since the slot was made.
    pub(crate) fn synced(&self) -> bool {
        self.inner.lock().synced
    }

    /// The breaker's settings now, for a request that carries none of its
    /// own (a read, a cancel): the script checks the stored lease against
    /// them. `None` once the breaker is dropped.
    pub(crate) fn limits(&self) -> Option<OwnedLimits> {
        let shared = self.binding.breaker.upgrade()?;
        let cb = crate::CircuitBreaker { shared };
        let policy = cb.policy();
        Some(OwnedLimits::of(&cb.limits_at(self.now(), &policy)))
    }

    // ---- the rate policies' window ----

    /// Takes the successes the breaker counted under the closed
    /// `generation` since the last report, to send with an operation (or
    /// a flush): each is taken once.
    pub(crate) fn take_successes(&self, generation: u64) -> u64 {
        let counted = self.binding.counted_successes(generation);
        let mut reported = self.reported.lock();
        if reported.0 != generation {
            *reported = (generation, 0);
        }
        let new = counted.saturating_sub(reported.1);
        reported.1 = reported.1.max(counted);
        new
    }

    /// Gives back `n` successes taken under `generation` whose report did
    /// not reach Redis, so the next report carries them.
    pub(crate) fn give_back(&self, generation: u64, n: u64) {
        let mut reported = self.reported.lock();
        if reported.0 == generation {
            reported.1 = reported.1.saturating_sub(n);
        }
    }

    /// Keeps the fleet's window a reply showed for `generation`.
    pub(crate) fn note_window(&self, generation: u64, totals: Option<Totals>) {
        *self.window.lock() = Some((generation, totals.unwrap_or_default()));
    }

    /// The fleet's window as last seen: in closed, if it is the current
    /// generation's (entering closed empties it); while open or half-open,
    /// the last one seen (the one that opened it, if this process saw it).
    pub(crate) fn window(&self) -> Option<Totals> {
        let view = self.view.load();
        let seen = *self.window.lock();
        match seen {
            Some((generation, totals))
                if view.state != State::Closed || view.generation == generation =>
            {
                Some(totals)
            }
            _ => None,
        }
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
            if !snap.trial {
                snap.trials = 0;
            }
        }
        snap
    }

    /// The closed state of the view in one word, without building a
    /// snapshot; `None` on the fallback (whose `load` is one word already)
    /// and in any other state.
    #[inline]
    pub(crate) fn closed_hint(&self) -> Option<ClosedHint> {
        let word = self.closed.load(Ordering::Acquire);
        (word & CLOSED != 0).then_some(ClosedHint {
            generation: word & GENERATION,
            failures: word & FAILURES != 0,
        })
    }

    /// Replaces the view (under `inner`). The closed word is cleared first:
    /// whoever sees the new view then sees no closed word older than it (a
    /// call admitted as closed after a `load` that showed open was the
    /// soak's "a call ran while open").
    fn set_view(&self, s: Stored) {
        self.closed.store(0, Ordering::Release);
        self.view.store(Arc::new(s));
        self.publish_closed();
    }

    /// Rewrites `closed` from the view and the fallback switch, once either
    /// has changed (under `inner`, after clearing it).
    fn publish_closed(&self) {
        let v = self.view.load();
        let word = if !self.on_fallback() && v.state == State::Closed {
            debug_assert!(v.generation <= GENERATION, "generations are 48 bits");
            let failures = if v.fail_counter != 0 { FAILURES } else { 0 };
            CLOSED | failures | (v.generation & GENERATION)
        } else {
            0
        };
        self.closed.store(word, Ordering::Release);
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
            let trials = v.trials.saturating_sub(1);
            let after = Stored {
                trial_until_ms: if trials == 0 { 0 } else { v.trial_until_ms },
                trials,
                ..v
            };
            self.set_view(after);
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
            ..Limits::DEFAULT
        };
        self.fallback.apply(Op::Force(self.fallback_state), &limits);
    }

    /// Applies `op` on the fallback state machine, as the breaker's own
    /// operation (it reports the transition).
    pub(crate) fn apply_fallback(&self, op: Op, limits: &Limits) -> Applied {
        // The fallback keeps no window: a slow call is its success or failure.
        let untagged = match op.unslowed() {
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
            let (old, new) = (applied.before.state, applied.after.state);
            self.queue_own(
                &mut inner,
                old,
                new,
                applied.after.generation | FALLBACK_TAG,
            );
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
        self.closed.store(0, Ordering::Release);
        let new = if want {
            self.seed_fallback();
            self.on_fallback.store(true, Ordering::Release);
            self.fallback_state
        } else {
            self.on_fallback.store(false, Ordering::Release);
            let view = self.view.load();
            // The listeners hear the shared state from here on.
            inner.heard_seq = view.seq;
            inner.heard_missing = inner.view_missing;
            inner.ahead.clear();
            inner.gap_since = None;
            view.state
        };
        self.publish_closed();
        self.queue_change(inner, new);
    }

    /// Queues the change of state to `new` for the listeners, unless they
    /// know of it (or will).
    fn queue_change(&self, inner: &mut Inner, new: State) {
        if inner.observable {
            inner.reports.push(new);
            self.request_report(inner);
        } else {
            inner.reports.set_known(new);
        }
    }

    /// Queues the changes of the shortest path of the state machine's own
    /// transitions from the state the listeners know of to `to`: a jump
    /// over writes whose messages cannot come.
    fn queue_jump(&self, inner: &mut Inner, to: State) {
        for &state in path(inner.reports.known(), to) {
            self.queue_change(inner, state);
        }
    }

    /// Queues this process's own transition `old -> new`, which left
    /// `generation` (tagged on the fallback), for its caller to report
    /// through [`announce`](Self::announce).
    fn queue_own(&self, inner: &mut Inner, old: State, new: State, generation: u64) {
        if inner.observable {
            inner.reports.push_own(old, new, generation, Instant::now());
            self.request_report(inner);
        } else {
            inner.reports.set_known(new);
        }
    }

    /// Lets the transition that left `generation` be reported by whoever
    /// reports next: its caller left without reporting it (or reported
    /// before the transition's turn came).
    fn release(&self, inner: &mut Inner, generation: u64) {
        if inner.reports.release(generation) {
            self.request_report(inner);
        } else if let Some(write) = inner
            .ahead
            .values_mut()
            .find(|w| w.for_caller && w.generation == generation)
        {
            write.for_caller = false;
        }
    }

    /// Asks the listeners' thread to report what is ready, if nobody is
    /// reporting and it has not been asked yet.
    fn request_report(&self, inner: &mut Inner) {
        if !inner.report_requested && inner.reports.needs_reporter(Instant::now()) {
            inner.report_requested = true;
            self.core.request_report(Weak::clone(&self.me));
        }
    }

    /// Reports what `reports` has ready, in order, through `notify`, unless
    /// another thread is reporting (it reports it then). Every change is
    /// reported even if `notify` panics; the first panic is resumed after.
    fn report(&self, mut inner: MutexGuard<'_, Inner>, notify: &mut dyn FnMut(State, State)) {
        if !inner.reports.start_report() {
            return;
        }
        let mut first_panic = None;
        while let Some((old, new)) = inner.reports.next_change(Instant::now()) {
            MutexGuard::unlocked(&mut inner, || {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| notify(old, new))) {
                    first_panic.get_or_insert(panic);
                }
            });
        }
        drop(inner);
        if let Some(panic) = first_panic {
            resume_unwind(panic);
        }
    }

    /// The listeners' thread: reports what is ready to the breaker's
    /// listeners.
    pub(crate) fn report_pending(&self) {
        let mut inner = self.inner.lock();
        inner.report_requested = false;
        self.report(inner, &mut |old, new| {
            self.binding.notify_transition(old, new);
        });
    }

    /// The breaker reports what its own operation did ([`Storage::announce`]):
    /// the transition left for it, then whatever is ready behind it, through
    /// `notify`. Nothing if no transition waits for it: it was not in the
    /// order of writes (the listeners jumped over it, or it was decided on
    /// a fallback the view no longer follows), it waited too long and has
    /// been reported, or its turn has not come (writes before it are
    /// missing: whoever reports next reports it).
    pub(crate) fn announce(&self, applied: &Applied, notify: &mut dyn FnMut(State, State)) {
        if applied.before.state == applied.after.state {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.reports.release(applied.after.generation) {
            self.report(inner, notify);
        } else {
            self.release(&mut inner, applied.after.generation);
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

    /// A connection attempt failed: `bind` need not wait any longer. (Also
    /// a regular look at a transition that may have waited too long for its
    /// caller while Redis is away.)
    pub(crate) fn attempt_failed(&self) {
        let mut inner = self.inner.lock();
        self.set_ready(&mut inner);
        self.request_report(&mut inner);
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

    fn accept(&self, inner: &mut Inner, s: Stored, missing: bool) {
        inner.regressions = 0;
        inner.view_missing = missing;
        self.set_view(s);
    }

    /// The key was found missing at `seq` (by a read, or by the write that
    /// made it again): the writes before it are over. The listeners hear
    /// those seen, jump to closed (what a missing key is), and take the
    /// next write in turn whatever its number.
    fn start_over(&self, inner: &mut Inner, seq: u64) {
        if seq <= inner.heard_seq || self.on_fallback() {
            return;
        }
        while let Some(entry) = inner.ahead.first_entry() {
            if *entry.key() > seq {
                break;
            }
            let write = entry.remove();
            self.queue_write(inner, write);
        }
        self.queue_jump(inner, State::Closed);
        inner.heard_seq = seq;
        inner.heard_missing = true;
        inner.gap_since = None;
    }

    /// Queues one write for the listeners.
    fn queue_write(&self, inner: &mut Inner, write: Write) {
        self.queue_jump(inner, write.before);
        if write.for_caller {
            self.queue_own(inner, write.before, write.after, write.generation);
        } else {
            self.queue_change(inner, write.after);
        }
    }

    /// A write of the shared state, with sequence number `seq`, seen in a
    /// message or a reply: queued for the listeners in its turn.
    fn absorb_write(&self, inner: &mut Inner, seq: u64, write: Write) {
        if seq <= inner.heard_seq {
            return;
        }
        if inner.heard_missing && write.message_under.is_some() {
            // The first message since the key was found missing: messages
            // come in the order of the writes, so this is the next one.
            inner.heard_seq = seq - 1;
            inner.heard_missing = false;
        }
        // Seen twice (its message and its reply): the first counts.
        inner.ahead.entry(seq).or_insert(write);
    }

    /// Queues every write whose turn has come, in order; jumps over missing
    /// writes whose messages cannot come any more. `read_under` is the
    /// subscription a read that brought the view was sent under.
    fn catch_up(&self, inner: &mut Inner, read_under: Option<Option<u64>>) {
        let view = **self.view.load();
        if self.on_fallback() {
            // The listeners follow the fallback: the shared state's writes
            // are not theirs to hear.
            inner.heard_seq = inner.heard_seq.max(view.seq);
            inner.heard_missing = inner.view_missing;
            inner.ahead.clear();
            inner.gap_since = None;
            if let Some(under) = read_under {
                inner.covered_by = under;
            }
            return;
        }
        loop {
            while let Some(entry) = inner.ahead.first_entry() {
                if *entry.key() > inner.heard_seq + 1 {
                    break;
                }
                let (seq, write) = entry.remove_entry();
                if seq <= inner.heard_seq {
                    continue;
                }
                self.queue_write(inner, write);
                inner.heard_seq = seq;
                inner.heard_missing = false;
                if let Some(under) = write.message_under {
                    // Every later write is published after this message.
                    inner.covered_by = Some(under);
                }
            }
            let next = inner
                .ahead
                .first_key_value()
                .map(|(&seq, w)| (seq, w.before));
            if next.is_none() && view.seq <= inner.heard_seq {
                inner.gap_since = None;
                if let Some(Some(under)) = read_under {
                    // A read sent under this subscription found nothing new.
                    inner.covered_by = Some(under);
                }
                return;
            }
            let now = Instant::now();
            let since = *inner.gap_since.get_or_insert(now);
            let covered = self.core.cfg.subscribe
                && inner.covered_by.is_some()
                && inner.covered_by == self.core.subscription();
            if covered && now.saturating_duration_since(since) < GAP_LIMIT {
                return; // the messages are on their way
            }
            // Jump over the missing writes: to the first write ahead, or to
            // the view.
            inner.gap_since = None;
            match next {
                Some((seq, before)) => {
                    self.queue_jump(inner, before);
                    inner.heard_seq = seq - 1;
                }
                None => {
                    self.queue_jump(inner, view.state);
                    inner.heard_seq = view.seq;
                    inner.heard_missing = inner.view_missing;
                    inner.covered_by = read_under.flatten();
                }
            }
        }
    }

    /// A read of the whole state (at startup, after a reconnection, and every
    /// resync interval), sent while subscription `under` was up (`None`:
    /// none was). Normally only a newer write replaces the view; a read that
    /// twice in a row finds an older one (a restarted server whose clock went
    /// back, a forged message) replaces it too, and the listeners jump to it.
    pub(crate) fn absorb_read(&self, s: Stored, under: Option<u64>, missing: bool) {
        let mut inner = self.inner.lock();
        let current = self.view.load().seq;
        if s.seq > current || !inner.synced {
            self.accept(&mut inner, s, missing);
            if missing {
                self.start_over(&mut inner, s.seq);
            }
        } else if s.seq < current {
            inner.regressions += 1;
            if inner.regressions >= 2 {
                self.accept(&mut inner, s, missing);
                inner.ahead.clear();
                inner.heard_seq = inner.heard_seq.min(s.seq.saturating_sub(1));
                inner.covered_by = None;
                inner.gap_since = None;
            }
        } else {
            inner.regressions = 0;
        }
        inner.synced = true;
        inner.corrupt = false;
        self.catch_up(&mut inner, Some(under));
        self.settle(&mut inner);
        // Every resync interval: a transition that waited too long for its
        // caller is reported.
        self.request_report(&mut inner);
    }

    /// A pub/sub message, received under subscription `under`: the state
    /// after a write by this hub's operation `own_op`, or by anyone else,
    /// that found the state `before`.
    pub(crate) fn absorb_message(&self, own_op: Option<u64>, before: State, s: Stored, under: u64) {
        let mut inner = self.inner.lock();
        if !inner.synced {
            return;
        }
        if s.seq > self.view.load().seq {
            self.accept(&mut inner, s, false);
        }
        // This process's own write whose caller waits for its reply: the
        // caller reports it.
        let for_caller = match own_op.filter(|id| inner.waiting.contains_key(id)) {
            Some(id) if before != s.state => {
                inner.waiting.insert(id, Some(s.generation));
                true
            }
            _ => false,
        };
        let write = Write {
            before,
            after: s.state,
            generation: s.generation,
            for_caller,
            message_under: Some(under),
        };
        self.absorb_write(&mut inner, s.seq, write);
        self.catch_up(&mut inner, None);
    }

    /// Registers an operation whose caller waits for its reply.
    pub(crate) fn begin(&self, op_id: u64) {
        self.inner.lock().waiting.insert(op_id, None);
    }

    /// The reply to this process's operation `op_id` (0: one nobody waits
    /// for), in the breaker's frame. If its caller still waits, the
    /// transition it made is held for the breaker to report (or
    /// [`announce_lost`] to release if the caller leaves before taking it).
    ///
    /// [`announce_lost`]: Self::announce_lost
    pub(crate) fn absorb_own(
        &self,
        op_id: u64,
        before: Stored,
        after: Stored,
        outcome: Outcome,
        missing: bool,
    ) -> Applied {
        let mut inner = self.inner.lock();
        let waiting = inner.waiting.remove(&op_id);
        let wrote = after.seq != before.seq;
        if after.seq > self.view.load().seq {
            self.accept(&mut inner, after, missing && !wrote);
        }
        inner.synced = true;
        inner.corrupt = false;
        if missing {
            // A write that made the key again follows the made-up state it
            // found; an operation that wrote nothing found no key.
            self.start_over(&mut inner, before.seq);
        }
        if wrote {
            // A write: its caller reports it unless its message came first
            // (and left it to the caller already).
            let write = Write {
                before: before.state,
                after: after.state,
                generation: after.generation,
                for_caller: matches!(waiting, Some(None)) && before.state != after.state,
                message_under: None,
            };
            self.absorb_write(&mut inner, after.seq, write);
        }
        self.catch_up(&mut inner, None);
        self.settle(&mut inner);
        self.applied(&before, &after, outcome)
    }

    /// The caller of operation `op_id` stopped waiting before its reply: if a
    /// message already showed its transition, let it be reported.
    pub(crate) fn abandon(&self, op_id: u64) {
        let mut inner = self.inner.lock();
        if let Some(Some(key)) = inner.waiting.remove(&op_id) {
            self.release(&mut inner, key);
        }
    }

    /// A result the breaker will never see: let the transition left for it
    /// be reported.
    pub(crate) fn announce_lost(&self, applied: &Applied) {
        if applied.before.state != applied.after.state {
            let mut inner = self.inner.lock();
            self.release(&mut inner, applied.after.generation);
        }
    }
}

/// A write of the shared state, waiting for its turn to be heard.
#[derive(Clone, Copy, Debug)]
struct Write {
    before: State,
    after: State,
    /// The generation the write left.
    generation: u64,
    /// This process's own transition, left for its caller to report.
    for_caller: bool,
    /// The subscription whose message showed it (`None`: a reply did).
    message_under: Option<u64>,
}

/// The states the listeners hear, in order, when a jump over missing writes
/// takes them from `from` to `to`: the shortest path of the state machine's
/// own transitions (a trip, the timeout, a trial's success or failure), so
/// no jump is one the state machine cannot make without a manual
/// transition. Nothing when `from` is `to` (a round trip through other
/// states, if one happened, is not heard).
pub(crate) fn path(from: State, to: State) -> &'static [State] {
    use State::*;
    match (from, to) {
        (Closed, Open) | (HalfOpen, Open) => &[Open],
        (Closed, HalfOpen) => &[Open, HalfOpen],
        (Open, HalfOpen) => &[HalfOpen],
        (Open, Closed) => &[HalfOpen, Closed],
        (HalfOpen, Closed) => &[Closed],
        (Closed, Closed) | (Open, Open) | (HalfOpen, HalfOpen) => &[],
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

    // ---- the order of reports, driven through the slot ----

    use crate::redis::RedisStorage;
    use crate::{CircuitBreaker, Error, Failure, Listener};

    type Hook = Box<dyn FnOnce() + Send>;

    /// Records the events it hears; runs a hook in the first `failure`.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
        on_failure: Mutex<Option<Hook>>,
    }

    impl Listener for Recorder {
        fn failure(&self, _: &CircuitBreaker, _: &Failure<'_>) {
            self.log.lock().push("failure".into());
            if let Some(hook) = self.on_failure.lock().take() {
                hook();
            }
        }
        fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
            self.log.lock().push(format!("{old}->{new}"));
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.log.lock())
        }

        /// Waits (up to 5 s) until `n` events are recorded; what it heard.
        fn wait_for(&self, n: usize) -> Vec<String> {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.log.lock().len() < n && Instant::now() < deadline {
                std::thread::yield_now();
            }
            self.take()
        }
    }

    /// A breaker on a Redis nobody listens at: its slot decides on the
    /// fallback (closed), and only the test changes what the view sees.
    fn offline(fail_max: u32) -> (CircuitBreaker, Arc<Slot>, Arc<Recorder>) {
        let storage = Arc::new(
            RedisStorage::builder("redis://127.0.0.1:1/")
                .connect_timeout(Duration::from_millis(100))
                .command_timeout(Duration::from_millis(100))
                .build()
                .unwrap(),
        );
        let recorder = Arc::new(Recorder::default());
        let cb = CircuitBreaker::builder("offline")
            .fail_max(fail_max)
            .listener_arc(Arc::clone(&recorder) as Arc<dyn Listener>)
            .storage(Arc::clone(&storage))
            .build();
        let slot = Arc::clone(storage.slot.get().expect("bound"));
        assert!(slot.on_fallback());
        (cb, slot, recorder)
    }

    fn stored(state: State, generation: u64, seq: u64) -> Stored {
        Stored {
            state,
            generation,
            fail_counter: 0,
            success_counter: 0,
            trial_until_ms: 0,
            opened_at_ms: if state == State::Open { 1 } else { 0 },
            seq,
            trials: 0,
            reopens: 0,
        }
    }

    /// Redis answers again, with `s`: the slot follows the shared state.
    fn reconnect(slot: &Slot, s: Stored) {
        slot.absorb_read(s, None, false);
        slot.set_down(false, slot.core.epoch());
        assert!(!slot.on_fallback());
    }

    fn queued(slot: &Slot) -> usize {
        slot.inner.lock().reports.queued()
    }

    #[test]
    fn a_change_seen_while_the_callers_listeners_run_is_heard_after_its_own() {
        let (cb, slot, recorder) = offline(1);
        let during = Arc::clone(&slot);
        *recorder.on_failure.lock() = Some(Box::new(move || {
            // The failure tripped the fallback (closed -> open); its
            // listeners are running when Redis answers again, closed.
            reconnect(&during, stored(State::Closed, 1, 10));
            // Queued behind the caller's own transition, not reported.
            assert_eq!(queued(&during), 2);
            assert!(!during.inner.lock().report_requested);
        }));
        let r = cb.call(|| Err::<(), _>("boom"));
        assert!(matches!(r, Err(Error::Tripped(_, "boom"))), "{r:?}");
        // Both reported by the caller, its own first, before it returned.
        assert_eq!(recorder.take(), ["failure", "closed->open", "open->closed"]);
        assert_eq!(queued(&slot), 0);
        assert_eq!(cb.current_state(), State::Closed);
    }

    #[test]
    fn an_own_write_shown_by_its_message_is_held_for_the_caller() {
        let (cb, slot, recorder) = offline(1);
        reconnect(&slot, stored(State::Closed, 1, 10));
        // This process's failure trips the circuit: its message comes before
        // its reply, then another process's reset.
        slot.begin(42);
        slot.absorb_message(Some(42), State::Closed, stored(State::Open, 2, 11), 1);
        slot.absorb_message(None, State::Open, stored(State::Closed, 3, 12), 1);
        let applied = slot.absorb_own(
            42,
            stored(State::Closed, 1, 10),
            stored(State::Open, 2, 11),
            Outcome::Counted {
                tripped: Some(crate::Reason::FailureThreshold),
            },
            false,
        );
        assert_eq!(queued(&slot), 2);
        assert!(recorder.take().is_empty());
        // The breaker reports: its own change, then the one behind it.
        let mut heard = Vec::new();
        slot.announce(&applied, &mut |old, new| heard.push((old, new)));
        assert_eq!(
            heard,
            [(State::Closed, State::Open), (State::Open, State::Closed)]
        );
        // Reported once: a second report finds nothing held.
        slot.announce(&applied, &mut |_, _| panic!("reported twice"));
        assert_eq!(queued(&slot), 0);
        drop(cb);
    }

    #[test]
    fn a_caller_that_stops_waiting_releases_its_transition() {
        let (_cb, slot, recorder) = offline(1);
        reconnect(&slot, stored(State::Closed, 1, 10));
        slot.begin(7);
        slot.absorb_message(Some(7), State::Closed, stored(State::Open, 2, 11), 1);
        slot.absorb_message(None, State::Open, stored(State::HalfOpen, 3, 12), 1);
        assert_eq!(queued(&slot), 2);
        // Its reply never came in time.
        slot.abandon(7);
        assert_eq!(recorder.wait_for(2), ["closed->open", "open->half-open"]);
        // The reply comes late: nothing more to report.
        slot.absorb_own(
            7,
            stored(State::Closed, 1, 10),
            stored(State::Open, 2, 11),
            Outcome::Counted { tripped: None },
            false,
        );
        assert_eq!(queued(&slot), 0);
    }

    #[test]
    fn a_result_nobody_takes_releases_its_transition() {
        let (_cb, slot, recorder) = offline(1);
        reconnect(&slot, stored(State::Closed, 1, 10));
        // The reply comes first this time, then another process's write.
        slot.begin(9);
        let applied = slot.absorb_own(
            9,
            stored(State::Closed, 1, 10),
            stored(State::Open, 2, 11),
            Outcome::Counted { tripped: None },
            false,
        );
        slot.absorb_message(Some(9), State::Closed, stored(State::Open, 2, 11), 1);
        slot.absorb_message(None, State::Open, stored(State::Closed, 3, 12), 1);
        assert_eq!(queued(&slot), 2);
        // Its caller left before taking it (a dropped future).
        slot.announce_lost(&applied);
        assert_eq!(recorder.wait_for(2), ["closed->open", "open->closed"]);
    }

    #[test]
    fn changes_learnt_in_the_background_are_reported_in_order() {
        let (_cb, slot, recorder) = offline(1);
        reconnect(&slot, stored(State::Closed, 1, 10));
        for (seq, (before, after)) in [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed),
            (State::Closed, State::Open),
        ]
        .into_iter()
        .enumerate()
        {
            slot.absorb_message(
                None,
                before,
                stored(after, 2 + seq as u64, 11 + seq as u64),
                1,
            );
        }
        assert_eq!(
            recorder.wait_for(4),
            [
                "closed->open",
                "open->half-open",
                "half-open->closed",
                "closed->open"
            ]
        );
    }

    #[test]
    fn a_fallback_transition_the_view_no_longer_follows_is_not_reported() {
        let (_cb, slot, recorder) = offline(1);
        reconnect(&slot, stored(State::Closed, 1, 10));
        // A call admitted on the fallback fails after the switch back.
        let limits = Limits {
            fail_max: 1,
            success_threshold: 1,
            reset_timeout: Duration::from_secs(60),
            now: slot.now(),
            ..Limits::DEFAULT
        };
        let applied = slot.apply_fallback(Op::Force(State::Open), &limits);
        assert_ne!(applied.before.state, applied.after.state);
        slot.announce(&applied, &mut |_, _| panic!("not in the view's order"));
        assert_eq!(queued(&slot), 0);
        assert!(recorder.take().is_empty());
    }

    #[test]
    fn a_jump_takes_the_state_machines_own_transitions() {
        use State::*;
        for from in [Closed, Open, HalfOpen] {
            for to in [Closed, Open, HalfOpen] {
                let mut at = from;
                for &next in path(from, to) {
                    let own = matches!(
                        (at, next),
                        (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Closed) | (HalfOpen, Open)
                    );
                    assert!(own, "{from} -> {to} takes {at} -> {next}");
                    at = next;
                }
                assert_eq!(at, to);
                assert!(path(from, to).len() <= 2);
            }
        }
    }

    #[test]
    fn writes_whose_messages_cannot_come_are_jumped_over() {
        // No subscription: a read ahead of the order of writes is final.
        let (_cb, slot, recorder) = offline(1);
        reconnect(&slot, stored(State::Closed, 1, 10));
        slot.absorb_read(stored(State::Open, 4, 13), None, false);
        assert_eq!(recorder.wait_for(1), ["closed->open"]);
        // Closed by hand elsewhere: heard through half-open.
        slot.absorb_read(stored(State::Closed, 5, 14), None, false);
        assert_eq!(
            recorder.wait_for(2),
            ["open->half-open", "half-open->closed"]
        );
        // A round trip through open is not heard.
        slot.absorb_read(stored(State::Closed, 7, 16), None, false);
        // A late message of a write jumped over is not heard either.
        slot.absorb_message(None, State::Closed, stored(State::Open, 6, 15), 1);
        // The next write, in turn, is.
        slot.absorb_message(None, State::Closed, stored(State::Open, 8, 17), 1);
        assert_eq!(recorder.wait_for(1), ["closed->open"]);
        assert_eq!(queued(&slot), 0);
    }

    // ---- the closed hint ----

    #[test]
    fn the_closed_hint_follows_the_view_and_the_fallback() {
        let (cb, slot, _recorder) = offline(3);
        // On the fallback: no hint (its `load` is one word already).
        assert_eq!(slot.closed_hint(), None);
        cb.call(|| Ok::<_, ()>(())).unwrap();
        reconnect(&slot, stored(State::Closed, 7, 10));
        let hint = |generation, failures| {
            Some(ClosedHint {
                generation,
                failures,
            })
        };
        assert_eq!(slot.closed_hint(), hint(7, false));
        // Failures counted elsewhere: a success has a count to reset.
        let failed = Stored {
            fail_counter: 2,
            ..stored(State::Closed, 7, 11)
        };
        slot.absorb_read(failed, None, false);
        assert_eq!(slot.closed_hint(), hint(7, true));
        // Not closed: none.
        slot.absorb_read(stored(State::Open, 8, 12), None, false);
        assert_eq!(slot.closed_hint(), None);
        slot.absorb_read(stored(State::HalfOpen, 9, 13), None, false);
        assert_eq!(slot.closed_hint(), None);
        slot.absorb_read(stored(State::Closed, 10, 14), None, false);
        assert_eq!(slot.closed_hint(), hint(10, false));
        // Back on the fallback (Redis down): none again.
        slot.set_down(true, slot.core.epoch());
        assert!(slot.on_fallback());
        assert_eq!(slot.closed_hint(), None);
    }
}
