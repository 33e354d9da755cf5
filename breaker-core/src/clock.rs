//! Where a breaker gets the time: the system clock, or a manual one in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
#[cfg(not(target_os = "linux"))]
use std::time::Instant;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

crate::forward::trait_with_forwarding! {
    /// A source of time, as a [`Duration`] since the Unix epoch.
    ///
    /// A breaker reads the clock only off its hot path: to decide whether an open
    /// circuit's reset timeout has passed and to stamp `opened_at`. Inject a
    /// [`ManualClock`] to test timeouts without sleeping.
    ///
    /// Implementations should never go backwards; a clock that does only delays
    /// the next trial.
    pub trait Clock: Send + Sync + 'static {
        /// The current time since the Unix epoch.
        fn now(&self) -> Duration;

        /// A cheaper reading that is never ahead of [`now`](Clock::now) and
        /// lags it by at most [`coarse_lag`](Clock::coarse_lag). An open breaker
        /// rejects calls on this reading while the reset timeout is further away
        /// than the lag, and reads `now` only near the deadline, so the trial is
        /// never early nor late. Defaults to `now`.
        fn now_coarse(&self) -> Duration {
            self.now()
        }

        /// How far [`now_coarse`](Clock::now_coarse) may lag; defaults to zero.
        fn coarse_lag(&self) -> Duration {
            Duration::ZERO
        }
    }
}

/// The default clock: wall-clock time sampled once, then advanced by the
/// monotonic clock, so it never jumps when the system time is changed.
///
/// On Linux its coarse reading is `CLOCK_MONOTONIC_COARSE` (a few
/// nanoseconds, lagging by one scheduler tick), which keeps an open
/// breaker's rejections cheap. On x86-64 Linux with glibc, both clocks are
/// read through the vDSO's own `clock_gettime` (the function libc's
/// wrapper calls, without the wrapper), once it has been found and checked
/// against libc's; elsewhere through libc.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    base: Duration,
    #[cfg(not(target_os = "linux"))]
    start: Instant,
    #[cfg(target_os = "linux")]
    start_mono: Duration,
    #[cfg(target_os = "linux")]
    lag: Duration,
    /// The epoch's distance from the monotonic clock's zero, in
    /// nanoseconds modulo 2^64: a monotonic reading plus this is the time
    /// since the epoch.
    #[cfg(target_os = "linux")]
    epoch_offset_ns: u64,
    #[cfg(target_os = "linux")]
    lag_ns: u64,
    /// What reads the clocks (`monotonic::reader`).
    #[cfg(target_os = "linux")]
    read: monotonic::GetTime,
}

