//! Several OS processes sharing one breaker through Redis: this test binary
//! runs itself again as children (the `child` test, which does nothing
//! unless started as one), drives them over stdin and reads their reports on
//! stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use breaker::{CircuitBreaker, Error, Listener, RedisStorage, State};

use crate::support;

const ROLE: &str = "BREAKER_REDIS_CHILD";
const URL: &str = "BREAKER_REDIS_URL";
const NAMESPACE: &str = "BREAKER_REDIS_NAMESPACE";
const FAIL_MAX: u32 = 5;
const RESET: Duration = Duration::from_millis(300);
/// How soon another process must see a trip (pub/sub on loopback; generous
/// for a loaded two-core machine).
const BOUND: Duration = Duration::from_millis(100);

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

// ---- the child ----

#[derive(Default)]
struct Recorded(Mutex<Vec<(State, State)>>);

impl Listener for Recorded {
    fn state_change(&self, _: &CircuitBreaker, old: State, new: State) {
        self.0.lock().unwrap().push((old, new));
    }
}

fn report(line: String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@{line}").unwrap();
    out.flush().unwrap();
}

/// Runs only as a child process (started by `processes_share_one_breaker`).
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let storage = RedisStorage::builder(std::env::var(URL).unwrap())
        .namespace(std::env::var(NAMESPACE).unwrap())
        .command_timeout(Duration::from_millis(500))
        .trial_lease(Duration::from_secs(2))
        .build()
        .unwrap();
    let changes = Arc::new(Recorded::default());
    let cb = CircuitBreaker::builder("shared")
        .fail_max(FAIL_MAX)
        .reset_timeout(RESET)
        .success_threshold(255)
        .listener_arc(changes.clone())
        .storage(storage)
        .build();
    report(format!("READY {}", cb.current_state()));
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut words = line.split(' ');
        match words.next().unwrap() {
            "TRIP" if role == "observer" => {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while cb.current_state() != State::Open && std::time::Instant::now() < deadline {
                    std::hint::spin_loop();
                }
                report(format!("TRIP 0 0 {}", now_ns()));
            }
            "TRIP" => {
                let tripped = AtomicU32::new(0);
                let tripped_at = Mutex::new(0u128);
                thread::scope(|s| {
                    for _ in 0..4 {
                        s.spawn(|| {
                            for _ in 0..25 {
                                if let Err(Error::Tripped(..)) = cb.call(|| Err::<(), _>("down")) {
                                    *tripped_at.lock().unwrap() = now_ns();
                                    tripped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        });
                    }
                });
                let at = *tripped_at.lock().unwrap();
                report(format!("TRIP {} {at} 0", tripped.load(Ordering::Relaxed)));
            }
            "TRIALS" => {
                let until: u128 = words.next().unwrap().parse().unwrap();
                let mut ran = Vec::new();
                while now_ns() < until {
                    let _ = cb.call(|| {
                        let start = now_ns();
                        thread::sleep(Duration::from_millis(15));
                        ran.push(format!("{start}-{}", now_ns()));
                        Ok::<_, &str>(())
                    });
                    thread::sleep(Duration::from_micros(200));
                }
                report(format!("TRIALS {}", ran.join(",")));
            }
            "END" => {
                let seen: Vec<String> = changes
                    .0
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(a, b)| format!("{a}>{b}"))
                    .collect();
                report(format!("END {} {}", cb.current_state(), seen.join(",")));
                return;
            }
            other => panic!("unknown command {other}"),
        }
    }
}

// ---- the parent ----

struct Proc {
    child: Child,
    stdin: ChildStdin,
    reports: mpsc::Receiver<Vec<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards a child's reports (the lines holding `@@`).
fn forward(stdout: ChildStdout, reports: mpsc::Sender<Vec<String>>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        // (libtest may have started the line with the test's name.)
        if let Some((_, report)) = line.trim_end().split_once("@@") {
            let words = report.split(' ').map(str::to_owned).collect();
            if reports.send(words).is_err() {
                return;
            }
        }
    }
}

