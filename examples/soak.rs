//! Soak test: many threads and tokio tasks call a flaky dependency through
//! one breaker for a given time while its failure rate changes, a chaos
//! thread makes manual transitions and a monitor checks the breaker's
//! invariants continuously; in the middle fifth of the run, storm threads
//! make manual transitions as fast as they can (issue 10, item 3). Prints a
//! summary and exits non-zero on any violation.
//!
//! ```text
//! cargo run --release --example soak -- --seconds 30 --storage memory
//! cargo run --release --features redis --example soak -- --seconds 30 --storage redis
//! ```
//!
//! Options (or the environment variables in brackets): `--seconds N`
//! [`SOAK_SECONDS`, default 10], `--storage memory|redis` [`SOAK_STORAGE`,
//! default memory], `--threads N` [`SOAK_THREADS`, default 8] calling with
//! `call`, `--tasks N` [`SOAK_TASKS`, default 32] calling with `call_async`
//! (some of them dropped before they finish), `--redis-url URL`
//! [`SOAK_REDIS_URL`; without it a `redis-server` is started on a free
//! loopback port and stopped at the end].
//!
//! Invariants checked, each a violation when broken:
//! - every snapshot is one of the three states with counters in range:
//!   closed with `fail_counter < fail_max`, no trial and no `success_counter`;
//!   open with no trial and no `success_counter`; half-open with
//!   `success_counter < success_threshold`;
//! - no call runs while the circuit stays open, and no two half-open trials
//!   of one generation run at once (counted with a shared counter; a call is
//!   known to be a trial when the state just before it and at its start show
//!   it could only have been admitted in open or half-open);
//! - a listener hears transitions in order and one at a time, on every
//!   storage: each `state_change`'s old state is the previous one's new
//!   state, old and new differ, no two `state_change` calls overlap, and
//!   once every caller has finished the last one heard is the breaker's
//!   state (on Redis, once this process's view has settled);
//! - no thread or task panics.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker::storage::Snapshot;
use breaker::{CircuitBreaker, Error, Listener, State};

const FAIL_MAX: u32 = 5;
const SUCCESS_THRESHOLD: u32 = 2;
const RESET_TIMEOUT: Duration = Duration::from_millis(3);
/// How many violation messages are kept and printed.
const KEEP: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Memory,
    Redis,
}

struct Args {
    seconds: f64,
    storage: Kind,
    threads: usize,
    tasks: usize,
    redis_url: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let env = |name: &str| std::env::var(name).ok();
    let mut seconds = env("SOAK_SECONDS");
    let mut storage = env("SOAK_STORAGE");
    let mut threads = env("SOAK_THREADS");
    let mut tasks = env("SOAK_TASKS");
    let mut redis_url = env("SOAK_REDIS_URL");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let slot = match key.as_str() {
            "--seconds" => &mut seconds,
            "--storage" => &mut storage,
            "--threads" => &mut threads,
            "--tasks" => &mut tasks,
            "--redis-url" => &mut redis_url,
            "-h" | "--help" => {
                return Err(
                    "usage: soak [--seconds N] [--storage memory|redis] [--threads N] \
                            [--tasks N] [--redis-url URL]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument `{other}` (see --help)")),
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or(format!("`{key}` needs a value"))?,
        };
        *slot = Some(value);
    }
    let number = |v: Option<String>, name: &str, default: f64| -> Result<f64, String> {
        match v {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or(format!("`{name}` must be a non-negative number, got `{v}`")),
        }
    };
    let storage = match storage.as_deref() {
        None | Some("memory") => Kind::Memory,
        Some("redis") => Kind::Redis,
        Some(other) => return Err(format!("unknown storage `{other}`: memory or redis")),
    };
    Ok(Args {
        seconds: number(seconds, "--seconds", 10.0)?,
        storage,
        threads: number(threads, "--threads", 8.0)? as usize,
        tasks: number(tasks, "--tasks", 32.0)? as usize,
        redis_url,
    })
}

// ---------------------------------------------------------------------------
// Counting and reporting.

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    rejections: AtomicU64,
    cancelled: AtomicU64,
    trials_seen: AtomicU64,
    manual: AtomicU64,
    storm: AtomicU64,
    snapshots_checked: AtomicU64,
    violations: AtomicU64,
    messages: Mutex<Vec<String>>,
}