impl SystemClock {
    /// A clock anchored to the system time now.
    pub fn new() -> Self {
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        #[cfg(target_os = "linux")]
        let read = monotonic::reader();
        #[cfg(target_os = "linux")]
        let (start_mono, lag) = (
            monotonic::read(read, monotonic::PRECISE),
            monotonic::coarse_resolution(),
        );
        SystemClock {
            base,
            #[cfg(not(target_os = "linux"))]
            start: Instant::now(),
            #[cfg(target_os = "linux")]
            start_mono,
            #[cfg(target_os = "linux")]
            lag,
            #[cfg(target_os = "linux")]
            epoch_offset_ns: as_nanos(base).wrapping_sub(as_nanos(start_mono)),
            #[cfg(target_os = "linux")]
            lag_ns: as_nanos(lag),
            #[cfg(target_os = "linux")]
            read,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[cfg(target_os = "linux")]
    fn now(&self) -> Duration {
        self.base + monotonic::read(self.read, monotonic::PRECISE).saturating_sub(self.start_mono)
    }

    #[cfg(not(target_os = "linux"))]
    fn now(&self) -> Duration {
        self.base + self.start.elapsed()
    }

    #[cfg(target_os = "linux")]
    fn now_coarse(&self) -> Duration {
        self.base + monotonic::read(self.read, monotonic::COARSE).saturating_sub(self.start_mono)
    }

    #[cfg(target_os = "linux")]
    fn coarse_lag(&self) -> Duration {
        self.lag
    }
}

/// The breaker's clock: the system clock matched directly (integer
/// nanoseconds, no virtual call), any other through the trait.
#[derive(Clone)]
pub(crate) enum ClockImpl {
    System(SystemClock),
    Other(Arc<dyn Clock>),
}

impl ClockImpl {
    pub(crate) fn new<C: Clock>(clock: C) -> Self {
        let mut slot = Some(clock);
        match (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<SystemClock>>() {
            Some(system) => ClockImpl::System(system.take().unwrap_or_default()),
            None => match slot {
                Some(other) => ClockImpl::Other(Arc::new(other)),
                None => ClockImpl::System(SystemClock::new()),
            },
        }
    }

    pub(crate) fn now(&self) -> Duration {
        match self {
            ClockImpl::System(c) => c.now(),
            ClockImpl::Other(c) => c.now(),
        }
    }

    /// A reading for timing a call, in nanoseconds: the system clock's
    /// monotonic clock as it is (no epoch to add), any other clock's `now`.
    /// Only differences of two readings mean anything.
    #[inline]
    pub(crate) fn monotonic_nanos(&self) -> u64 {
        match self {
            #[cfg(target_os = "linux")]
            ClockImpl::System(c) => monotonic::read_nanos(c.read, monotonic::PRECISE),
            #[cfg(not(target_os = "linux"))]
            ClockImpl::System(c) => as_nanos(c.now()),
            ClockImpl::Other(c) => as_nanos(c.now()),
        }
    }

    /// The coarse reading and its lag, in nanoseconds since the epoch.
    #[inline]
    pub(crate) fn coarse_nanos(&self) -> (u64, u64) {
        match self {
            #[cfg(target_os = "linux")]
            ClockImpl::System(c) => (c.coarse_nanos(), c.lag_ns),
            #[cfg(not(target_os = "linux"))]
            ClockImpl::System(c) => (as_nanos(c.now()), 0),
            ClockImpl::Other(c) => (as_nanos(c.now_coarse()), as_nanos(c.coarse_lag())),
        }
    }

    /// The coarse reading alone, in nanoseconds since the epoch: what a
    /// time window's success reads (integer arithmetic on the system
    /// clock's reading, no `Duration` made; any other clock out of line).
    #[inline(always)]
    pub(crate) fn coarse_now_nanos(&self) -> u64 {
        match self {
            #[cfg(target_os = "linux")]
            ClockImpl::System(c) => c.coarse_nanos(),
            #[cfg(not(target_os = "linux"))]
            ClockImpl::System(c) => as_nanos(c.now()),
            ClockImpl::Other(c) => other_coarse_nanos(c),
        }
    }
}

/// [`ClockImpl::coarse_now_nanos`] of a clock other than the system's.
#[inline(never)]
fn other_coarse_nanos(clock: &Arc<dyn Clock>) -> u64 {
    as_nanos(clock.now_coarse())
}

#[cfg(target_os = "linux")]
impl SystemClock {
    /// `now_coarse` in integer nanoseconds since the epoch: the coarse
    /// reading moved by one addition. (A coarse reading taken just after
    /// the clock was made may be older than its start, by less than a
    /// tick: it is then that much before `base`, never ahead of `now`.)
    #[inline(always)]
    fn coarse_nanos(&self) -> u64 {
        monotonic::read_nanos(self.read, monotonic::COARSE).wrapping_add(self.epoch_offset_ns)
    }
}

/// Linux's monotonic clocks, read directly: `CLOCK_MONOTONIC` (what
/// `Instant` reads) and `CLOCK_MONOTONIC_COARSE` (the same clock as of the
/// last scheduler tick; never ahead of the precise one).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod monotonic {
    use std::sync::OnceLock;
    use std::time::Duration;

    pub(super) const PRECISE: libc::clockid_t = libc::CLOCK_MONOTONIC;
    pub(super) const COARSE: libc::clockid_t = libc::CLOCK_MONOTONIC_COARSE;

    /// A function with `clock_gettime`'s signature and contract (it writes
    /// the reading of a clock id into a `timespec` and returns 0, or
    /// returns -1 and writes nothing that is read).
    pub(super) type GetTime =
        unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;

    /// What reads the clocks in this process: the vDSO's `clock_gettime`
    /// where [`vdso::find`] finds it, else libc's. Found once.
    ///
    /// libc's `clock_gettime` calls the same vDSO function through a
    /// pointer it loads from the dynamic loader's state: one call level
    /// and two dependent loads more on each reading (the time window's
    /// success reads the coarse clock each time).
    pub(super) fn reader() -> GetTime {
        static READER: OnceLock<GetTime> = OnceLock::new();
        *READER.get_or_init(|| vdso::find().unwrap_or(libc::clock_gettime))
    }

    /// `clock`'s reading through `read`, or `None` if Linux refused it.
    #[inline]
    fn raw(read: GetTime, clock: libc::clockid_t) -> Option<libc::timespec> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `read` is libc's `clock_gettime` or a function with its
        // signature and contract (`GetTime`, `vdso::find`). `ts` is a
        // valid, writable `timespec` that outlives the call, and `clock` is
        // one of the two constants above, which Linux has supported since
        // 2.6.32. The function writes only `ts`.
        let rc = unsafe { read(clock, &mut ts) };
        (rc == 0).then_some(ts)
    }

    #[inline]
    pub(super) fn read(read: GetTime, clock: libc::clockid_t) -> Duration {
        match raw(read, clock) {
            Some(ts) => Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            ),
            None => Duration::ZERO,
        }
    }

