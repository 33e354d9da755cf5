//! A fleet of real processes calling one dependency through one breaker each,
//! per process (memory storage) or shared (`RedisStorage`), while the
//! dependency is healthy, down, and recovered. See `docs/fleet.md`.
//!
//! ```text
//! cargo run --release -p breaker-bench --bin fleet -- \
//!     --processes 1,10,50,100 --storage memory,redis \
//!     --healthy 5s --down 20s --recovered 10s --threads 2 --rate 20 --out docs/
//! cargo run -p breaker-bench --bin fleet -- --smoke
//! ```
//!
//! The same binary is the parent (this file's `main`) and every child
//! (`fleet child ...`, started by the parent with `current_exe()`). The parent
//! runs the dependency (a UDP server on 127.0.0.1 answering by the schedule),
//! and, for the Redis runs, a `redis-server` of its own on a free port of
//! 127.0.0.1; it reads the server's `INFO commandstats` and `INFO latencystats`
//! at the end of each phase and resets them (`CONFIG RESETSTAT`) at its start.
//! Children report their own figures as one `key=value` line on stdout.
//! Everything the parent starts is stopped when it returns, errors or panics.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use breaker::{CircuitBreaker, Error, Listener, MemoryStorage, RedisStorage, State};

type Res<T> = Result<T, String>;

