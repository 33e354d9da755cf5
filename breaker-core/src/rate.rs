//! The rate policies at work: a breaker's sliding window (made when a
//! rate condition is turned on, replaced by a new empty one when its shape
//! changes), a closed-state call's result recorded in it, the operation
//! that result applies (`Op::Trip` when [`trips`] says a rate holds), and
//! [`WindowStats`].
//!
//! A fast success writes only its own thread's stripe of the window
//! (`window/`); a failure folds the window and decides. Entering closed
//! empties the window (`clear_if_closed`, from every applied operation).

use std::sync::Arc;

use crate::admission::Ticket;
use crate::breaker::CircuitBreaker;
use crate::error::ConfigError;
use crate::recording::failure_op;
use crate::recording::Recorded;
use crate::state::{trips, Op, RatePolicy, Reason, Snapshot, State, Totals, WindowShape};
use crate::storage::Applied;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Mutex, Ordering};
use crate::window::{Kind, Outcome, Window};

/// What a breaker's window holds now: [`CircuitBreaker::window`].
///
/// The rates are `None` until the window holds `min_calls` calls (or, a
/// count window smaller than `min_calls`, until it is full).
///
/// ```
/// use breaker::{CircuitBreaker, WindowStats};
///
/// let cb = CircuitBreaker::builder("api").failure_rate(0.5).min_calls(2).build();
/// let _ = cb.call(|| Ok::<_, &str>(()));
/// assert_eq!(cb.window().failure_rate, None); // one call: below min_calls
/// let _ = cb.call(|| Err::<(), _>("refused"));
/// let stats: WindowStats = cb.window();
/// assert_eq!((stats.calls, stats.failures, stats.slow_calls), (2, 1, 0));
/// assert_eq!(stats.failure_rate, Some(0.5));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowStats {
    /// Calls completed in the window.
    pub calls: u64,
    /// Of which failed.
    pub failures: u64,
    /// Of which were slow (failed or not).
    pub slow_calls: u64,
    /// `failures / calls`, once the window holds `min_calls` calls.
    pub failure_rate: Option<f64>,
    /// `slow_calls / calls`, once the window holds `min_calls` calls.
    pub slow_call_rate: Option<f64>,
}

impl WindowStats {
    /// The statistics of `totals` under `rate`'s `min_calls`.
    fn of(totals: Totals, rate: &RatePolicy) -> Self {
        let decided = totals.calls > 0 && totals.calls >= rate.deciding_calls();
        let share = |n: u64| decided.then(|| n as f64 / totals.calls as f64);
        WindowStats {
            calls: totals.calls,
            failures: totals.failures,
            slow_calls: totals.slow,
            failure_rate: share(totals.failures),
            slow_call_rate: share(totals.slow),
        }
    }
}

/// A breaker's windows: the current one (none while no rate condition is
/// on), and every one it was given, kept until the breaker is dropped so
/// that a call holding a replaced window can still record into it. Beside
/// them, the rate policy's numbers a failure decides with, copied from the
/// breaker's policy as atomics (a failure reads them, not the policy).
pub(crate) struct Windows {
    /// Null, or the window of `made`'s last entry.
    current: AtomicPtr<Window>,
    made: Mutex<Vec<Arc<Window>>>,
    /// `RatePolicy::failure_rate`'s bits, or [`NO_RATE`].
    failure_rate: AtomicU64,
    /// `RatePolicy::slow_call_rate`'s bits, or [`NO_RATE`].
    slow_call_rate: AtomicU64,
    min_calls: AtomicU32,
    /// `RatePolicy::consecutive_on`.
    consecutive: AtomicBool,
}

/// The bits of a rate condition that is off (a NaN no rate can be).
const NO_RATE: u64 = u64::MAX;

fn rate_bits(rate: Option<f64>) -> u64 {
    rate.map_or(NO_RATE, f64::to_bits)
}

fn rate_of(bits: u64) -> Option<f64> {
    (bits != NO_RATE).then(|| f64::from_bits(bits))
}

