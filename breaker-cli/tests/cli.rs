//! The `breaker` binary, run as a user runs it: against a real redis-server
//! (started here, on 127.0.0.1) holding a fleet's breakers, against an
//! admin endpoint (a small stand-in speaking the admin API's HTTP), and
//! against the real `breaker::admin::router()`.

#[path = "../../tests/admin_support/mod.rs"]
mod admin_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use breaker::{CircuitBreaker, RedisStorage, State};

fn breaker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(args)
        .env_remove("BREAKER_ADMIN_TOKEN")
        .output()
        .expect("the breaker binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed command: exit code 1 and one line on stderr, no panic.
fn assert_fails(o: &Output, says: &str) {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("breaker: ") && err.contains(says), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn bad_usage_exits_with_2() {
    for args in [
        &["list"][..],
        &["--redis", "redis://127.0.0.1:1/", "frobnicate"],
        &["--admin", "http://127.0.0.1:1/", "--namespace", "x", "list"],
        &["--redis", "redis://127.0.0.1:1/", "get"],
    ] {
        let o = breaker(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(stderr(&o).contains("Usage"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn an_unreachable_redis_or_endpoint_is_one_line_and_exit_1() {
    let o = breaker(&["--redis", "redis://127.0.0.1:1/", "list"]);
    assert_fails(&o, "cannot use Redis at redis://127.0.0.1:1/");
    let o = breaker(&["--admin", "http://127.0.0.1:1/", "list"]);
    assert_fails(&o, "cannot reach the admin endpoint http://127.0.0.1:1");
}

// ---- against Redis ----

/// A redis-server on a free port, stopped when dropped (and when this
/// process dies: it runs under a shell that kills it when stdin closes).
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Option<Redis> {
        let found = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is required in CI: scripts/test installs it");
            }
            eprintln!("skipping: redis-server not found (scripts/test installs it)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no & pid=$!; read _; kill $pid; wait $pid"#)
            .arg("sh")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let redis = Redis { port, child };
        assert!(eventually(
            || TcpStream::connect(("127.0.0.1", port)).is_ok()
        ));
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn process(url: &str) -> RedisStorage {
    RedisStorage::builder(url)
        .namespace("shop")
        .heartbeat_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

#[test]
fn a_fleet_on_redis_listed_changed_and_watched() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let url = redis.url();
    let (a, b) = (process(&url), process(&url));
    let payments = || {
        CircuitBreaker::builder("payments")
            .fail_max(1)
            .reset_timeout(Duration::from_secs(30))
    };
    let pa = payments().storage(a.clone()).build();
    let pb = payments().storage(b.clone()).build();
    let db = CircuitBreaker::builder("db").storage(b.clone()).build();
    let _ = pa.call(|| Err::<(), _>("boom"));
    // The other process follows the trip through Redis.
    assert!(eventually(|| pb.current_state() == State::Open));

    let list = |extra: &[&str]| {
        let mut args = vec!["--redis", url.as_str(), "--namespace", "shop", "list"];
        args.extend(extra);
        breaker(&args)
    };
    assert!(eventually(|| {
        let o = list(&["--json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap_or_default();
        rows.len() == 2 && rows[0]["processes"] == 2
    }));
    let o = list(&["--json"]);
    assert_eq!(o.status.code(), Some(0));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    // Open first.
    assert_eq!(rows[0]["name"], "payments");
    assert_eq!(rows[0]["state"], "open");
    assert_eq!(rows[0]["fail_max"], 1);
    assert_eq!(rows[0]["reset_timeout_ms"], 30_000);
    assert!(rows[0]["retry_after_ms"].as_u64().unwrap() <= 30_000);
    assert_eq!(
        (&rows[1]["name"], &rows[1]["state"]),
        (&"db".into(), &"closed".into())
    );
    // The table people read.
    let table = stdout(&list(&[]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].ends_with("PROCESSES"),
        "{table}"
    );
    assert!(lines[1].starts_with("payments  open"), "{table}");
    assert!(lines[2].starts_with("db        closed"), "{table}");

    // A watcher hears the changes made through the command.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(["--redis", &url, "--namespace", "shop", "watch", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (line_tx, lines) = std::sync::mpsc::channel::<String>();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let t: serde_json::Value = serde_json::from_str(&line).unwrap();
            let _ =
                line_tx.send(format!("{} {} {}", t["name"], t["from"], t["to"]).replace('"', ""));
        }
    });
    // It is subscribed once a change made now reaches it.
    let ops = process(&url);
    assert!(eventually(|| {
        ops.fleet().open("probe").unwrap();
        ops.fleet().reset("probe").unwrap();
        lines.recv_timeout(Duration::from_millis(50)).is_ok()
    }));
    let o = breaker(&["--redis", &url, "--namespace", "shop", "close", "payments"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "payments: closed\n")
    );
    assert!(eventually(
        || pa.current_state() == State::Closed && pb.current_state() == State::Closed
    ));
    let o = breaker(&["--redis", &url, "--namespace", "shop", "open", "db"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(eventually(|| db.current_state() == State::Open));
    let o = breaker(&[
        "--redis",
        &url,
        "--namespace",
        "shop",
        "reset",
        "db",
        "--json",
    ]);
    let row: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(row["state"], "closed");
    let heard: Vec<String> = lines
        .iter()
        .filter(|l| !l.starts_with("probe"))
        .take(3)
        .collect();
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        heard,
        ["payments open closed", "db closed open", "db open closed"]
    );

    // One breaker; a name nobody uses is a failed command.
    let o = breaker(&["--redis", &url, "--namespace", "shop", "get", "payments"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("state:             closed"),
        "{}",
        stdout(&o)
    );
    let o = breaker(&["--redis", &url, "--namespace", "shop", "get", "nobody"]);
    assert_fails(&o, "no breaker named 'nobody' in namespace 'shop'");

    // A stored value that is not a state reads "unknown", as the admin
    // router's rows spell it (no process uses `ghost`, so none repairs it).
    let mut conn = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    let key = "{shop:ghost}:state";
    write!(
        conn,
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$7\r\ngarbage\r\n",
        key.len()
    )
    .unwrap();
    let mut ok = [0; 5];
    conn.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let o = breaker(&[
        "--redis",
        &url,
        "--namespace",
        "shop",
        "get",
        "ghost",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let row: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(row["state"], "unknown");
}

// ---- against an admin endpoint ----

/// A stand-in for `breaker::admin::router()`: answers the admin API's
/// requests with fixed bodies and records what it was asked.
fn admin_endpoint(token: Option<&'static str>) -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (asked, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let mut auth = None;
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        auth = Some(value.trim().to_owned());
                    }
                }
            }
            let request = request.trim().to_owned();
            let _ = asked.send(request.clone());
            let payments = r#"{"name":"payments","state":"open","fail_counter":5,"fail_max":5,"success_counter":0,"success_threshold":1,"reset_timeout_ms":60000,"retry_after_ms":41000,"opened_at_ms":1795960547871,"window":null}"#;
            let (status, body): (&str, String) = match request.as_str() {
                "GET /breakers HTTP/1.1" => ("200 OK", format!("[{payments}]")),
                "GET /breakers/payments HTTP/1.1" => ("200 OK", payments.to_owned()),
                "GET /breakers/a%2Fb HTTP/1.1" | "GET /breakers/nobody HTTP/1.1" => (
                    "404 Not Found",
                    r#"{"error":"no breaker named 'nobody'"}"#.to_owned(),
                ),
                "POST /breakers/payments/close HTTP/1.1" => match (token, auth.as_deref()) {
                    (None, _) => ("403 Forbidden", r#"{"error":"no token configured"}"#.into()),
                    (Some(t), Some(a)) if a == format!("Bearer {t}") => {
                        ("204 No Content", String::new())
                    }
                    _ => ("401 Unauthorized", r#"{"error":"bad token"}"#.into()),
                },
                "GET /events HTTP/1.1" => {
                    let event = r#"{"name":"payments","from":"open","to":"half-open","at_ms":1795960547871}"#;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n: hello\n\ndata: {event}\n\n"
                    );
                    let _ = stream.flush();
                    // Keep the stream open a while, as a live endpoint does.
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                _ => ("404 Not Found", r#"{"error":"no such route"}"#.to_owned()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut rest = Vec::new();
            let _ = stream.set_read_timeout(Some(Duration::from_millis(10)));
            let _ = stream.read_to_end(&mut rest);
        }
    });
    (url, log)
}

#[test]
fn an_admin_endpoint_listed_and_changed_with_its_token() {
    let (url, asked) = admin_endpoint(Some("s3cret"));
    let o = breaker(&["--admin", &url, "list"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        stdout(&o),
        "NAME      STATE  FAILURES  RETRY AFTER\npayments  open   5/5       41s\n"
    );
    let o = breaker(&["--admin", &url, "--token", "s3cret", "close", "payments"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = breaker(&["--admin", &url, "--token", "wrong", "close", "payments"]);
    assert_fails(&o, "unauthorised: give the admin token with --token");
    let o = breaker(&["--admin", &url, "close", "payments"]);
    assert_fails(&o, "unauthorised");
    let o = breaker(&["--admin", &url, "get", "nobody"]);
    assert_fails(&o, "not found (no breaker named 'nobody')");
    // Names are one path segment, escaped.
    let _ = breaker(&["--admin", &url, "get", "a/b"]);
    let o = breaker(&["--admin", &url, "watch", "--json"]);
    let first = stdout(&o).lines().next().unwrap_or_default().to_owned();
    assert_eq!(
        first,
        r#"{"name":"payments","from":"open","to":"half-open","at_ms":1795960547871}"#
    );
    let seen: Vec<String> = asked.try_iter().collect();
    assert!(
        seen.contains(&"GET /breakers/a%2Fb HTTP/1.1".to_owned()),
        "{seen:?}"
    );
    assert!(seen.contains(&"POST /breakers/payments/close HTTP/1.1".to_owned()));

    // An endpoint with no token configured refuses every change.
    let (url, _) = admin_endpoint(None);
    let o = breaker(&["--admin", &url, "--token", "s3cret", "close", "payments"]);
    assert_fails(&o, "refused: the endpoint has no token configured");
}

// ---- against the real admin router ----

/// Serves `breaker::admin::router()` with `token` on 127.0.0.1.
fn real_admin(token: &str) -> String {
    format!(
        "http://{}",
        admin_support::serve(breaker::admin::router().token(token).into())
    )
}

#[test]
fn the_cli_drives_the_real_admin_router() {
    let cb = breaker::registry::register(
        CircuitBreaker::builder("cli-e2e")
            .fail_max(2)
            .reset_timeout(Duration::from_secs(60))
            .build(),
    )
    .unwrap();
    let _ = cb.call(|| Err::<(), _>("refused"));
    let url = real_admin("e2e-t0ken");

    let o = breaker(&["--admin", &url, "list", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let rows: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cli-e2e")
        .unwrap()
        .clone();
    assert_eq!(row["state"], "closed");
    assert_eq!(row["fail_counter"], 1);
    assert_eq!(row["fail_max"], 2);

    let o = breaker(&["--admin", &url, "get", "cli-e2e"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("failures:          1/2"),
        "{}",
        stdout(&o)
    );

    // watch prints the transitions the commands below make.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_breaker"))
        .args(["--admin", &url, "watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watched = BufReader::new(watch.stdout.take().unwrap()).lines();
    // Subscribed once it prints a transition of a breaker toggled until then.
    let ping = breaker::registry::register(CircuitBreaker::new("cli-e2e-ping")).unwrap();
    let subscribed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let toggler = {
        let subscribed = std::sync::Arc::clone(&subscribed);
        std::thread::spawn(move || {
            while !subscribed.load(std::sync::atomic::Ordering::Relaxed) {
                ping.open();
                ping.close();
                std::thread::yield_now();
            }
        })
    };
    for line in watched.by_ref() {
        if line.unwrap().contains("cli-e2e-ping") {
            break;
        }
    }
    subscribed.store(true, std::sync::atomic::Ordering::Relaxed);
    toggler.join().unwrap();

    for (action, state) in [
        ("open", State::Open),
        ("half-open", State::HalfOpen),
        ("close", State::Closed),
        ("open", State::Open),
        ("reset", State::Closed),
    ] {
        let o = breaker(&["--admin", &url, "--token", "e2e-t0ken", action, "cli-e2e"]);
        assert_eq!(o.status.code(), Some(0), "{action}: {o:?}");
        assert_eq!(cb.current_state(), state, "{action}");
    }
    let mut heard = Vec::new();
    while heard.len() < 5 {
        let line = watched.next().expect("watch prints").unwrap();
        let t: serde_json::Value = serde_json::from_str(&line).unwrap();
        if t["name"] == "cli-e2e" {
            heard.push(format!(
                "{}->{}",
                t["from"].as_str().unwrap(),
                t["to"].as_str().unwrap()
            ));
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        heard,
        [
            "closed->open",
            "open->half-open",
            "half-open->closed",
            "closed->open",
            "open->closed"
        ]
    );

    let o = breaker(&["--admin", &url, "--token", "wrong", "open", "cli-e2e"]);
    assert_fails(&o, "unauthorised: give the admin token with --token");
    let o = breaker(&["--admin", &url, "open", "cli-e2e"]);
    assert_fails(&o, "unauthorised");
    let o = breaker(&["--admin", &url, "get", "cli-nobody"]);
    assert_fails(&o, "not found (no circuit breaker named 'cli-nobody')");
    let o = breaker(&[
        "--admin",
        &url,
        "--token",
        "e2e-t0ken",
        "close",
        "cli-nobody",
    ]);
    assert_fails(&o, "not found");
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn the_cli_names_a_keyed_breaker_group_and_key() {
    let hosts =
        breaker::keyed::KeyedBreakers::<String>::builder("cli-hosts", |b| b.fail_max(1)).build();
    breaker::registry::register_keyed(&hosts).unwrap();
    let _ = hosts.get("host-a").call(|| Err::<(), _>("refused"));
    hosts.get("host-b").call(|| Ok::<_, &str>(())).unwrap();
    let url = real_admin("keyed-t0ken");

    let o = breaker(&["--admin", &url, "list"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let table = stdout(&o);
    // Open first; a key's breaker is `group[key]`.
    let ours: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("cli-hosts"))
        .collect();
    assert!(ours[0].starts_with("cli-hosts[host-a]  open"), "{table}");
    assert!(
        ours.iter()
            .any(|l| l.starts_with("cli-hosts[host-b]  closed")),
        "{table}"
    );

    let o = breaker(&["--admin", &url, "get", "cli-hosts[host-a]"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("state:             open"),
        "{}",
        stdout(&o)
    );
    let o = breaker(&[
        "--admin",
        &url,
        "--token",
        "keyed-t0ken",
        "close",
        "cli-hosts[host-a]",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(hosts.get("host-a").current_state(), State::Closed);
    let o = breaker(&["--admin", &url, "get", "cli-hosts[host-z]"]);
    assert_fails(&o, "no circuit breaker named 'cli-hosts[host-z]'");
}