    /// `read` in integer nanoseconds.
    #[inline]
    pub(super) fn read_nanos(read: GetTime, clock: libc::clockid_t) -> u64 {
        match raw(read, clock) {
            Some(ts) => (ts.tv_sec as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(ts.tv_nsec as u64),
            None => 0,
        }
    }

    /// The coarse clock's resolution, one scheduler tick (1 to 10 ms).
    pub(super) fn coarse_resolution() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: as in `read`: a valid, writable `timespec` and a
        // supported clock id; `clock_getres` writes only `ts`.
        let rc = unsafe { libc::clock_getres(COARSE, &mut ts) };
        let res = Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        );
        if rc != 0 || res.is_zero() || res > Duration::from_millis(100) {
            // Unknown: a lag so large the coarse reading is never trusted
            // near a deadline.
            return Duration::from_secs(1);
        }
        // One tick of lag, plus one for the tick in progress.
        res * 2
    }

    /// The vDSO's `clock_gettime`, called without libc's wrapper.
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    pub(super) mod vdso {
        use super::{raw, GetTime, COARSE, PRECISE};

        /// The vDSO's `clock_gettime`, if the dynamic loader knows the vDSO
        /// and the function reads both clocks as libc's does.
        ///
        /// The name, version and signature are the kernel's public ABI for
        /// x86-64 (vdso(7): `__vdso_clock_gettime`, `LINUX_2.6`, "the same
        /// as the C library's `clock_gettime`"), and glibc names the vDSO
        /// `linux-vdso.so.1` among the loaded objects. Nothing of the
        /// vDSO's private data is read here; where it is not found (a
        /// static binary, a kernel or a tool such as valgrind that maps no
        /// vDSO), `None`, and the caller reads through libc.
        pub(in super::super) fn find() -> Option<GetTime> {
            // SAFETY: the strings are NUL-terminated literals.
            // `RTLD_NOLOAD` only looks up an object already loaded: nothing
            // is loaded, no initialiser runs.
            let vdso = unsafe {
                libc::dlopen(
                    c"linux-vdso.so.1".as_ptr(),
                    libc::RTLD_NOW | libc::RTLD_NOLOAD,
                )
            };
            if vdso.is_null() {
                return None;
            }
            // SAFETY: `vdso` is a handle `dlopen` returned and never closed
            // (the vDSO stays mapped for the life of the process, so the
            // function found stays callable); the strings are literals.
            let symbol = unsafe {
                libc::dlvsym(
                    vdso,
                    c"__vdso_clock_gettime".as_ptr(),
                    c"LINUX_2.6".as_ptr(),
                )
            };
            if symbol.is_null() {
                return None;
            }
            // SAFETY: the symbol is a function with `clock_gettime`'s C
            // signature (vdso(7), above); on x86-64 a function pointer and
            // a data pointer have the same size and representation.
            let found = unsafe { std::mem::transmute::<*mut libc::c_void, GetTime>(symbol) };
            agrees(found).then_some(found)
        }

        /// Whether `found` reads both clocks, and its precise reading falls
        /// between two of libc's.
        fn agrees(found: GetTime) -> bool {
            let libc_read: GetTime = libc::clock_gettime;
            let nanos =
                |ts: libc::timespec| (ts.tv_sec as i128) * 1_000_000_000 + ts.tv_nsec as i128;
            match (
                raw(libc_read, PRECISE),
                raw(found, PRECISE),
                raw(libc_read, PRECISE),
                raw(found, COARSE),
            ) {
                (Some(before), Some(reading), Some(after), Some(_)) => {
                    (nanos(before)..=nanos(after)).contains(&nanos(reading))
                }
                _ => false,
            }
        }

        #[cfg(test)]
        mod tests {
            use super::super::{read, reader};
            use super::*;

            #[test]
            fn the_vdso_function_is_found_and_read_between_two_libc_readings() {
                // SAFETY: `getauxval` reads the process's auxiliary vector;
                // 0 means the kernel mapped no vDSO (`vdso=0`).
                #[allow(unsafe_code)]
                let mapped = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } != 0;
                if !mapped {
                    eprintln!("skipped: the kernel mapped no vDSO into this process");
                    return;
                }
                let found = find().expect("glibc on x86-64 Linux knows a mapped vDSO");
                assert!(std::ptr::fn_addr_eq(reader(), found));
                let libc_read: GetTime = libc::clock_gettime;
                for clock in [PRECISE, COARSE] {
                    for _ in 0..10_000 {
                        let before = read(libc_read, clock);
                        let reading = read(found, clock);
                        let after = read(libc_read, clock);
                        assert!(before <= reading && reading <= after, "clock {clock}");
                    }
                }
            }
        }
    }

    /// Where the vDSO is not looked for: libc reads the clocks.
    #[cfg(not(all(target_arch = "x86_64", target_env = "gnu")))]
    mod vdso {
        pub(in super::super) fn find() -> Option<super::GetTime> {
            None
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn read(clock: libc::clockid_t) -> Duration {
            super::read(reader(), clock)
        }

        #[test]
        fn coarse_is_never_ahead_of_precise_and_lags_by_at_most_the_resolution() {
            let lag = coarse_resolution();
            for _ in 0..10_000 {
                // The coarse reading is taken at a time between the two
                // precise ones: at most `lag` behind the first, never ahead
                // of the second, however the thread is scheduled.
                let before = read(PRECISE);
                let coarse = read(COARSE);
                let after = read(PRECISE);
                assert!(coarse <= after, "{coarse:?} > {after:?}");
                let behind = before.saturating_sub(coarse);
                assert!(behind <= lag, "lag {behind:?} > {lag:?}");
            }
        }

        #[test]
        fn both_clocks_are_monotonic_and_nonzero() {
            let (mut c, mut p) = (read(COARSE), read(PRECISE));
            assert!(!p.is_zero());
            for _ in 0..10_000 {
                let (c2, p2) = (read(COARSE), read(PRECISE));
                assert!(c2 >= c && p2 >= p);
                (c, p) = (c2, p2);
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_system_clocks_integer_coarse_reading_is_never_ahead_of_now_and_lags_by_at_most_the_lag()
    {
        // From its first reading on: a coarse reading just after the clock
        // is made may be older than its start.
        let clock = SystemClock::new();
        let lag = as_nanos(clock.coarse_lag());
        for _ in 0..10_000 {
            let before = as_nanos(clock.now());
            let coarse = clock.coarse_nanos();
            let after = as_nanos(clock.now());
            assert!(coarse <= after, "{coarse} > {after}");
            assert!(
                before.saturating_sub(coarse) <= lag,
                "{coarse} lags {before} by more than {lag}"
            );
        }
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use breaker::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now() - t0, Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at 2001-09-09 01:46:40 UTC (10^9 seconds after the
    /// epoch), a round, recognisable start.
    pub fn new() -> Self {
        Self::starting_at(Duration::from_secs(1_000_000_000))
    }

    /// A clock standing at `since_epoch`.
    pub fn starting_at(since_epoch: Duration) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(as_nanos(since_epoch))),
        }
    }

    /// Moves the clock forward by `by`. The clock stops at the latest time
    /// it can show (`u64::MAX` nanoseconds after the epoch, in the year
    /// 2554) instead of wrapping around.
    pub fn advance(&self, by: Duration) {
        let by = as_nanos(by);
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

pub(crate) fn as_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