impl Windows {
    pub(crate) fn new() -> Self {
        Windows {
            current: AtomicPtr::new(std::ptr::null_mut()),
            made: Mutex::new(Vec::new()),
            failure_rate: AtomicU64::new(NO_RATE),
            slow_call_rate: AtomicU64::new(NO_RATE),
            min_calls: AtomicU32::new(RatePolicy::DEFAULT.min_calls),
            consecutive: AtomicBool::new(true),
        }
    }

    /// Copies `rate`'s numbers. The caller holds the breaker's edit lock.
    fn store(&self, rate: &RatePolicy) {
        self.failure_rate
            .store(rate_bits(rate.failure_rate), Ordering::Relaxed);
        self.slow_call_rate
            .store(rate_bits(rate.slow_call_rate), Ordering::Relaxed);
        self.min_calls.store(rate.min_calls, Ordering::Relaxed);
        self.consecutive
            .store(rate.consecutive_on(), Ordering::Relaxed);
    }

    /// The rate policy `window` is decided with, from the copied numbers.
    fn policy_for(&self, window: &Window) -> RatePolicy {
        let consecutive = self.consecutive.load(Ordering::Relaxed);
        RatePolicy {
            failure_rate: rate_of(self.failure_rate.load(Ordering::Relaxed)),
            slow_call_rate: rate_of(self.slow_call_rate.load(Ordering::Relaxed)),
            window: shape(window.kind()),
            min_calls: self.min_calls.load(Ordering::Relaxed),
            consecutive,
        }
    }

    /// Whether the consecutive condition is on beside the rates.
    #[inline]
    fn consecutive(&self) -> bool {
        self.consecutive.load(Ordering::Relaxed)
    }

    /// The current window: one load.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<&Window> {
        let ptr = self.current.load(Ordering::Acquire);
        // SAFETY: `ptr` is null or was taken with `Arc::as_ptr` from an
        // `Arc<Window>` that `made` holds; `made` only ever grows and is
        // dropped with `self`, so the window outlives the borrow of `self`.
        // Windows are only read through shared references (their counts
        // are atomics). Exercised by `rate::tests::a_replaced_window_stays_readable`.
        #[allow(unsafe_code)]
        unsafe {
            ptr.as_ref()
        }
    }

    /// Makes a new, empty window of `shape` the current one, counting
    /// from `generation`. The caller holds the breaker's edit lock.
    pub(crate) fn start(&self, shape: WindowShape, generation: u64) -> Result<(), ConfigError> {
        let window = Arc::new(Window::new(kind(shape)).map_err(|_| shape_error(shape))?);
        window.clear(generation);
        let ptr = Arc::as_ptr(&window).cast_mut();
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(window);
        self.current.store(ptr, Ordering::Release);
        Ok(())
    }

    /// Bytes the windows take (the current one and those it replaced).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|w| w.bytes())
            .sum()
    }
}

fn shape(kind: Kind) -> WindowShape {
    match kind {
        Kind::Calls(n) => WindowShape::Calls(n),
        Kind::Time(span) => WindowShape::Time(span),
    }
}

fn kind(shape: WindowShape) -> Kind {
    match shape {
        WindowShape::Calls(n) => Kind::Calls(n),
        WindowShape::Time(span) => Kind::Time(span),
    }
}

/// The error of a window shape the window cannot take.
fn shape_error(shape: WindowShape) -> ConfigError {
    match shape {
        WindowShape::Calls(value) => ConfigError::WindowCalls { value },
        WindowShape::Time(value) => ConfigError::WindowTime { value },
    }
}

/// `shape`, if a window can take it.
pub(crate) fn check_window(shape: WindowShape) -> Result<WindowShape, ConfigError> {
    Window::new(kind(shape))
        .map(|_| shape)
        .map_err(|_| shape_error(shape))
}

/// A failure rate, if in `(0, 1]` (a NaN is not).
pub(crate) fn check_failure_rate(value: f64) -> Result<f64, ConfigError> {
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(ConfigError::FailureRate {
            value: value.into(),
        })
    }
}

/// `min_calls`, if at least 1.
pub(crate) fn check_min_calls(value: u32) -> Result<u32, ConfigError> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(ConfigError::MinCalls { value })
    }
}

