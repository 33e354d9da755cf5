//! The admin router (feature `admin`) served for real on 127.0.0.1: JSON,
//! manual transitions and their authorisation, server-sent events,
//! Prometheus text, the dashboard page, and bad requests.
//!
//! Every test uses breaker names of its own: the registry is the process's.

mod admin_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use admin_support::{request, serve, Answer};
use breaker::{admin, registry, CircuitBreaker, State};
use serde_json::Value;

fn register(name: &str, fail_max: u32) -> std::sync::Arc<CircuitBreaker> {
    registry::register(
        CircuitBreaker::builder(name.to_owned())
            .fail_max(fail_max)
            .reset_timeout(Duration::from_secs(30))
            .build(),
    )
    .unwrap()
}

fn get(addr: &str, path: &str) -> Answer {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

fn post(addr: &str, path: &str, auth: Option<&str>) -> Answer {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    request(
        addr,
        &format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"),
    )
}

fn json(a: &Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", a.body))
}

#[test]
fn breakers_are_listed_and_detailed_as_json() {
    let addr = serve(admin::router().into());
    let cb = register("adm-list-db", 2);
    let _ = cb.call(|| Err::<(), _>("refused"));
    let _ = cb.call(|| Err::<(), _>("refused"));
    assert_eq!(cb.current_state(), State::Open);

    let list = get(&addr, "/breakers");
    assert_eq!(list.status, 200);
    assert!(list
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let rows = json(&list);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "adm-list-db")
        .expect("the breaker is listed")
        .clone();
    assert_eq!(row["state"], "open");
    assert_eq!(row["fail_counter"], 2);
    assert_eq!(row["fail_max"], 2);
    assert_eq!(row["success_counter"], 0);
    assert_eq!(row["success_threshold"], 1);
    assert_eq!(row["reset_timeout_ms"], 30_000);
    let retry = row["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 30_000, "{retry}");
    assert!(row["opened_at_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(row["window"].is_null());

    let one = get(&addr, "/breakers/adm-list-db");
    assert_eq!(one.status, 200);
    assert_eq!(json(&one)["state"], "open");

    let missing = get(&addr, "/breakers/adm-no-such");
    assert_eq!(missing.status, 404);
    assert_eq!(
        json(&missing)["error"],
        "no circuit breaker named 'adm-no-such'"
    );
}

#[test]
fn a_rate_policy_shows_its_window() {
    let addr = serve(admin::router().into());
    let cb = breaker::registry::register(
        CircuitBreaker::builder("adm-window")
            .failure_rate(0.5)
            .window_calls(50)
            .min_calls(2)
            .build(),
    )
    .unwrap();
    let _ = cb.call(|| Ok::<_, &str>(()));
    let _ = cb.call(|| Ok::<_, &str>(()));
    let _ = cb.call(|| Err::<(), _>("refused"));
    let window = json(&get(&addr, "/breakers/adm-window"))["window"].clone();
    assert_eq!(window["calls"], 3);
    assert_eq!(window["failures"], 1);
    assert_eq!(window["slow_calls"], 0);
    assert!((window["failure_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(window["failure_rate_threshold"], 0.5);
    assert!(window["slow_call_rate_threshold"].is_null());
    assert_eq!(window["min_calls"], 2);
    assert_eq!(window["window_calls"], 50);
}

#[test]
fn a_breaker_registered_after_the_router_is_listed() {
    let addr = serve(admin::router().into());
    let before = json(&get(&addr, "/breakers"));
    assert!(!before
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "adm-late"));
    register("adm-late", 5);
    let after = json(&get(&addr, "/breakers"));
    assert!(after
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "adm-late"));
}

#[test]
fn without_a_token_configured_changes_are_forbidden() {
    let addr = serve(admin::router().into());
    let cb = register("adm-no-token", 5);
    for auth in [None, Some("Bearer anything")] {
        let a = post(&addr, "/breakers/adm-no-token/open", auth);
        assert_eq!(a.status, 403, "{auth:?}");
        assert!(json(&a)["error"]
            .as_str()
            .unwrap()
            .contains("no token configured"));
    }
    assert_eq!(cb.current_state(), State::Closed);
}

#[test]
fn changes_need_the_right_bearer_token() {
    let addr = serve(admin::router().token("t0ken").into());
    let cb = register("adm-token", 5);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer t0ke"),
        Some("Bearer t0kenX"),
        Some("bearer t0ken"),
        Some("Basic dDBrZW4="),
        Some("Bearer"),
        Some("Bearer "),
        Some("t0ken"),
    ] {
        let a = post(&addr, "/breakers/adm-token/open", auth);
        assert_eq!(a.status, 401, "{auth:?}");
        assert!(json(&a)["error"].is_string());
    }
    assert_eq!(cb.current_state(), State::Closed);

    for (action, state) in [
        ("open", State::Open),
        ("half-open", State::HalfOpen),
        ("close", State::Closed),
        ("open", State::Open),
        ("reset", State::Closed),
    ] {
        let a = post(
            &addr,
            &format!("/breakers/adm-token/{action}"),
            Some("Bearer t0ken"),
        );
        assert_eq!(a.status, 204, "{action}: {}", a.body);
        assert!(a.body.is_empty());
        assert_eq!(cb.current_state(), state, "{action}");
    }

    let unknown_action = post(&addr, "/breakers/adm-token/explode", Some("Bearer t0ken"));
    assert_eq!(unknown_action.status, 404);
    assert!(json(&unknown_action)["error"]
        .as_str()
        .unwrap()
        .contains("unknown action 'explode'"));
    let unknown_breaker = post(&addr, "/breakers/adm-nobody/open", Some("Bearer t0ken"));
    assert_eq!(unknown_breaker.status, 404);
    assert_eq!(
        json(&unknown_breaker)["error"],
        "no circuit breaker named 'adm-nobody'"
    );

    // A body where none is expected is ignored.
    let with_body = request(
        &addr,
        "POST /breakers/adm-token/open HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\n\
         Content-Type: application/json\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{\"state\":\"open\"}\n",
    );
    assert_eq!(with_body.status, 204);
    assert_eq!(cb.current_state(), State::Open);
}

/// Reads the event stream until a `data:` line, returning it.
fn next_data(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    for line in lines {
        let line = line.expect("the stream stays open");
        if let Some(data) = line.strip_prefix("data:") {
            return data.trim().to_owned();
        }
    }
    panic!("the event stream ended")
}

fn subscribe(addr: &str) -> impl Iterator<Item = std::io::Result<String>> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next().unwrap().unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut headers = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.is_empty() {
            break;
        }
        headers.push(line.to_ascii_lowercase());
    }
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("content-type: text/event-stream")),
        "{headers:?}"
    );
    lines
}