impl Proc {
    fn spawn(role: &str, url: &str, namespace: &str) -> Proc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "redis::processes::child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env(URL, url)
            .env(NAMESPACE, namespace)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the test binary runs itself");
        let (tx, reports) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || forward(stdout, tx));
        Proc {
            stdin: child.stdin.take().unwrap(),
            reports,
            child,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next report, split in words.
    fn read(&mut self) -> Vec<String> {
        self.reports
            .recv_timeout(Duration::from_secs(20))
            .expect("a child stopped reporting")
    }
}

fn intervals(report: &[String]) -> Vec<(u128, u128)> {
    report
        .get(1)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.split(',')
                .map(|iv| {
                    let (a, b) = iv.split_once('-').unwrap();
                    (a.parse().unwrap(), b.parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn processes_share_one_breaker() {
    let Some(server) = support::shared() else {
        return;
    };
    let url = server.url();
    let namespace = support::namespace("processes");
    let roles = ["failer", "failer", "failer", "observer"];
    let mut procs: Vec<Proc> = roles
        .iter()
        .map(|r| Proc::spawn(r, &url, &namespace))
        .collect();
    for p in &mut procs {
        assert_eq!(p.read(), ["READY", "closed"]);
    }

    // Three processes fail at once (4 threads each): one trip, the counter
    // stops at fail_max, and the observer (which makes no call) sees the
    // circuit open within the bound.
    for p in &mut procs {
        p.send("TRIP");
    }
    let reports: Vec<Vec<String>> = procs.iter_mut().map(Proc::read).collect();
    let tripped: u32 = reports.iter().map(|r| r[1].parse::<u32>().unwrap()).sum();
    assert_eq!(tripped, 1, "{reports:?}");
    let tripped_at: u128 = reports
        .iter()
        .map(|r| r[2].parse::<u128>().unwrap())
        .max()
        .unwrap();
    let seen_at: u128 = reports[3][3].parse().unwrap();
    let lag = Duration::from_nanos(seen_at.saturating_sub(tripped_at) as u64);
    assert!(lag <= BOUND, "the observer saw the trip {lag:?} later");
    let key = format!("{{{namespace}:shared}}:state");
    let value = server.get(&key).expect("stored");
    let fields = support::fields(&value);
    assert_eq!(
        (fields[1].as_str(), fields[3].as_str()),
        ("open", "5"),
        "{value}"
    );

    // A process that joins now follows the shared state, and writes nothing.
    let mut late = Proc::spawn("late", &url, &namespace);
    assert_eq!(late.read(), ["READY", "open"]);
    assert_eq!(server.get(&key).as_deref(), Some(value.as_str()));
    procs.push(late);

    // Half-open: every process keeps calling; trials (15 ms each, never
    // enough to close) run one at a time across all of them.
    thread::sleep(RESET + Duration::from_millis(20));
    let until = now_ns() + Duration::from_millis(700).as_nanos();
    for p in &mut procs {
        p.send(&format!("TRIALS {until}"));
    }
    let mut ran: Vec<(u128, u128)> = procs
        .iter_mut()
        .flat_map(|p| intervals(&p.read()))
        .collect();
    ran.sort();
    assert!(ran.len() >= 5, "only {} trials ran", ran.len());
    for pair in ran.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two trials overlapped: {pair:?}");
    }

    // Every process heard the trip once, and the move to half-open.
    for p in &mut procs {
        p.send("END");
    }
    for (i, p) in procs.iter_mut().enumerate() {
        let end = p.read();
        assert_eq!(end[1], "half-open", "process {i}: {end:?}");
        let seen = end.get(2).cloned().unwrap_or_default();
        let opened = seen.split(',').filter(|c| *c == "closed>open").count();
        if i < 4 {
            assert_eq!(opened, 1, "process {i}: {seen}");
        }
        assert!(seen.ends_with("open>half-open"), "process {i}: {seen}");
        assert!(p.child.wait().unwrap().success());
    }
}