/// What a failure that changes nothing in the memory storage's word
/// records: no change of generation, so announcing it reports nothing.
fn unchanged() -> Recorded {
    Recorded {
        applied: Applied {
            before: Snapshot::INITIAL,
            after: Snapshot::INITIAL,
            outcome: crate::state::Outcome::Counted { tripped: None },
        },
        clock_panic: None,
    }
}

/// `generation` as the window counts it: a storage may keep fewer bits of
/// it than 64 (the memory storage keeps 37, and wraps), the window compares
/// 64-bit numbers; this is the number nearest the window's own generation
/// with the same low 37 bits, so a wrap reads as one step forward.
#[inline(always)]
pub(crate) fn widen(window: &Window, generation: u64) -> u64 {
    window.widen(generation, GENERATION_BITS)
}

/// The bits of a generation [`widen`] takes from a storage's. A fast
/// success compares its stripe's generation with the call's on these bits
/// alone (`Window::record_success_narrow`): the two agree there only if
/// they are the same generation or 2^37 (about 1.4 * 10^11) generations
/// apart.
const GENERATION_BITS: u32 = 37;

impl CircuitBreaker {
    /// What the window holds now: calls, failures, slow calls, and the
    /// rates once it holds `min_calls` calls. A breaker with no rate
    /// condition on keeps no window: all zero and `None`.
    ///
    /// While the circuit is open or half-open the window is the one that
    /// opened it (trial calls are not recorded in it); entering closed
    /// empties it.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, State, WindowStats};
    ///
    /// let cb = CircuitBreaker::builder("api").failure_rate(0.5).window_calls(4).build();
    /// for _ in 0..3 {
    ///     let _ = cb.call(|| Ok::<_, &str>(()));
    /// }
    /// let _ = cb.call(|| Err::<(), _>("refused"));
    /// let stats = cb.window();
    /// assert_eq!((stats.calls, stats.failures, stats.failure_rate), (4, 1, Some(0.25)));
    /// let _ = cb.call(|| Err::<(), _>("refused")); // 2 of the last 4: 0.5 opens it
    /// assert_eq!(cb.current_state(), State::Open);
    /// assert_eq!(cb.window().failures, 2);
    /// cb.close();
    /// assert_eq!(cb.window().calls, 0); // emptied
    ///
    /// let plain = CircuitBreaker::new("db"); // the consecutive policy alone
    /// assert_eq!(plain.window(), WindowStats::default());
    /// ```
    pub fn window(&self) -> WindowStats {
        let Some(window) = self.shared.windows.get() else {
            return WindowStats::default();
        };
        let rate = self.policy().rate;
        if self.shared.backend.keeps_window() {
            let totals = self.shared.backend.window().unwrap_or_default();
            return WindowStats::of(totals, &rate);
        }
        WindowStats::of(window.stats(self.now()), &rate)
    }