#[test]
fn transitions_stream_as_server_sent_events() {
    let addr = serve(admin::router().into());
    let mut events = subscribe(&addr);
    // A breaker registered after the stream started is heard too.
    let cb = register("adm-events", 1);
    let _ = cb.call(|| Err::<(), _>("refused"));
    let mut seen = Vec::new();
    // Other tests' breakers share the stream: read until ours.
    while seen.len() < 2 {
        let data: Value = serde_json::from_str(&next_data(&mut events)).unwrap();
        if data["name"] == "adm-events" {
            seen.push(data.clone());
            if seen.len() == 1 {
                cb.close();
            }
        }
    }
    assert_eq!(seen[0]["from"], "closed");
    assert_eq!(seen[0]["to"], "open");
    assert!(seen[0]["at_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(seen[1]["from"], "open");
    assert_eq!(seen[1]["to"], "closed");

    // A name with line breaks stays on one `data:` line.
    let odd = register("adm-line\nbreak\r\ndata: {\"forged\":true}", 1);
    odd.open();
    loop {
        let data = next_data(&mut events);
        let parsed: Value = serde_json::from_str(&data).expect("one line of JSON");
        assert!(parsed.get("forged").is_none(), "a forged event: {data}");
        if parsed["name"] == odd.name() {
            assert_eq!(parsed["to"], "open");
            break;
        }
    }

    let history = json(&get(&addr, "/history"));
    assert!(history["since_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let ours: Vec<_> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "adm-events")
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ours,
        [
            ("closed".into(), "open".into()),
            ("open".into(), "closed".into())
        ]
    );
}

#[test]
fn metrics_are_prometheus_text_without_a_recorder() {
    let addr = serve(admin::router().into());
    let cb = register("adm-metrics\"x", 2);
    cb.call(|| Ok::<_, &str>(())).unwrap();
    cb.call(|| Ok::<_, &str>(())).unwrap();
    let _ = cb.call(|| Err::<(), _>("refused"));
    let _ = cb.call(|| Err::<(), _>("refused"));
    let _ = cb.call(|| Ok::<_, &str>(()));
    let a = get(&addr, "/metrics");
    assert_eq!(a.status, 200);
    assert!(a
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let line = |l: &str| assert!(a.body.lines().any(|x| x == l), "no line {l} in\n{}", a.body);
    line("# TYPE breaker_calls_total counter");
    line(r#"breaker_calls_total{breaker="adm-metrics\"x",outcome="success"} 2"#);
    line(r#"breaker_calls_total{breaker="adm-metrics\"x",outcome="failure"} 2"#);
    line(r#"breaker_calls_total{breaker="adm-metrics\"x",outcome="rejected"} 1"#);
    line(r#"breaker_calls_total{breaker="adm-metrics\"x",outcome="excluded"} 0"#);
    line(r#"breaker_transitions_total{breaker="adm-metrics\"x",from="closed",to="open"} 1"#);
    line(r#"breaker_transitions_total{breaker="adm-metrics\"x",from="open",to="closed"} 0"#);
    line("# TYPE breaker_state gauge");
    line(r#"breaker_state{breaker="adm-metrics\"x",state="open"} 1"#);
    line(r#"breaker_state{breaker="adm-metrics\"x",state="closed"} 0"#);
}

/// Successes are counted on a stripe per thread and summed when
/// `/metrics` is scraped: every one of 8 threads' is there, none twice,
/// also from threads that have exited (their lanes are taken again).
#[test]
fn successes_from_many_threads_are_all_counted() {
    let addr = serve(admin::router().into());
    let cb = register("adm-successes", 1_000);
    let line = |body: &str, n: u64| {
        let want =
            format!(r#"breaker_calls_total{{breaker="adm-successes",outcome="success"}} {n}"#);
        assert!(body.lines().any(|l| l == want), "no line {want} in\n{body}");
    };
    for round in 1..=3 {
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        cb.call(|| Ok::<_, &str>(())).unwrap();
                    }
                    // A failure is not a success.
                    let _ = cb.call(|| Err::<(), _>("refused"));
                    cb.call(|| Ok::<_, &str>(())).unwrap();
                });
            }
        });
        let body = get(&addr, "/metrics").body;
        line(&body, round * 8 * 10_001);
        let failures = format!(
            r#"breaker_calls_total{{breaker="adm-successes",outcome="failure"}} {}"#,
            round * 8
        );
        assert!(
            body.lines().any(|l| l == failures),
            "no line {failures} in\n{body}"
        );
    }
    cb.call(|| Ok::<_, &str>(())).unwrap();
    line(&get(&addr, "/metrics").body, 3 * 8 * 10_001 + 1);
}

#[test]
fn the_dashboard_is_one_page_with_no_external_assets() {
    let read_only = serve(admin::router().into());
    let page = get(&read_only, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert!(page.body.contains("<body data-mutations=\"no\">"));
    for external in ["http://", "https://", "src=\"", "<link"] {
        assert!(!page.body.contains(external), "the page loads {external}");
    }
    assert!(
        !page.body.contains(".innerHTML"),
        "names must not be parsed as HTML"
    );
    let with_token = serve(admin::router().token("t").into());
    assert!(get(&with_token, "/")
        .body
        .contains("<body data-mutations=\"yes\">"));
}

#[test]
fn sneaky_paths_and_methods_get_json_errors() {
    let addr = serve(admin::router().token("t").into());
    register("adm-paths", 5);
    for path in [
        "/breakers/../breakers",
        "/breakers/adm-paths/..",
        "/breakers/%2e%2e/adm-paths",
        "/breakers/adm%2Fpaths",
        "/breakers/adm%2fpaths/open",
        "/breakers/adm%5Cpaths",
        "/nowhere",
        "/breakers/adm-paths/open/again",
    ] {
        let a = get(&addr, path);
        assert_eq!(a.status, 404, "{path}");
        assert!(json(&a)["error"].is_string(), "{path}");
    }
    let a = request(
        &addr,
        "DELETE /breakers/adm-paths HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(a.status, 405);
    assert!(json(&a)["error"].is_string());
    // The name a browser would send percent-encoded still works.
    let spaced = register("adm paths ü", 5);
    let a = get(&addr, "/breakers/adm%20paths%20%C3%BC");
    assert_eq!(json(&a)["name"], spaced.name());
}

#[test]
fn the_server_stays_up_under_a_thousand_malformed_requests() {
    let addr = serve(admin::router().token("t").into());
    register("adm-storm", 5);
    let junk: [&[u8]; 8] = [
        b"GARBAGE\r\n\r\n",
        b"GET /breakers/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /breakers/adm-storm/open HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nContent-Length: 0\r\n\r\n",
        b"POST /breakers/adm-storm/open HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET /breakers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /\x00\x01 HTTP/1.1\r\n\r\n",
        b"GET /breakers/\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /breakers/adm-storm/close HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nAuthorization: Bearer t\r\nContent-Length: 0\r\n\r\n",
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tasks = Vec::new();
        for i in 0..1_000 {
            let addr = addr.clone();
            let bytes = junk[i % junk.len()];
            tasks.push(tokio::spawn(async move {
                let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
                    return;
                };
                let _ = s.write_all(bytes).await;
                let _ = s.shutdown().await;
                let mut sink = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    // Still up, still right, and nothing was changed without the token.
    let a = get(&addr, "/breakers/adm-storm");
    assert_eq!(a.status, 200);
    assert_eq!(json(&a)["state"], "closed");
}

#[test]
fn an_xss_name_is_json_text() {
    let addr = serve(admin::router().into());
    let name = "<img src=x onerror=alert(1)>";
    register(name, 5);
    let rows = json(&get(&addr, "/breakers"));
    assert!(rows.as_array().unwrap().iter().any(|r| r["name"] == name));
}