impl Stats {
    fn violation(&self, message: String) {
        let n = self.violations.fetch_add(1, Ordering::Relaxed);
        if n < KEEP as u64 {
            eprintln!("soak: VIOLATION: {message}");
            self.messages.lock().unwrap().push(message);
        }
    }

    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks what a listener hears: transitions in order, one at a time.
struct Checker {
    stats: Arc<Stats>,
    last: Mutex<State>,
    /// Transitions heard, by (old, new).
    heard: Mutex<HashMap<(State, State), u64>>,
    inside: AtomicBool,
    failures: AtomicU64,
}

impl Listener for Checker {
    /// Now and then slow: a failure's listeners run between the failure's
    /// commit and its `state_change`, so a slow one leaves time for other
    /// threads' transitions to race the report.
    fn failure(&self, _: &CircuitBreaker, _: &breaker::Failure<'_>) {
        if self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(8)
        {
            std::thread::sleep(Duration::from_micros(300));
        }
    }

    fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
        if self.inside.swap(true, Ordering::AcqRel) {
            self.stats
                .violation(format!("state_change {old} -> {new} while another ran"));
        }
        {
            let mut last = self.last.lock().unwrap();
            if old != *last {
                self.stats.violation(format!(
                    "listener heard {old} -> {new} right after a change to {}",
                    *last
                ));
            }
            if old == new {
                self.stats
                    .violation(format!("listener heard {old} -> {new}: no change"));
            }
            *last = new;
        }
        *self.heard.lock().unwrap().entry((old, new)).or_default() += 1;
        self.inside.store(false, Ordering::Release);
    }
}

/// Checks one snapshot: a state with its counters in range.
fn check_snapshot(stats: &Stats, s: &Snapshot) {
    stats.count(&stats.snapshots_checked);
    let ok = State::ALL.contains(&s.state)
        && s.fail_counter <= breaker::storage::MAX_FAIL_MAX
        && match s.state {
            State::Closed => s.fail_counter < FAIL_MAX && s.success_counter == 0 && !s.trial,
            State::Open => s.success_counter == 0 && !s.trial,
            State::HalfOpen => s.success_counter < SUCCESS_THRESHOLD,
        };
    if !ok {
        stats.violation(format!("inconsistent snapshot {s:?}"));
    }
}

/// Checks the time until the next trial: never more than the reset timeout
/// (plus the millisecond `opened_at` is rounded up to).
fn check_retry_after(stats: &Stats, cb: &CircuitBreaker) {
    if let Some(wait) = cb.retry_after() {
        if wait > RESET_TIMEOUT + Duration::from_millis(1) {
            stats.violation(format!("retry_after {wait:?} beyond the reset timeout"));
        }
    }
}

/// Half-open trials running now, by generation.
#[derive(Default)]
struct Trials(Mutex<HashMap<u64, u32>>);

/// What a call was admitted as, judged from the snapshot just before it and
/// the one at its start (generations only grow, and a call is admitted in
/// open or half-open only as the trial).
enum Admission {
    Trial(u64),
    Unknown,
}

fn judge(stats: &Stats, before: &Snapshot, start: &Snapshot) -> Admission {
    let same = before.generation == start.generation;
    match (before.state, start.state) {
        (State::HalfOpen, State::HalfOpen) if same => Admission::Trial(start.generation),
        (State::Open, State::HalfOpen) if start.generation == before.generation.wrapping_add(1) => {
            Admission::Trial(start.generation)
        }
        (State::Open, State::Open) if same => {
            stats.violation(format!("a call ran while open: {start:?}"));
            Admission::Unknown
        }
        _ => Admission::Unknown,
    }
}

/// Marks a trial running until dropped; a second one of the same generation
/// running at once is a violation.
struct TrialGuard<'a> {
    trials: &'a Trials,
    generation: Option<u64>,
}

