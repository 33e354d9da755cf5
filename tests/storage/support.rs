//! Real Redis servers for the tests, on free 127.0.0.1 ports in temporary
//! directories, stopped when dropped (and when this process dies: each runs
//! under a shell that kills it once our end of its stdin closes), plus a
//! minimal RESP client to look at and tamper with what they store.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Whether `redis-server` can run here. Without it the Redis tests skip with
/// a message on a developer's machine and fail in CI (`CI=true`).
pub fn available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let found = *FOUND.get_or_init(|| {
        ["redis-server", "redis-cli"].iter().all(|tool| {
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    });
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("redis-server and redis-cli are required in CI: scripts/test installs them (apt-get install redis-server redis-tools)");
        }
        eprintln!("skipping: redis-server or redis-cli not found (scripts/test installs them)");
    }
    found
}

/// A namespace no other test uses.
pub fn namespace(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        test.replace(|c: char| !c.is_ascii_alphanumeric(), "")
    )
}

/// The server most tests share (one per test binary); tests keep apart by
/// namespace. `None` when Redis is not installed (the test then skips).
pub fn shared() -> Option<&'static Server> {
    static SHARED: OnceLock<Option<Server>> = OnceLock::new();
    SHARED
        .get_or_init(|| available().then(|| Server::start(&[])))
        .as_ref()
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// One `redis-server` process.
pub struct Server {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// Starts a server on a free port with `extra` arguments.
    pub fn start(extra: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "breaker-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Server {
            port: 0,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("could not start redis-server");
    }

    /// Starts a server on `port` (which nothing listens on yet).
    pub fn start_at(port: u16) -> Server {
        let dir = std::env::temp_dir().join(format!("breaker-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Server {
            port,
            dir,
            extra: Vec::new(),
            child: None,
        };
        assert!(server.launch(), "redis-server did not start on port {port}");
        server
    }

    /// Starts a dedicated server that only this test uses.
    pub fn dedicated() -> Option<Server> {
        available().then(|| Server::start(&[]))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn launch(&mut self) -> bool {
        std::fs::create_dir_all(&self.dir).expect("temp dir");
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "no".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--enable-debug-command".into(),
            "yes".into(),
            "--loglevel".into(),
            "warning".into(),
        ];
        args.extend(self.extra.iter().cloned());
        // The shell kills the server when our end of its stdin closes: on
        // `stop`, and when this process exits, however it exits.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"redis-server "$@" & pid=$!; read _; kill $pid; wait $pid; rm -rf "$BREAKER_REDIS_DIR""#)
            .env("BREAKER_REDIS_DIR", &self.dir)
            .arg("sh")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match command(self.port, &["PING"]) {
                Ok(Resp::Simple(s)) if s == "PONG" => return true,
                // Up, with a password on the default user.
                Ok(Resp::Error(e)) if e.starts_with("NOAUTH") => return true,
                _ => {}
            }
            if let Some(child) = &mut self.child {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    /// Stops the server (its data is lost: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.launch(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Runs one command on the server.
    pub fn cmd(&self, args: &[&str]) -> Resp {
        command(self.port, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        match self.cmd(&["GET", key]) {
            Resp::Bulk(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
            other => panic!("GET {key}: {other:?}"),
        }
    }

    /// Calls of a command so far (`INFO commandstats`).
    pub fn calls(&self, command: &str) -> u64 {
        let Resp::Bulk(Some(info)) = self.cmd(&["INFO", "commandstats"]) else {
            panic!("INFO commandstats");
        };
        let prefix = format!("cmdstat_{command}:calls=");
        String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters on 127.0.0.1, slots spread by `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<Server>,
}

impl Cluster {
    pub fn start() -> Option<Cluster> {
        if !available() {
            return None;
        }
        let nodes: Vec<Server> = (0..3)
            .map(|_| {
                let bus = free_port().to_string();
                Server::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-port",
                    &bus,
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = nodes.iter().all(|n| match n.cmd(&["CLUSTER", "INFO"]) {
                Resp::Bulk(Some(b)) => String::from_utf8_lossy(&b).contains("cluster_state:ok"),
                _ => false,
            });
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Cluster { nodes })
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    /// The node that serves `key`.
    pub fn owner(&self, key: &str) -> &Server {
        self.nodes
            .iter()
            .find(|n| !matches!(n.cmd(&["GET", key]), Resp::Error(_)))
            .expect("a node serves every slot")
    }
}

/// A RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

/// Runs one command on a fresh connection to 127.0.0.1:`port`.
pub fn command(port: u16, args: &[&str]) -> Result<Resp, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    stream.write_all(&out).map_err(|e| e.to_string())?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(r: &mut BufReader<TcpStream>) -> Result<Resp, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    let int = || rest.parse::<i64>().map_err(|e| format!("{line:?}: {e}"));
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Int(int()?),
        "$" => match int()? {
            -1 => Resp::Bulk(None),
            n => {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf).map_err(|e| e.to_string())?;
                buf.truncate(n as usize);
                Resp::Bulk(Some(buf))
            }
        },
        "*" => match int()? {
            -1 => Resp::Array(None),
            n => Resp::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<Result<_, _>>()?,
            )),
        },
        _ => return Err(format!("unexpected reply {line:?}")),
    })
}

/// The fields of a stored state: `v1 state gen fails successes trial opened seq`.
pub fn fields(value: &str) -> Vec<String> {
    value.split(' ').map(str::to_owned).collect()
}