    /// [`Binding::counted_successes`](crate::storage::Binding::counted_successes):
    /// the closed-state successes counted under `generation`, when the
    /// storage keeps the window (the breaker's own window is then a count
    /// of them).
    pub(crate) fn counted_successes(&self, generation: u64) -> u64 {
        match self.shared.windows.get() {
            Some(window) if self.shared.backend.keeps_window() => {
                window.recorded(widen(window, generation)).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Whether the window (if any) holds no failure and no slow call: a
    /// breaker whose eviction from a keyed group would lose nothing.
    pub(crate) fn window_is_quiet(&self) -> bool {
        self.shared.windows.get().is_none_or(|window| {
            let totals = window.stats(self.now());
            totals.failures == 0 && totals.slow == 0
        })
    }

    /// Records a success (or excluded error) of a closed-state call in the
    /// window, if there is one: one load and branch when there is not. A
    /// count window's common case is inline (`Window::count_success_fast`:
    /// a thread-local load, the stripe's chunk and era, a load and a store
    /// on the thread's own stripe); a time window's (with its coarse clock
    /// read) is one call, and so is anything else.
    ///
    /// A trial is not recorded, and is checked for off the inline path
    /// only: its generation (half-open) is never one a stripe counts, as
    /// stripes are entered by closed-state calls alone and every change of
    /// state makes a new generation, so the fast path never takes it.
    #[inline(always)]
    pub(crate) fn record_success_in_window(&self, ticket: Ticket) {
        if let Some(window) = self.shared.windows.get() {
            if !window.count_success_fast::<GENERATION_BITS>(ticket.generation) {
                self.record_success_in(window, ticket);
            }
        }
    }

    #[inline(never)]
    fn record_success_in(&self, window: &Window, ticket: Ticket) {
        if !ticket.trial {
            window.record_success_narrow::<GENERATION_BITS>(ticket.generation, || {
                self.shared.clock.coarse_now_nanos()
            });
        }
    }

    /// Records and applies a failure of the call admitted with `ticket`
    /// ([`failure_op`](Self::failure_op)). Under the rate alone, a failure
    /// that does not trip changes nothing in the memory storage's word
    /// (`step` counts nothing there without `fail_max`): it is not applied.
    #[inline(always)]
    pub(crate) fn apply_failure(&self, ticket: Ticket) -> Recorded {
        match self.shared.windows.get() {
            Some(window) if !ticket.trial => self.apply_rate_failure(window, ticket),
            _ => self.apply(failure_op(ticket)),
        }
    }

    #[inline(never)]
    fn apply_rate_failure(&self, window: &Window, ticket: Ticket) -> Recorded {
        match self.rate_failure_op(window, ticket) {
            Op::Failure { .. }
                if !self.shared.windows.consecutive() && self.shared.backend.is_memory() =>
            {
                unchanged()
            }
            op => self.apply(op),
        }
    }

    /// The operation that records a failure of the call admitted with
    /// `ticket`: under a rate policy a closed-state failure is counted in
    /// the window first, and is `Op::Trip` if that makes a rate hold.
    #[inline(always)]
    pub(crate) fn failure_op(&self, ticket: Ticket) -> Op {
        match self.shared.windows.get() {
            Some(window) if !ticket.trial => self.rate_failure_op(window, ticket),
            _ => failure_op(ticket),
        }
    }

    #[inline(never)]
    fn rate_failure_op(&self, window: &Window, ticket: Ticket) -> Op {
        if self.shared.backend.keeps_window() {
            // The storage counts the failure and decides.
            return failure_op(ticket);
        }
        let failed = Outcome {
            failed: true,
            slow: false,
        };
        match self.record_in_window(window, ticket, failed) {
            Some(reason) => Op::Trip {
                generation: ticket.generation,
                reason,
            },
            None => failure_op(ticket),
        }
    }

    /// Records a closed-state call's `outcome` (a failure or a slow call)
    /// in `window`; the rate condition it makes hold, if any. `None` too
    /// when the call is stale for the window (a newer generation's calls
    /// are counted there).
    pub(crate) fn record_in_window(
        &self,
        window: &Window,
        ticket: Ticket,
        outcome: Outcome,
    ) -> Option<Reason> {
        let totals = window.record_at(outcome, widen(window, ticket.generation), || {
            self.shared.clock.coarse_now_nanos()
        })?;
        trips(&totals, &self.shared.windows.policy_for(window))
    }

    /// Empties the window when `applied` entered closed (a trial success
    /// that closed the circuit, `close()`, `reset()`): the window counts
    /// the new generation from now on.
    #[inline(always)]
    pub(crate) fn clear_if_closed(&self, applied: &Applied) {
        if applied.after.generation != applied.before.generation
            && applied.after.state == State::Closed
        {
            if let Some(window) = self.shared.windows.get() {
                window.clear(widen(window, applied.after.generation));
            }
        }
    }

    /// Takes `rate` in: starts a new, empty window of its shape if a rate
    /// condition is on and the current window (if any) has another shape,
    /// and copies its numbers for the failures to decide with. The caller
    /// holds the edit lock.
    pub(crate) fn apply_rate_policy(&self, rate: &RatePolicy) -> Result<(), ConfigError> {
        let windows = &self.shared.windows;
        // A storage that keeps the window is told of successes through a
        // count of them: a count window (of one call) is that count.
        let shape = if self.shared.backend.keeps_window() {
            WindowShape::Calls(1)
        } else {
            rate.window
        };
        let same_shape = windows.get().is_some_and(|w| w.kind() == kind(shape));
        if rate.is_on() && !same_shape {
            let snap: Snapshot = self.snapshot();
            windows.start(shape, snap.generation)?;
            self.shared.flags.set_windowed();
        }
        windows.store(rate);
        Ok(())
    }
}

#[cfg(test)]
impl CircuitBreaker {
    /// Bytes the breaker takes on the heap: its shared state (with the
    /// `Arc` counts), its policy, its empty list of exclusions, its lists
    /// of listeners (`dispatch.rs`) and its windows.
    pub(crate) fn bytes(&self) -> usize {
        use crate::breaker::Shared;
        const ARC: usize = 2 * std::mem::size_of::<usize>();
        let exclusions = ARC + std::mem::size_of::<Vec<()>>();
        ARC + std::mem::size_of::<Shared>()
            + ARC
            + std::mem::size_of::<crate::state::Policy>()
            + exclusions
            + self.shared.listeners.bytes()
            + self.shared.windows.bytes()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The memory figures in the README: a breaker of each policy after 2
    /// and after 16 threads (alive at once) have called it.
    #[test]
    fn memory_figures() {
        use std::sync::Barrier;
        type Make = fn() -> CircuitBreaker;
        let policies: [(&str, Make); 3] = [
            ("consecutive", || CircuitBreaker::new("m")),
            ("count, 100 calls", || {
                CircuitBreaker::builder("m").failure_rate(0.5).build()
            }),
            ("time, 60 s", || {
                CircuitBreaker::builder("m")
                    .failure_rate(0.5)
                    .window_time(Duration::from_secs(60))
                    .build()
            }),
        ];
        for (name, make) in policies {
            let mut figures = Vec::new();
            for threads in [2, 16] {
                let cb = make();
                let barrier = Barrier::new(threads);
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            barrier.wait();
                            let _ = cb.call(|| Ok::<_, ()>(()));
                            barrier.wait();
                        });
                    }
                });
                figures.push(cb.bytes());
            }
            println!(
                "{name}: {} B (2 threads), {} B (16 threads)",
                figures[0], figures[1]
            );
            assert!(
                figures[0] <= figures[1] && figures[1] < 8 * 1024,
                "{name}: {figures:?}"
            );
        }
    }

    #[test]
    fn a_replaced_window_stays_readable() {
        let windows = Windows::new();
        assert!(windows.get().is_none());
        windows.start(WindowShape::Calls(10), 0).unwrap();
        let first = windows.get().unwrap();
        first.record_success(0, || Duration::ZERO);
        windows.start(WindowShape::Calls(20), 0).unwrap();
        // The first window is still alive and counts what it counted.
        assert_eq!(first.stats(Duration::ZERO).calls, 1);
        assert_eq!(windows.get().unwrap().kind(), Kind::Calls(20));
        assert_eq!(windows.get().unwrap().stats(Duration::ZERO).calls, 0);
        assert_eq!(
            windows.start(WindowShape::Calls(0), 0),
            Err(ConfigError::WindowCalls { value: 0 })
        );
    }

    #[test]
    fn a_37_bit_generation_widens_across_its_wrap() {
        let window = Window::new(Kind::Calls(4)).unwrap();
        let last = (1u64 << 37) - 1;
        window.clear(last);
        assert_eq!(widen(&window, last), last);
        assert_eq!(widen(&window, 0), 1 << 37); // wrapped: one step forward
        assert_eq!(widen(&window, last - 3), last - 3); // older stays older
        window.clear(widen(&window, 2));
        assert_eq!(window.generation(), (1 << 37) + 2);
        assert_eq!(widen(&window, 2), (1 << 37) + 2);
        // A storage with 64-bit generations near the window's: unchanged.
        let wide = Window::new(Kind::Calls(4)).unwrap();
        wide.clear(5 << 40);
        assert_eq!(widen(&wide, (5 << 40) + 9), (5 << 40) + 9);
    }
}