/// Width of the dependency's time slices.
const SLICE_MS: u64 = 100;
const PHASES: [&str; 3] = ["healthy", "down", "recovered"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("child") {
        child::run(&args[1..])
    } else {
        parent::run(&args)
    };
    if let Err(e) = result {
        eprintln!("fleet: {e}");
        std::process::exit(1);
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn sleep_until_unix_ms(t: u64) {
    let now = unix_ms();
    if t > now {
        thread::sleep(Duration::from_millis(t - now));
    }
}

fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used are
    // the calling thread's and the process's CPU clocks, always present.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn thread_cpu() -> u64 {
    cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn process_cpu() -> u64 {
    cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// `"250ms"`, `"5s"`, `"1.5s"`, or a bare number of seconds.
fn parse_duration(s: &str) -> Res<Duration> {
    let bad = || format!("bad duration '{s}' (use 250ms or 5s)");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| bad());
    }
    let secs = s.strip_suffix('s').unwrap_or(s);
    secs.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(bad)
}

/// The phase at `ms` milliseconds after the start, if within the run.
fn phase_at(ms: u64, lengths: &[u64; 3]) -> Option<usize> {
    let mut end = 0;
    for (i, len) in lengths.iter().enumerate() {
        end += len;
        if ms < end {
            return Some(i);
        }
    }
    None
}

/// One child's settings, passed on its command line.
#[derive(Clone, Debug)]
struct ChildConfig {
    index: usize,
    /// `none` (no breaker: the baseline), `memory`, or `redis`.
    storage: String,
    redis: Option<(String, String)>,
    dependency: String,
    threads: usize,
    rate: f64,
    fail_max: u32,
    reset: Duration,
    phases: [u64; 3],
}

impl ChildConfig {
    fn to_args(&self) -> Vec<String> {
        let (url, ns) = self
            .redis
            .clone()
            .unwrap_or_else(|| ("-".into(), "-".into()));
        vec![
            "child".into(),
            self.index.to_string(),
            self.storage.clone(),
            url,
            ns,
            self.dependency.clone(),
            self.threads.to_string(),
            self.rate.to_string(),
            self.fail_max.to_string(),
            self.reset.as_millis().to_string(),
            self.phases[0].to_string(),
            self.phases[1].to_string(),
            self.phases[2].to_string(),
        ]
    }

    fn from_args(a: &[String]) -> Res<Self> {
        if a.len() != 12 {
            return Err(format!("child: expected 12 arguments, got {}", a.len()));
        }
        let storage = a[1].clone();
        let a = &[&a[..1], &a[2..]].concat();
        let num = |i: usize| -> Res<u64> {
            a[i].parse()
                .map_err(|_| format!("child: bad number '{}'", a[i]))
        };
        Ok(ChildConfig {
            index: num(0)? as usize,
            storage,
            redis: (a[1] != "-").then(|| (a[1].clone(), a[2].clone())),
            dependency: a[3].clone(),
            threads: num(4)? as usize,
            rate: a[5].parse().map_err(|_| "child: bad rate".to_string())?,
            fail_max: num(6)? as u32,
            reset: Duration::from_millis(num(7)?),
            phases: [num(8)?, num(9)?, num(10)?],
        })
    }
}

mod child {
    use super::*;

    /// Per-phase figures of one child (summed over its threads).
    #[derive(Default, Clone, Copy)]
    pub struct PhaseStats {
        pub attempts: u64,
        pub ran: u64,
        pub ok: u64,
        pub failed: u64,
        pub rejected: u64,
        pub trials: u64,
        /// CPU of the calling threads inside `call`, outside the dependency
        /// request (the measurement's own cost included).
        pub breaker_cpu_ns: u64,
        /// The measurement's own cost: the same brackets around a plain
        /// closure, taken just before each call.
        pub bare_cpu_ns: u64,
        /// CPU of the calling threads, all of it (requests, sleeps' syscalls).
        pub worker_cpu_ns: u64,
        /// CPU of the whole process in the phase.
        pub process_cpu_ns: u64,
    }

    impl PhaseStats {
        fn add(&mut self, o: &PhaseStats) {
            self.attempts += o.attempts;
            self.ran += o.ran;
            self.ok += o.ok;
            self.failed += o.failed;
            self.rejected += o.rejected;
            self.trials += o.trials;
            self.breaker_cpu_ns += o.breaker_cpu_ns;
            self.bare_cpu_ns += o.bare_cpu_ns;
            self.worker_cpu_ns += o.worker_cpu_ns;
        }
    }

    /// When this process's view of the breaker changed, in ms since the start.
    struct Changes {
        start: AtomicU64,
        seen: Mutex<Vec<(u64, State)>>,
    }

    impl Listener for Changes {
        fn state_change(&self, _: &CircuitBreaker, _: State, new: State) {
            let at = unix_ms().saturating_sub(self.start.load(Ordering::Relaxed));
            self.seen.lock().unwrap().push((at, new));
        }
    }

    /// The measurement's own cost: the brackets of a call (outer CPU clock
    /// readings, less the inner ones around the dependency request) around
    /// a plain closure that only reads the clock.
    fn bare_bracket() -> u64 {
        let mut inner = 0u64;
        let before = thread_cpu();
        call_plain(&mut || {
            let c = thread_cpu();
            inner += thread_cpu() - c;
        });
        (thread_cpu() - before).saturating_sub(inner)
    }

    #[inline(never)]
    fn call_plain(f: &mut dyn FnMut()) {
        f()
    }

    /// `bare_bracket` warm: the median of many in a row.
    fn calibrate() -> u64 {
        let mut costs: Vec<u64> = (0..2001).map(|_| bare_bracket()).collect();
        costs.sort_unstable();
        costs[costs.len() / 2]
    }

    fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn run(args: &[String]) -> Res<()> {
        let cfg = ChildConfig::from_args(args)?;
        let changes = Arc::new(Changes {
            start: AtomicU64::new(u64::MAX),
            seen: Mutex::new(Vec::new()),
        });
        let builder = CircuitBreaker::builder("dependency")
            .fail_max(cfg.fail_max)
            .reset_timeout(cfg.reset)
            .listener_arc(changes.clone());
        let cb = match &cfg.redis {
            Some((url, ns)) => {
                let storage = RedisStorage::builder(url.as_str())
                    .namespace(ns.as_str())
                    .build()
                    .map_err(|e| e.to_string())?;
                builder.storage(storage).build()
            }
            None => builder.storage(MemoryStorage::new()).build(),
        };
        let calibration = calibrate();
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {}", cb.current_state()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        drop(out);

        let mut stdin = BufReader::new(std::io::stdin());
        let mut line = String::new();
        stdin.read_line(&mut line).map_err(|e| e.to_string())?;
        let start: u64 = line
            .strip_prefix("GO ")
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| format!("child: expected GO, got {line:?}"))?;
        changes.start.store(start, Ordering::Relaxed);
        // Parent gone (stdin closed) before the end: leave at once.
        thread::spawn(move || {
            let mut rest = String::new();
            while stdin.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {}
            std::process::exit(3);
        });

        let results = Mutex::new((
            [PhaseStats::default(); 3],
            None::<u64>, // first rejection in the outage
            None::<u64>, // first success after recovery
        ));
        let mut process_cpu_by_phase = [0u64; 3];
        thread::scope(|s| -> Res<()> {
            for t in 0..cfg.threads {
                let (cb, cfg, results) = (&cb, &cfg, &results);
                s.spawn(move || worker(t, cb, cfg, start, results));
            }
            let mut boundary = start;
            sleep_until_unix_ms(start);
            let mut last = process_cpu();
            for (i, len) in cfg.phases.iter().enumerate() {
                boundary += len;
                sleep_until_unix_ms(boundary);
                let now = process_cpu();
                process_cpu_by_phase[i] = now - last;
                last = now;
            }
            Ok(())
        })?;
        let (mut phases, first_reject, first_ok) = *results.lock().unwrap();
        for (p, cpu) in phases.iter_mut().zip(process_cpu_by_phase) {
            p.process_cpu_ns = cpu;
        }
        let [healthy, down, _] = cfg.phases;
        let seen = changes.seen.lock().unwrap().clone();
        let open_view = seen
            .iter()
            .find(|(at, st)| *at >= healthy && *st == State::Open)
            .map(|(at, _)| at - healthy);
        let closed_view = seen
            .iter()
            .find(|(at, st)| *at >= healthy + down && *st == State::Closed)
            .map(|(at, _)| at - healthy - down);
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut line = format!(
            "REPORT index={} rss_kb={} calibration_ns={} open_view_ms={} first_reject_ms={} \
             closed_view_ms={} first_ok_ms={} transitions={}",
            cfg.index,
            rss_kb(),
            calibration,
            opt(open_view),
            opt(first_reject.map(|t| t - healthy)),
            opt(closed_view),
            opt(first_ok.map(|t| t - healthy - down)),
            seen.len(),
        );
        for (name, p) in PHASES.iter().zip(phases) {
            line += &format!(
                " {name}.attempts={} {name}.ran={} {name}.ok={} {name}.failed={} \
                 {name}.rejected={} {name}.trials={} {name}.breaker_cpu_ns={} \
                 {name}.bare_cpu_ns={} {name}.worker_cpu_ns={} {name}.process_cpu_ns={}",
                p.attempts,
                p.ran,
                p.ok,
                p.failed,
                p.rejected,
                p.trials,
                p.breaker_cpu_ns,
                p.bare_cpu_ns,
                p.worker_cpu_ns,
                p.process_cpu_ns
            );
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        // Leave without running the storage's destructors at leisure.
        std::process::exit(0);
    }

    type Shared = Mutex<([PhaseStats; 3], Option<u64>, Option<u64>)>;

    fn worker(t: usize, cb: &CircuitBreaker, cfg: &ChildConfig, start: u64, results: &Shared) {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        sock.connect(&cfg.dependency)
            .expect("connect to the dependency");
        sock.set_read_timeout(Some(Duration::from_millis(250)))
            .expect("set a read timeout");
        let total: u64 = cfg.phases.iter().sum();
        let period = Duration::from_secs_f64(1.0 / cfg.rate);
        // Spread the threads of the fleet over the period.
        let offset = period.mul_f64(((cfg.index * 7919 + t * 104_729) % 1000) as f64 / 1000.0);
        let start_instant = Instant::now() + Duration::from_millis(start.saturating_sub(unix_ms()));
        let mut next = start_instant + offset;
        let mut stats = [PhaseStats::default(); 3];
        let (mut first_reject, mut first_ok) = (None, None);
        let mut seq = 0u64;
        let mut buf = [0u8; 16];
        let mut last_cpu = thread_cpu();
        loop {
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            }
            next += period;
            let at = unix_ms().saturating_sub(start);
            if at >= total {
                break;
            }
            let Some(phase) = phase_at(at, &cfg.phases) else {
                break;
            };
            seq += 1;
            let trial = cfg.storage != "none" && cb.current_state() != State::Closed;
            // The measurement's own cost, here and now (just woken, caches
            // cold): the same brackets around a plain call of a closure.
            let bare = bare_bracket();
            let mut inner = 0u64;
            let mut ran = false;
            let before = thread_cpu();
            let mut guarded = || {
                let c = thread_cpu();
                ran = true;
                let msg = format!("{} {} {}", cfg.index, u8::from(trial), seq);
                let ok = sock.send(msg.as_bytes()).is_ok()
                    && matches!(sock.recv(&mut buf), Ok(n) if n > 0 && buf[0] == b'o');
                inner += thread_cpu() - c;
                if ok {
                    Ok(())
                } else {
                    Err("dependency failed")
                }
            };
            let result = if cfg.storage == "none" {
                guarded().map_err(Error::Inner)
            } else {
                cb.call(guarded)
            };
            let after = thread_cpu();
            let p = &mut stats[phase];
            p.attempts += 1;
            p.breaker_cpu_ns += (after - before).saturating_sub(inner);
            p.bare_cpu_ns += bare;
            p.worker_cpu_ns += after - last_cpu;
            last_cpu = after;
            if ran {
                p.ran += 1;
                p.trials += u64::from(trial);
            }
            match result {
                Ok(()) => {
                    p.ok += 1;
                    if phase == 2 && first_ok.is_none() {
                        first_ok = Some(at);
                    }
                }
                Err(Error::Open(_)) => {
                    p.rejected += 1;
                    if phase == 1 && first_reject.is_none() {
                        first_reject = Some(at);
                    }
                }
                Err(_) => p.failed += 1,
            }
        }
        let mut r = results.lock().unwrap();
        for (acc, s) in r.0.iter_mut().zip(&stats) {
            acc.add(s);
        }
        r.1 = min_opt(r.1, first_reject);
        r.2 = min_opt(r.2, first_ok);
    }

    fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

mod dependency {
    use super::*;

    /// What the dependency saw in one run.
    #[derive(Default, Clone, Debug)]
    pub struct Counts {
        /// Calls per slice since the start, and of them tagged as trials.
        pub slices: Vec<(u64, u64)>,
        /// Calls per process per phase.
        pub per_process: BTreeMap<usize, [u64; 3]>,
    }

    struct Schedule {
        start: u64,
        phases: [u64; 3],
        noise: f64,
        counts: Counts,
        rng: u64,
    }

    /// The simulated dependency: a UDP server on 127.0.0.1 that answers `o`
    /// (ok) or `f` (fail) by the schedule: healthy and recovered fail a
    /// `noise` fraction of calls at random, down fails every call.
    pub struct Dependency {
        pub addr: String,
        state: Arc<Mutex<Schedule>>,
        stop: Arc<AtomicBool>,
        thread: Option<thread::JoinHandle<()>>,
    }

    impl Dependency {
        pub fn start() -> Res<Dependency> {
            let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .map_err(|e| e.to_string())?;
            let addr = sock.local_addr().map_err(|e| e.to_string())?.to_string();
            let state = Arc::new(Mutex::new(Schedule {
                start: u64::MAX,
                phases: [0; 3],
                noise: 0.0,
                counts: Counts::default(),
                rng: 0x9E37_79B9_7F4A_7C15,
            }));
            let stop = Arc::new(AtomicBool::new(false));
            let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
            let thread = thread::Builder::new()
                .name("dependency".into())
                .spawn(move || serve(sock, st, sp))
                .map_err(|e| e.to_string())?;
            Ok(Dependency {
                addr,
                state,
                stop,
                thread: Some(thread),
            })
        }

        /// A new run: the schedule from `start` (unix ms), counts emptied.
        pub fn arm(&self, start: u64, phases: [u64; 3], noise: f64) {
            let mut s = self.state.lock().unwrap();
            s.start = start;
            s.phases = phases;
            s.noise = noise;
            let slices = phases.iter().sum::<u64>().div_ceil(SLICE_MS) as usize;
            s.counts = Counts {
                slices: vec![(0, 0); slices],
                per_process: BTreeMap::new(),
            };
        }

        pub fn take(&self) -> Counts {
            let mut s = self.state.lock().unwrap();
            s.start = u64::MAX;
            std::mem::take(&mut s.counts)
        }
    }

    impl Drop for Dependency {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn serve(sock: UdpSocket, state: Arc<Mutex<Schedule>>, stop: Arc<AtomicBool>) {
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
            let mut words = text.split(' ');
            let index: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let trial = words.next() == Some("1");
            let ok = {
                let mut s = state.lock().unwrap();
                let now = unix_ms();
                if now < s.start {
                    true
                } else {
                    let at = now - s.start;
                    let phase = phase_at(at, &s.phases);
                    // xorshift64: the noise, reproducible per run.
                    s.rng ^= s.rng << 13;
                    s.rng ^= s.rng >> 7;
                    s.rng ^= s.rng << 17;
                    let noisy = (s.rng % 1_000_000) as f64 / 1e6 < s.noise;
                    if let Some(p) = phase {
                        let slice = (at / SLICE_MS) as usize;
                        if let Some(c) = s.counts.slices.get_mut(slice) {
                            c.0 += 1;
                            c.1 += u64::from(trial);
                        }
                        s.counts.per_process.entry(index).or_insert([0; 3])[p] += 1;
                    }
                    match phase {
                        Some(1) => false,
                        _ => !noisy,
                    }
                }
            };
            let _ = sock.send_to(if ok { b"o" } else { b"f" }, from);
        }
    }
}

mod redis_server {
    use super::*;

    /// A `redis-server` of our own on a free port of 127.0.0.1, in a
    /// temporary directory, stopped (and the directory removed) on drop.
    pub struct RedisServer {
        child: Child,
        dir: PathBuf,
        pub url: String,
        conn: redis::Connection,
    }

    impl RedisServer {
        pub fn start() -> Res<RedisServer> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let dir = std::env::temp_dir().join(format!("breaker-fleet-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ])
                .args(["--latency-tracking", "yes", "--maxclients", "2000"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start redis-server ({e}); install redis-server"))?;
            let url = format!("redis://127.0.0.1:{port}/");
            let mut guard = Partial(Some(child), dir.clone());
            let deadline = Instant::now() + Duration::from_secs(10);
            let conn = loop {
                let attempt = redis::Client::open(url.as_str()).and_then(|c| c.get_connection());
                if let Ok(mut conn) = attempt {
                    if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                        break conn;
                    }
                }
                if Instant::now() > deadline {
                    return Err("redis-server did not answer within 10 s".into());
                }
                thread::sleep(Duration::from_millis(20));
            };
            let child = guard.0.take().expect("the child is there");
            Ok(RedisServer {
                child,
                dir,
                url,
                conn,
            })
        }

        pub fn version(&mut self) -> String {
            self.info("server")
                .get("redis_version")
                .cloned()
                .unwrap_or_default()
        }

        pub fn reset_stats(&mut self) -> Res<()> {
            redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query::<()>(&mut self.conn)
                .map_err(|e| e.to_string())
        }

        pub fn info(&mut self, section: &str) -> BTreeMap<String, String> {
            let text: String = redis::cmd("INFO")
                .arg(section)
                .query(&mut self.conn)
                .unwrap_or_default();
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect()
        }

        /// The commands since the last reset, and the EVALSHA latencies.
        pub fn sample(&mut self) -> RedisSample {
            let mut s = RedisSample::default();
            for (k, v) in self.info("commandstats") {
                let Some(cmd) = k.strip_prefix("cmdstat_") else {
                    continue;
                };
                // Our own INFO and CONFIG.
                if cmd == "info" || cmd.starts_with("config") {
                    continue;
                }
                let fields = kv(&v);
                let calls = fields
                    .get("calls")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let usec = fields.get("usec").and_then(|c| c.parse().ok()).unwrap_or(0);
                s.commands.insert(cmd.to_string(), (calls, usec));
            }
            let lat = self.info("latencystats");
            if let Some(v) = lat.get("latency_percentiles_usec_evalsha") {
                let f = kv(v);
                let p = |k: &str| f.get(k).and_then(|x| x.parse().ok()).unwrap_or(f64::NAN);
                s.evalsha_p50 = p("p50");
                s.evalsha_p99 = p("p99");
                s.evalsha_p999 = p("p99.9");
            }
            let stats = self.info("stats");
            s.net_out_bytes = stats
                .get("total_net_output_bytes")
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            s
        }
    }

    fn kv(v: &str) -> BTreeMap<&str, &str> {
        v.split(',').filter_map(|f| f.split_once('=')).collect()
    }

    /// A server being started: killed if the start fails.
    struct Partial(Option<Child>, PathBuf);

    impl Drop for Partial {
        fn drop(&mut self) {
            if let Some(mut c) = self.0.take() {
                let _ = c.kill();
                let _ = c.wait();
                let _ = std::fs::remove_dir_all(&self.1);
            }
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The server's counters over one phase.
    #[derive(Default, Clone, Debug)]
    pub struct RedisSample {
        /// Per command: calls and total µs.
        pub commands: BTreeMap<String, (u64, u64)>,
        pub evalsha_p50: f64,
        pub evalsha_p99: f64,
        pub evalsha_p999: f64,
        pub net_out_bytes: u64,
    }

    impl RedisSample {
        pub fn calls(&self, cmd: &str) -> u64 {
            self.commands.get(cmd).map_or(0, |c| c.0)
        }
        pub fn total(&self) -> u64 {
            self.commands.values().map(|c| c.0).sum()
        }
    }
}

mod parent {
    use super::redis_server::{RedisSample, RedisServer};
    use super::*;

    #[derive(Clone, Debug)]
    pub struct Options {
        pub processes: Vec<usize>,
        pub storages: Vec<String>,
        pub phases: [u64; 3],
        pub threads: usize,
        pub rate: f64,
        pub fail_max: u32,
        pub reset: Duration,
        pub noise: f64,
        pub out: Option<PathBuf>,
        pub smoke: bool,
    }

    fn options(args: &[String]) -> Res<Options> {
        let mut o = Options {
            processes: vec![1, 10, 50, 100],
            storages: vec!["memory".into(), "redis".into()],
            phases: [5_000, 20_000, 10_000],
            threads: 2,
            rate: 20.0,
            fail_max: 5,
            reset: Duration::from_secs(1),
            noise: 0.01,
            out: None,
            smoke: false,
        };
        let mut it = args.iter();
        let ms = |v: &str| parse_duration(v).map(|d| d.as_millis() as u64);
        while let Some(flag) = it.next() {
            if flag == "--smoke" {
                o.smoke = true;
                o.processes = vec![3];
                o.phases = [1_000, 1_500, 1_500];
                o.reset = Duration::from_millis(200);
                continue;
            }
            if flag == "-h" || flag == "--help" {
                println!("{}", USAGE);
                std::process::exit(0);
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let num = |v: &str| v.parse::<f64>().map_err(|_| format!("bad number {v}"));
            match flag.as_str() {
                "--processes" => {
                    o.processes = value
                        .split(',')
                        .map(|n| n.parse().map_err(|_| format!("bad count {n}")))
                        .collect::<Res<_>>()?
                }
                "--storage" => o.storages = value.split(',').map(String::from).collect(),
                "--healthy" => o.phases[0] = ms(value)?,
                "--down" => o.phases[1] = ms(value)?,
                "--recovered" => o.phases[2] = ms(value)?,
                "--threads" => o.threads = num(value)? as usize,
                "--rate" => o.rate = num(value)?,
                "--fail-max" => o.fail_max = num(value)? as u32,
                "--reset" => o.reset = parse_duration(value)?,
                "--noise" => o.noise = num(value)?,
                "--out" => o.out = Some(PathBuf::from(value)),
                _ => return Err(format!("unknown option {flag}\n{USAGE}")),
            }
        }
        if o.storages
            .iter()
            .any(|s| !matches!(s.as_str(), "none" | "memory" | "redis"))
        {
            return Err("--storage takes none (no breaker), memory and redis".into());
        }
        if o.processes.contains(&0) || o.threads == 0 || o.rate <= 0.0 {
            return Err("processes, threads and rate must be positive".into());
        }
        Ok(o)
    }

    const USAGE: &str = "usage: fleet [--processes 1,10,50,100] [--storage memory,redis] \
        [--healthy 5s] [--down 20s] [--recovered 10s] [--threads 2] [--rate 20] \
        [--fail-max 5] [--reset 1s] [--noise 0.01] [--out docs/] | --smoke";

    /// One run's figures.
    #[derive(Clone, Debug)]
    pub struct Run {
        pub storage: String,
        pub n: usize,
        pub counts: dependency::Counts,
        pub reports: Vec<BTreeMap<String, String>>,
        pub redis: Option<[RedisSample; 3]>,
        pub load: (String, String),
    }

    impl Run {
        fn sum(&self, key: &str) -> u64 {
            self.reports
                .iter()
                .filter_map(|r| r.get(key)?.parse::<u64>().ok())
                .sum()
        }
        /// The latest of the processes' times (ms), and how many had one.
        fn latest(&self, key: &str) -> (Option<u64>, usize) {
            let v: Vec<u64> = self
                .reports
                .iter()
                .filter_map(|r| r.get(key)?.parse().ok())
                .collect();
            (v.iter().copied().max(), v.len())
        }
        fn median_rss_kb(&self) -> u64 {
            let mut v: Vec<u64> = self
                .reports
                .iter()
                .filter_map(|r| r.get("rss_kb")?.parse().ok())
                .collect();
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0)
        }
        /// Calls that reached the dependency in phase `p`, and trial-tagged ones.
        fn dependency_calls(&self, p: usize, phases: &[u64; 3]) -> (u64, u64) {
            let from = phases[..p].iter().sum::<u64>() / SLICE_MS;
            let to = phases[..=p].iter().sum::<u64>() / SLICE_MS;
            self.counts.slices[from as usize..to as usize]
                .iter()
                .fold((0, 0), |a, s| (a.0 + s.0, a.1 + s.1))
        }
    }

    /// The children of one run: killed and reaped on drop, whatever happened.
    struct Fleet {
        children: Vec<Child>,
        stdins: Vec<ChildStdin>,
    }

    impl Drop for Fleet {
        fn drop(&mut self) {
            self.stdins.clear();
            for c in &mut self.children {
                let _ = c.kill();
            }
            for c in &mut self.children {
                let _ = c.wait();
            }
        }
    }

    fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }

    fn one_run(
        o: &Options,
        storage: &str,
        n: usize,
        dep: &dependency::Dependency,
        redis: Option<&mut RedisServer>,
    ) -> Res<Run> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let namespace = format!("fleet-{n}-{}-{}", std::process::id(), unix_ms());
        let url = redis.as_ref().map(|r| r.url.clone());
        let load_before = loadavg();
        let mut fleet = Fleet {
            children: Vec::new(),
            stdins: Vec::new(),
        };
        let (tx, rx) = mpsc::channel::<(usize, String)>();
        for index in 0..n {
            let cfg = ChildConfig {
                index,
                storage: storage.to_string(),
                redis: url.clone().map(|u| (u, namespace.clone())),
                dependency: dep.addr.clone(),
                threads: o.threads,
                rate: o.rate,
                fail_max: o.fail_max,
                reset: o.reset,
                phases: o.phases,
            };
            let mut child = Command::new(&exe)
                .args(cfg.to_args())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start a child: {e}"))?;
            let stdout = child.stdout.take().expect("piped");
            fleet.stdins.push(child.stdin.take().expect("piped"));
            fleet.children.push(child);
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send((index, line)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let ready_by = Instant::now() + Duration::from_secs(60);
        let mut ready = 0;
        while ready < n {
            let left = ready_by.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((_, l)) if l.starts_with("READY") => ready += 1,
                Ok((i, l)) => eprintln!("child {i}: {l}"),
                Err(_) => return Err(format!("only {ready} of {n} children became ready")),
            }
        }
        let start = unix_ms() + 300;
        dep.arm(start, o.phases, o.noise);
        for s in &mut fleet.stdins {
            writeln!(s, "GO {start}").map_err(|e| format!("a child left early: {e}"))?;
            s.flush().map_err(|e| e.to_string())?;
        }
        let mut samples = None;
        if let Some(r) = redis {
            sleep_until_unix_ms(start);
            r.reset_stats()?;
            let mut got: [RedisSample; 3] = Default::default();
            let mut boundary = start;
            for (i, len) in o.phases.iter().enumerate() {
                boundary += len;
                sleep_until_unix_ms(boundary);
                got[i] = r.sample();
                r.reset_stats()?;
            }
            samples = Some(got);
        }
        let total: u64 = o.phases.iter().sum();
        let report_by = Instant::now() + Duration::from_millis(total) + Duration::from_secs(30);
        let mut reports = Vec::new();
        while reports.len() < n {
            let left = report_by.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((_, l)) if l.starts_with("REPORT ") => reports.push(
                    l["REPORT ".len()..]
                        .split(' ')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                Ok((i, l)) => eprintln!("child {i}: {l}"),
                Err(_) => return Err(format!("only {} of {n} children reported", reports.len())),
            }
        }
        drop(fleet);
        thread::sleep(Duration::from_millis(100));
        Ok(Run {
            storage: storage.to_string(),
            n,
            counts: dep.take(),
            reports,
            redis: samples,
            load: (load_before, loadavg()),
        })
    }

    pub fn run(args: &[String]) -> Res<()> {
        let o = options(args)?;
        let dep = dependency::Dependency::start()?;
        let mut redis = if o.storages.iter().any(|s| s == "redis") {
            Some(RedisServer::start()?)
        } else {
            None
        };
        let version = redis.as_mut().map(|r| r.version());
        eprintln!(
            "fleet: {} thread(s) x {} calls/s per process, fail_max {}, reset {:?}, noise {}, \
             phases {:?} ms, redis {}",
            o.threads,
            o.rate,
            o.fail_max,
            o.reset,
            o.noise,
            o.phases,
            version.as_deref().unwrap_or("-")
        );
        let mut runs = Vec::new();
        for &n in &o.processes {
            for storage in &o.storages {
                let r = if storage == "redis" {
                    redis.as_mut()
                } else {
                    None
                };
                let begun = Instant::now();
                let run = one_run(&o, storage, n, &dep, r)?;
                eprintln!(
                    "fleet: N={n} {storage}: {:.1} s, load {} -> {}",
                    begun.elapsed().as_secs_f64(),
                    run.load.0,
                    run.load.1
                );
                runs.push(run);
            }
        }
        report::print(&o, &runs);
        if let Some(dir) = &o.out {
            if !o.smoke {
                plots::draw(&o, &runs, dir)?;
            }
        }
        if o.smoke {
            smoke_checks(&o, &runs)?;
            eprintln!("fleet: smoke checks passed");
        }
        Ok(())
    }

    /// What `--smoke` insists on: every process opened during the outage
    /// and called the dependency again after it; with Redis, the fleet sent
    /// about one trial per reset period, and the server saw the commands.
    fn smoke_checks(o: &Options, runs: &[Run]) -> Res<()> {
        for run in runs.iter().filter(|r| r.storage != "none") {
            let who = format!("{} N={}", run.storage, run.n);
            let (_, opened) = run.latest("first_reject_ms");
            let (_, recovered) = run.latest("first_ok_ms");
            if opened != run.n {
                return Err(format!(
                    "{who}: {opened} processes rejected during the outage"
                ));
            }
            if recovered != run.n {
                return Err(format!(
                    "{who}: {recovered} processes called again after it"
                ));
            }
            if run.sum("healthy.ok") == 0 || run.sum("recovered.ok") == 0 {
                return Err(format!("{who}: no successful calls"));
            }
            if let Some(samples) = &run.redis {
                let periods = o.phases[1] as f64 / o.reset.as_millis() as f64;
                let (_, trials) = run.dependency_calls(1, &o.phases);
                if trials as f64 > 2.0 * periods + 4.0 {
                    return Err(format!(
                        "{who}: {trials} trial calls in {periods} reset periods: not shared"
                    ));
                }
                if samples.iter().any(|s| s.calls("evalsha") == 0) {
                    return Err(format!("{who}: Redis saw no EVALSHA in a phase"));
                }
            }
        }
        Ok(())
    }

    mod report {
        use super::*;

        pub fn print(o: &Options, runs: &[Run]) {
            let secs: Vec<f64> = o.phases.iter().map(|&p| p as f64 / 1000.0).collect();
            let periods = o.phases[1] as f64 / o.reset.as_millis() as f64;
            println!(
                "\n| N | storage | dependency calls while down | trials while down | trials per reset period | down → last process opened (view / first rejection), ms | recovered → last process closed (view / first success), ms |"
            );
            println!("|---:|---|---:|---:|---:|---:|---:|");
            for r in runs {
                let (down_calls, down_trials) = r.dependency_calls(1, &o.phases);
                let t = |k: &str| {
                    let (v, c) = r.latest(k);
                    let v = v.map_or("-".into(), |v| v.to_string());
                    if c == r.n {
                        v
                    } else {
                        format!("{v} ({c}/{})", r.n)
                    }
                };
                println!(
                    "| {} | {} | {} | {} | {:.1} | {} / {} | {} / {} |",
                    r.n,
                    r.storage,
                    down_calls,
                    down_trials,
                    down_trials as f64 / periods,
                    t("open_view_ms"),
                    t("first_reject_ms"),
                    t("closed_view_ms"),
                    t("first_ok_ms"),
                );
            }
            println!(
                "\n| N | storage | phase | calls/s (fleet) | reached dependency/s | Redis cmds/s | per process | EVALSHA/s | PUBLISH/s | PING/s | EVALSHA p50 / p99 / p99.9 µs | Redis out KB/s | CPU ns/call in `call` (raw) | less the bare brackets | background CPU ms/s per process |"
            );
            println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for r in runs {
                for (p, name) in PHASES.iter().enumerate() {
                    let s = secs[p];
                    let attempts = r.sum(&format!("{name}.attempts"));
                    let ran = r.sum(&format!("{name}.ran"));
                    let bcpu = r.sum(&format!("{name}.breaker_cpu_ns")) as f64;
                    let bare = r.sum(&format!("{name}.bare_cpu_ns")) as f64;
                    let wcpu = r.sum(&format!("{name}.worker_cpu_ns"));
                    let pcpu = r.sum(&format!("{name}.process_cpu_ns"));
                    let background = pcpu.saturating_sub(wcpu) as f64 / 1e6 / s / r.n as f64;
                    let redis = r.redis.as_ref().map(|rs| &rs[p]);
                    let f = |v: Option<f64>, d: usize| {
                        v.map_or("-".to_string(), |v| format!("{v:.d$}"))
                    };
                    let rate = |c: &str| redis.map(|x| x.calls(c) as f64 / s);
                    println!(
                        "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.2} |",
                        r.n,
                        r.storage,
                        name,
                        attempts as f64 / s,
                        ran as f64 / s,
                        f(redis.map(|x| x.total() as f64 / s), 0),
                        f(redis.map(|x| x.total() as f64 / s / r.n as f64), 2),
                        f(rate("evalsha"), 0),
                        f(rate("publish"), 1),
                        f(rate("ping"), 0),
                        redis.map_or("-".into(), |x| format!(
                            "{:.0} / {:.0} / {:.0}",
                            x.evalsha_p50, x.evalsha_p99, x.evalsha_p999
                        )),
                        f(redis.map(|x| x.net_out_bytes as f64 / 1024.0 / s), 1),
                        bcpu / attempts.max(1) as f64,
                        (bcpu - bare) / attempts.max(1) as f64,
                        background,
                    );
                }
            }
            println!("\n| N | storage | median child RSS (MB) | load before → after | model Redis cmds/s (healthy / down / recovered) |");
            println!("|---:|---|---:|---|---|");
            for r in runs {
                let m = if r.storage == "redis" {
                    let m = model::predict(o, r.n, model::K_FITTED);
                    let z = model::predict(o, r.n, 0.0);
                    format!(
                        "{:.0} / {:.0} / {:.0} (without stale views: {:.0} / {:.0} / {:.0})",
                        m[0], m[1], m[2], z[0], z[1], z[2]
                    )
                } else {
                    "0".into()
                };
                println!(
                    "| {} | {} | {:.1} | {} → {} | {} |",
                    r.n,
                    r.storage,
                    r.median_rss_kb() as f64 / 1024.0,
                    r.load.0,
                    r.load.1,
                    m
                );
            }
            for r in runs.iter().filter(|r| r.redis.is_some()) {
                let rs = r.redis.as_ref().unwrap();
                let all: Vec<String> = PHASES
                    .iter()
                    .zip(rs)
                    .map(|(p, s)| {
                        let cmds: Vec<String> = s
                            .commands
                            .iter()
                            .map(|(c, (calls, usec))| format!("{c}={calls}/{usec}us"))
                            .collect();
                        format!("{p}: {}", cmds.join(" "))
                    })
                    .collect();
                eprintln!("fleet: N={} commands: {}", r.n, all.join("; "));
            }
        }
    }

    pub mod model {
        use super::*;

        /// How long a write takes to reach the whole fleet, per process, as
        /// fitted on the sweep in docs/fleet.md (this machine: 2 shared
        /// cores, every subscriber a process to wake): `w = K * N`.
        pub const K_FITTED: f64 = 25e-6;

        /// The model's Redis commands per second (as `INFO commandstats`
        /// counts them, script-internal TIME, GET, SET and PUBLISH included)
        /// in each phase, for `n` processes, when a write takes `k * n`
        /// seconds to reach every process; see docs/fleet.md.
        pub fn predict(o: &Options, n: usize, k: f64) -> [f64; 3] {
            let n = n as f64;
            let calls = n * o.threads as f64 * o.rate; // fleet calls per second
            let resync = 1.0; // s, the default resync_interval
                              // A script run is EVALSHA + TIME + GET; a write adds SET + PUBLISH.
            let (read, write) = (3.0, 5.0);
            // Calls sent on a stale view while a write spreads (each a
            // script that writes nothing).
            let stale = calls * k * n * read;
            // Per process: the resync read, and a PING on the pub/sub connection.
            let background = n * (read + 1.0) / resync;
            // Each failure is a write, and so is the first success after it
            // (it resets the shared counter); until the failure's message
            // has been replaced by the reset's, other processes' successes
            // send resets of their own.
            let noise = o.noise * calls * (2.0 * write + stale);
            let [_, down_s, recovered_s] = o.phases.map(|p| p as f64 / 1000.0);
            let reset_s = o.reset.as_secs_f64();
            // Per reset period: the trial's admission and its failure, and
            // the admissions other processes ask for before they hear of it.
            let trials = (2.0 * write + stale) / reset_s;
            // Tripping: fail_max writes once per outage, and the failures of
            // calls admitted before the trip was heard of.
            let trip = (o.fail_max as f64 * write + stale) / down_s;
            // Recovery: open for half a reset period on average, then the
            // trial's admission and success.
            let open_share = (0.5 * reset_s / recovered_s).min(1.0);
            [
                background + noise,
                background + trials + trip,
                background + noise * (1.0 - open_share) + 2.0 * write / recovered_s,
            ]
        }
    }

    mod plots {
        use super::*;
        use plotters::prelude::*;

        fn font() -> Res<()> {
            let path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
            let bytes = std::fs::read(path)
                .map_err(|e| format!("plots need the font {path} (fonts-dejavu-core): {e}"))?;
            plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(bytes.into_boxed_slice()),
            )
            .map_err(|_| format!("{path} is not a usable font"))
        }

        fn err<E: std::fmt::Debug>(e: E) -> String {
            format!("plot: {e:?}")
        }

        pub fn draw(o: &Options, runs: &[Run], dir: &Path) -> Res<()> {
            font()?;
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let n_plot = if runs.iter().any(|r| r.n == 50) {
                50
            } else {
                runs.iter().map(|r| r.n).max().unwrap_or(0)
            };
            calls_over_time(o, runs, n_plot, &dir.join("fleet-calls.png"))?;
            if runs.iter().any(|r| r.redis.is_some()) {
                commands_by_n(o, runs, &dir.join("fleet-redis.png"))?;
            }
            Ok(())
        }

        fn calls_over_time(o: &Options, runs: &[Run], n: usize, path: &Path) -> Res<()> {
            let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let (top, bottom) = root.split_vertically(450);
            let series: Vec<(&Run, RGBColor, &str)> = runs
                .iter()
                .filter(|r| r.n == n)
                .map(|r| match r.storage.as_str() {
                    "redis" => (r, RGBColor(0, 110, 200), "shared (RedisStorage)"),
                    "memory" => (r, RGBColor(220, 60, 30), "per process (memory)"),
                    _ => (r, RGBColor(150, 150, 150), "no breaker"),
                })
                .collect();
            let total_s = o.phases.iter().sum::<u64>() as f64 / 1000.0;
            let down_from = o.phases[0] as f64 / 1000.0;
            let down_to = (o.phases[0] + o.phases[1]) as f64 / 1000.0;
            let per_s = 1000.0 / SLICE_MS as f64;
            let points = |r: &Run| -> Vec<(f64, f64)> {
                r.counts
                    .slices
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (i as f64 * SLICE_MS as f64 / 1000.0, c.0 as f64 * per_s))
                    .collect()
            };
            let ymax_all = series
                .iter()
                .flat_map(|(r, ..)| points(r))
                .map(|p| p.1)
                .fold(1.0, f64::max);
            let ymax_down = series
                .iter()
                .filter(|(r, ..)| r.storage != "none")
                .flat_map(|(r, ..)| points(r))
                .filter(|p| p.0 >= down_from + 1.0 && p.0 < down_to)
                .map(|p| p.1)
                .fold(1.0, f64::max);
            let panels = [
                (
                    top,
                    format!(
                        "Calls reaching the dependency, N = {n} processes x {} threads x {} calls/s",
                        o.threads, o.rate
                    ),
                    0.0,
                    total_s,
                    ymax_all * 1.1,
                ),
                (
                    bottom,
                    format!(
                        "The outage, zoomed (down {down_from:.0}-{down_to:.0} s; reset timeout {:?})",
                        o.reset
                    ),
                    down_from - 0.5,
                    down_to + 2.0,
                    ymax_down * 1.3,
                ),
            ];
            for (zoomed, (area, title, x0, x1, ymax)) in panels.into_iter().enumerate() {
                let mut chart = ChartBuilder::on(&area)
                    .caption(title, ("sans-serif", 22))
                    .margin(12)
                    .x_label_area_size(45)
                    .y_label_area_size(75)
                    .build_cartesian_2d(x0..x1, 0.0..ymax)
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc("seconds since the start")
                    .y_desc("calls/s (100 ms slices)")
                    .y_label_formatter(&|v| format!("{v:.0}"))
                    .x_label_formatter(&|v| format!("{v:.0}"))
                    .label_style(("sans-serif", 16))
                    .axis_desc_style(("sans-serif", 18))
                    .draw()
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(down_from, 0.0), (down_to, ymax)],
                        RGBColor(235, 235, 235).filled(),
                    )))
                    .map_err(err)?
                    .label("dependency down")
                    .legend(|(x, y)| {
                        Rectangle::new(
                            [(x, y - 6), (x + 20, y + 6)],
                            RGBColor(220, 220, 220).filled(),
                        )
                    });
                for (r, color, label) in &series {
                    if zoomed == 1 && r.storage == "none" {
                        continue;
                    }
                    let color = *color;
                    chart
                        .draw_series(LineSeries::new(
                            points(r).into_iter().filter(|p| p.0 >= x0 && p.0 <= x1),
                            color.stroke_width(2),
                        ))
                        .map_err(err)?
                        .label(*label)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                        });
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.9))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 16))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
            Ok(())
        }

        fn commands_by_n(o: &Options, runs: &[Run], path: &Path) -> Res<()> {
            let root = BitMapBackend::new(path, (1100, 650)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let redis: Vec<&Run> = runs.iter().filter(|r| r.redis.is_some()).collect();
            let secs: Vec<f64> = o.phases.iter().map(|&p| p as f64 / 1000.0).collect();
            let nmax = redis.iter().map(|r| r.n).max().unwrap_or(1) as f64;
            let measured = |p: usize| -> Vec<(f64, f64)> {
                redis
                    .iter()
                    .map(|r| {
                        let s = &r.redis.as_ref().unwrap()[p];
                        (r.n as f64, s.total() as f64 / secs[p])
                    })
                    .collect()
            };
            let ymax = (0..3)
                .flat_map(measured)
                .map(|p| p.1)
                .chain((0..3).map(|p| model::predict(o, nmax as usize, model::K_FITTED)[p]))
                .fold(1.0, f64::max)
                * 1.15;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!(
                        "Redis commands/s against fleet size ({} threads x {} calls/s per process, {}% failures when healthy)",
                        o.threads,
                        o.rate,
                        o.noise * 100.0
                    ),
                    ("sans-serif", 20),
                )
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(80)
                .build_cartesian_2d(0.0..nmax * 1.05, 0.0..ymax)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("processes sharing the breaker (N)")
                .y_desc("Redis commands/s (INFO commandstats)")
                .y_label_formatter(&|v| format!("{v:.0}"))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .draw()
                .map_err(err)?;
            let colors = [
                RGBColor(0, 130, 60),
                RGBColor(220, 60, 30),
                RGBColor(0, 110, 200),
            ];
            for (p, name) in PHASES.iter().enumerate() {
                let color = colors[p];
                chart
                    .draw_series(
                        measured(p)
                            .into_iter()
                            .map(|(x, y)| Circle::new((x, y), 6, color.filled())),
                    )
                    .map_err(err)?
                    .label(format!("{name}: measured"))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
                let line = |k: f64| -> Vec<(f64, f64)> {
                    (0..=100)
                        .map(|i| {
                            let n = (nmax * i as f64 / 100.0).max(1.0);
                            (n, model::predict(o, n.round() as usize, k)[p])
                        })
                        .collect()
                };
                chart
                    .draw_series(LineSeries::new(
                        line(model::K_FITTED),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(format!("{name}: model"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(DashedLineSeries::new(
                        line(0.0),
                        6,
                        5,
                        color.stroke_width(1),
                    ))
                    .map_err(err)?
                    .label(format!("{name}: model without stale views"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 8, y)], color.stroke_width(1))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font(("sans-serif", 16))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(err)?;
            root.present().map_err(err)?;
            Ok(())
        }
    }
}