impl<'a> TrialGuard<'a> {
    fn enter(stats: &Stats, trials: &'a Trials, admission: Admission) -> Self {
        let generation = match admission {
            Admission::Trial(g) => Some(g),
            Admission::Unknown => None,
        };
        if let Some(g) = generation {
            stats.count(&stats.trials_seen);
            let mut running = trials.0.lock().unwrap();
            let n = running.entry(g).or_default();
            *n += 1;
            if *n > 1 {
                stats.violation(format!("{n} half-open trials of generation {g} at once"));
            }
        }
        TrialGuard { trials, generation }
    }

    fn is_trial(&self) -> bool {
        self.generation.is_some()
    }
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.generation {
            let mut running = self.trials.0.lock().unwrap();
            if let Some(n) = running.get_mut(&g) {
                *n -= 1;
                if *n == 0 {
                    running.remove(&g);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The flaky dependency.

#[derive(Debug)]
struct Boom;

/// A dependency whose failure rate cycles through phases: healthy, flaky,
/// down, recovering, flapping.
struct Flaky {
    start: Instant,
}

impl Flaky {
    /// Failures per 1,000 calls now.
    fn failure_permille(&self) -> u64 {
        const PHASES: [(u64, u64); 5] =
            [(300, 0), (300, 200), (200, 1_000), (300, 500), (150, 950)];
        let cycle: u64 = PHASES.iter().map(|(ms, _)| ms).sum();
        let mut t = self.start.elapsed().as_millis() as u64 % cycle;
        for (ms, permille) in PHASES {
            if t < ms {
                return permille;
            }
            t -= ms;
        }
        0
    }

    fn fails(&self, rng: &mut Rng) -> bool {
        rng.below(1_000) < self.failure_permille()
    }
}

/// xorshift64*: enough randomness for a soak, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------
// Storage.

/// A `redis-server` on a free loopback port, stopped when dropped.
struct RedisServer {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    fn start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("breaker-soak-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (is it installed?): {e}"))?;
        let server = RedisServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("redis-server did not listen on port {port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The breaker under test, and the Redis server it uses if one was started.
fn build(
    args: &Args,
    checker: Arc<Checker>,
) -> Result<(CircuitBreaker, Option<RedisServer>), String> {
    let builder = CircuitBreaker::builder("soak")
        .fail_max(FAIL_MAX)
        .success_threshold(SUCCESS_THRESHOLD)
        .reset_timeout(RESET_TIMEOUT)
        .throw_new_error_on_trip(true)
        .listener_arc(checker);
    match args.storage {
        Kind::Memory => Ok((builder.build(), None)),
        Kind::Redis => build_redis(args, builder),
    }
}

#[cfg(feature = "redis")]
fn build_redis(
    args: &Args,
    builder: breaker::CircuitBreakerBuilder,
) -> Result<(CircuitBreaker, Option<RedisServer>), String> {
    let (url, server) = match &args.redis_url {
        Some(url) => (url.clone(), None),
        None => {
            let server = RedisServer::start()?;
            (server.url(), Some(server))
        }
    };
    let storage = breaker::RedisStorage::builder(url.as_str())
        .namespace(format!("soak-{}", std::process::id()))
        .build()
        .map_err(|e| format!("RedisStorage at {url}: {e}"))?;
    let cb = builder.storage(storage).build();
    Ok((cb, server))
}

#[cfg(not(feature = "redis"))]
fn build_redis(
    args: &Args,
    _: breaker::CircuitBreakerBuilder,
) -> Result<(CircuitBreaker, Option<RedisServer>), String> {
    let _ = (RedisServer::start, RedisServer::url, &args.redis_url);
    Err(
        "--storage redis needs the `redis` feature: cargo run --features redis --example soak"
            .into(),
    )
}

// ---------------------------------------------------------------------------
// The callers.

struct World {
    cb: CircuitBreaker,
    stats: Arc<Stats>,
    trials: Trials,
    flaky: Flaky,
    deadline: Instant,
    /// When the storm of manual transitions starts and stops.
    storm: (Instant, Instant),
}

impl World {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn tally<T>(&self, result: &Result<T, Error<Boom>>) {
        let s = &self.stats;
        s.count(&s.calls);
        match result {
            Ok(_) => s.count(&s.successes),
            Err(Error::Open(_)) => s.count(&s.rejections),
            Err(Error::Tripped(..) | Error::Inner(_)) => s.count(&s.failures),
        }
    }
}

fn sync_caller(world: &World, seed: u64) {
    let mut rng = Rng::new(seed);
    while world.running() {
        let before = world.cb.snapshot();
        let fails = world.flaky.fails(&mut rng);
        let spin = rng.below(200);
        let result = world.cb.call(|| {
            let start = world.cb.snapshot();
            let trial = TrialGuard::enter(
                &world.stats,
                &world.trials,
                judge(&world.stats, &before, &start),
            );
            if trial.is_trial() {
                // Long enough for an overlapping trial to be seen.
                std::thread::sleep(Duration::from_micros(200));
            } else {
                for _ in 0..spin {
                    std::hint::spin_loop();
                }
            }
            if fails {
                Err(Boom)
            } else {
                Ok(())
            }
        });
        world.tally(&result);
        if rng.below(64) == 0 {
            std::thread::yield_now();
        }
    }
}

async fn async_caller(world: Arc<World>, seed: u64) {
    let mut rng = Rng::new(seed);
    while world.running() {
        let before = world.cb.snapshot();
        let fails = world.flaky.fails(&mut rng);
        let work = Duration::from_micros(rng.below(1_500));
        // One call in eight may be dropped before it finishes: it counts as
        // neither success nor failure and frees a trial place it holds.
        let patience = (rng.below(8) == 0).then(|| Duration::from_micros(rng.below(1_000)));
        let w = &world;
        let call = world.cb.call_async(async move {
            let start = w.cb.snapshot();
            let _trial = TrialGuard::enter(&w.stats, &w.trials, judge(&w.stats, &before, &start));
            tokio::time::sleep(work).await;
            if fails {
                Err(Boom)
            } else {
                Ok(())
            }
        });
        match patience {
            None => {
                let result = call.await;
                world.tally(&result);
            }
            Some(patience) => match tokio::time::timeout(patience, call).await {
                Ok(result) => world.tally(&result),
                Err(_) => {
                    world.stats.count(&world.stats.calls);
                    world.stats.count(&world.stats.cancelled);
                }
            },
        }
        if rng.below(16) == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Now and then a manual transition, as an operator would.
fn chaos(world: &World, seed: u64) {
    let mut rng = Rng::new(seed);
    while world.running() {
        std::thread::sleep(Duration::from_millis(5 + rng.below(40)));
        match rng.below(10) {
            0 => world.cb.open(),
            1 => world.cb.close(),
            2 => world.cb.half_open(),
            3 => world.cb.reset(),
            _ => continue,
        }
        world.stats.count(&world.stats.manual);
    }
}

/// How many threads make the storm of manual transitions.
const STORM_THREADS: u64 = 3;

/// The storm: in the middle fifth of the run, manual transitions in a tight
/// loop (several threads at once), while the callers and the monitor go on.
/// Every caller must keep returning, and the listener must hear every
/// transition once and in order.
fn storm(world: &World, seed: u64) {
    let (from, until) = world.storm;
    std::thread::sleep(from.saturating_duration_since(Instant::now()));
    let mut rng = Rng::new(seed);
    let mut made = 0;
    while Instant::now() < until && world.running() {
        match rng.below(4) {
            0 => world.cb.open(),
            1 => world.cb.close(),
            2 => world.cb.half_open(),
            _ => world.cb.reset(),
        }
        made += 1;
    }
    world.stats.storm.fetch_add(made, Ordering::Relaxed);
}

fn monitor(world: &World) {
    while world.running() {
        check_snapshot(&world.stats, &world.cb.snapshot());
        check_retry_after(&world.stats, &world.cb);
        std::thread::sleep(Duration::from_micros(500));
    }
}

// ---------------------------------------------------------------------------

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("soak: {message}");
            return ExitCode::from(2);
        }
    };
    let stats = Arc::new(Stats::default());
    let checker = Arc::new(Checker {
        stats: Arc::clone(&stats),
        last: Mutex::new(State::Closed),
        heard: Mutex::new(HashMap::new()),
        inside: AtomicBool::new(false),
        failures: AtomicU64::new(0),
    });
    let (cb, server) = match build(&args, Arc::clone(&checker)) {
        Ok(built) => built,
        Err(message) => {
            eprintln!("soak: {message}");
            return ExitCode::from(2);
        }
    };
    // A shared state left by an earlier run would not start closed.
    cb.reset();
    *checker.last.lock().unwrap() = cb.current_state();

    let started = Instant::now();
    let world = Arc::new(World {
        cb,
        stats: Arc::clone(&stats),
        trials: Trials::default(),
        flaky: Flaky { start: started },
        deadline: started + Duration::from_secs_f64(args.seconds),
        storm: (
            started + Duration::from_secs_f64(args.seconds * 0.4),
            started + Duration::from_secs_f64(args.seconds * 0.6),
        ),
    });
    println!(
        "soak: {:?} storage, {} threads, {} tasks, {:.0} s, fail_max {FAIL_MAX}, success_threshold {SUCCESS_THRESHOLD}, reset_timeout {RESET_TIMEOUT:?}",
        args.storage, args.threads, args.tasks, args.seconds
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let tasks: Vec<_> = (0..args.tasks)
        .map(|i| runtime.spawn(async_caller(Arc::clone(&world), 1_000 + i as u64)))
        .collect();
    let threads: Vec<_> = (0..args.threads)
        .map(|i| {
            let world = Arc::clone(&world);
            std::thread::spawn(move || sync_caller(&world, i as u64 + 1))
        })
        .chain((0..STORM_THREADS).map(|i| {
            let world = Arc::clone(&world);
            std::thread::spawn(move || storm(&world, 500 + i))
        }))
        .chain([
            {
                let world = Arc::clone(&world);
                std::thread::spawn(move || chaos(&world, 99))
            },
            {
                let world = Arc::clone(&world);
                std::thread::spawn(move || monitor(&world))
            },
        ])
        .collect();

    for t in threads {
        if t.join().is_err() {
            stats.violation("a caller thread panicked".into());
        }
    }
    runtime.block_on(async {
        for t in tasks {
            if t.await.is_err() {
                stats.violation("a caller task panicked".into());
            }
        }
    });
    drop(runtime);
    let elapsed = started.elapsed();

    // Every caller is done: the last transition heard is the state now (on
    // Redis, once this process's view has settled).
    let settle = Instant::now() + Duration::from_secs(2);
    loop {
        let heard = *checker.last.lock().unwrap();
        let now = world.cb.current_state();
        if heard == now {
            break;
        }
        if Instant::now() > settle {
            stats.violation(format!(
                "the last transition heard was to {heard}, the breaker is {now}"
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check_snapshot(&stats, &world.cb.snapshot());
    if !world.trials.0.lock().unwrap().is_empty() {
        stats.violation("a trial is still counted as running".into());
    }

    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let heard = checker.heard.lock().unwrap().clone();
    let transitions: u64 = heard.values().sum();
    let mut kinds: Vec<_> = heard.into_iter().collect();
    kinds.sort();
    println!("soak: duration        {:.1} s", elapsed.as_secs_f64());
    println!(
        "soak: calls           {} ({:.0}/s)",
        n(&stats.calls),
        n(&stats.calls) as f64 / elapsed.as_secs_f64()
    );
    println!("soak: successes       {}", n(&stats.successes));
    println!("soak: failures        {}", n(&stats.failures));
    println!("soak: rejections      {}", n(&stats.rejections));
    println!("soak: cancelled       {}", n(&stats.cancelled));
    println!("soak: trials seen     {}", n(&stats.trials_seen));
    println!("soak: manual ops      {}", n(&stats.manual));
    println!("soak: storm ops       {}", n(&stats.storm));
    println!("soak: snapshots       {}", n(&stats.snapshots_checked));
    println!("soak: transitions     {transitions}");
    for ((old, new), count) in kinds {
        println!("soak:   {old:>9} -> {new:<9} {count}");
    }
    let violations = n(&stats.violations);
    println!("soak: violations      {violations}");
    drop(world);
    drop(server);
    if violations > 0 {
        for message in stats.messages.lock().unwrap().iter() {
            println!("soak:   {message}");
        }
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
