//! Keyed groups in the admin router (feature `admin`), served for real on
//! 127.0.0.1: each live key is a row named `group[key]` (percent-encoded in
//! URLs), changed by that name, heard on the event stream and labelled
//! `breaker`, `key` in `/metrics`; evicted keys leave the list.
//!
//! Every test uses group names of its own: the registry is the process's.

mod admin_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use admin_support::{request, serve, Answer};
use breaker::keyed::KeyedBreakers;
use breaker::{admin, registry, State};
use serde_json::Value;

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

fn rows_of(addr: &str, group: &str) -> Vec<Value> {
    let list = json(&get(addr, "/breakers"));
    list.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["group"] == group)
        .cloned()
        .collect()
}

fn group(name: &'static str, max_keys: usize) -> KeyedBreakers<String> {
    let g = KeyedBreakers::<String>::builder(name, |b| {
        b.fail_max(2).reset_timeout(Duration::from_secs(30))
    })
    .max_keys(max_keys)
    .build();
    registry::register_keyed(&g).unwrap();
    g
}

fn fail(g: &KeyedBreakers<String>, key: &str) {
    let _ = g.get(key).call(|| Err::<(), _>("refused"));
}

#[test]
fn each_live_key_is_a_row_named_group_and_key() {
    let addr = serve(admin::router().into());
    let http = group("adm-k-http", 100);
    fail(&http, "host-a");
    fail(&http, "host-a");
    fail(&http, "host-b");
    http.get("host-c").call(|| Ok::<_, &str>(())).unwrap();

    let rows = rows_of(&addr, "adm-k-http");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    // The overflow breaker under the group's name, then each key, sorted.
    assert_eq!(
        names,
        [
            "adm-k-http",
            "adm-k-http[host-a]",
            "adm-k-http[host-b]",
            "adm-k-http[host-c]"
        ]
    );
    assert!(rows[0]["key"].is_null());
    assert_eq!(rows[1]["key"], "host-a");
    assert_eq!(rows[1]["state"], "open");
    assert_eq!(rows[1]["fail_max"], 2);
    assert!(rows[1]["retry_after_ms"].as_u64().unwrap() <= 30_000);
    assert_eq!(
        (&rows[2]["state"], &rows[2]["fail_counter"]),
        (&"closed".into(), &1.into())
    );

    // One row by its name, percent-encoded as a path segment; the group's
    // name gives its overflow breaker.
    let one = get(&addr, "/breakers/adm-k-http%5Bhost-a%5D");
    assert_eq!(one.status, 200, "{}", one.body);
    let one = json(&one);
    assert_eq!(
        (&one["name"], &one["group"], &one["key"], &one["state"]),
        (
            &"adm-k-http[host-a]".into(),
            &"adm-k-http".into(),
            &"host-a".into(),
            &"open".into()
        )
    );
    let overflow = json(&get(&addr, "/breakers/adm-k-http"));
    assert_eq!(
        (&overflow["group"], &overflow["key"]),
        (&"adm-k-http".into(), &Value::Null)
    );
    let missing = get(&addr, "/breakers/adm-k-http%5Bhost-z%5D");
    assert_eq!(missing.status, 404);
    assert_eq!(
        json(&missing)["error"],
        "no circuit breaker named 'adm-k-http[host-z]'"
    );
    // Plain breakers' rows carry no group or key.
    registry::register(breaker::CircuitBreaker::new("adm-k-plain")).unwrap();
    let plain = json(&get(&addr, "/breakers/adm-k-plain"));
    assert!(
        plain.get("group").is_none() && plain.get("key").is_none(),
        "{plain}"
    );
}

#[test]
fn a_key_is_changed_by_its_name() {
    let addr = serve(admin::router().token("k-t0ken").into());
    let g = group("adm-k-change", 100);
    g.get("eu").call(|| Ok::<_, &str>(())).unwrap();
    let auth = Some("Bearer k-t0ken");
    assert_eq!(
        post(&addr, "/breakers/adm-k-change%5Beu%5D/open", auth).status,
        204
    );
    assert_eq!(g.get("eu").current_state(), State::Open);
    assert_eq!(g.get("us").current_state(), State::Closed);
    assert_eq!(
        post(&addr, "/breakers/adm-k-change%5Beu%5D/reset", auth).status,
        204
    );
    assert_eq!(g.get("eu").current_state(), State::Closed);
    // Without the token, refused as for any breaker; an unknown key is 404.
    assert_eq!(
        post(&addr, "/breakers/adm-k-change%5Beu%5D/open", None).status,
        401
    );
    assert_eq!(g.get("eu").current_state(), State::Closed);
    let missing = post(&addr, "/breakers/adm-k-change%5Bnowhere%5D/open", auth);
    assert_eq!(missing.status, 404);
}

#[test]
fn evicted_keys_leave_the_list_and_the_metrics() {
    let addr = serve(admin::router().into());
    let g = group("adm-k-evict", 2);
    fail(&g, "sick");
    for key in ["a", "b", "c", "d"] {
        g.get(key).call(|| Ok::<_, &str>(())).unwrap();
    }
    // "sick" has a failure: never evicted; the idle ones took turns.
    let keys: Vec<Value> = rows_of(&addr, "adm-k-evict")
        .into_iter()
        .map(|r| r["key"].clone())
        .collect();
    assert_eq!(keys, [Value::Null, "d".into(), "sick".into()]);
    assert_eq!(registry::keys("adm-k-evict").unwrap(), ["d", "sick"]);
    let metrics = get(&addr, "/metrics").body;
    assert!(
        metrics.contains(r#"breaker_state{breaker="adm-k-evict",key="sick",state="closed"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"breaker="adm-k-evict",key="a""#),
        "{metrics}"
    );
}

#[test]
fn keys_are_labelled_in_the_metrics() {
    let addr = serve(admin::router().into());
    let g = group("adm-k-metrics", 100);
    g.get("h\"1").call(|| Ok::<_, &str>(())).unwrap();
    fail(&g, "h\"1");
    fail(&g, "h\"1");
    let _ = g.get("h\"1").call(|| Ok::<_, &str>(()));
    let body = get(&addr, "/metrics").body;
    let line = |l: &str| assert!(body.lines().any(|x| x == l), "no line {l} in\n{body}");
    line(r#"breaker_calls_total{breaker="adm-k-metrics",key="h\"1",outcome="success"} 1"#);
    line(r#"breaker_calls_total{breaker="adm-k-metrics",key="h\"1",outcome="failure"} 2"#);
    line(r#"breaker_calls_total{breaker="adm-k-metrics",key="h\"1",outcome="rejected"} 1"#);
    line(
        r#"breaker_transitions_total{breaker="adm-k-metrics",key="h\"1",from="closed",to="open"} 1"#,
    );
    line(r#"breaker_state{breaker="adm-k-metrics",key="h\"1",state="open"} 1"#);
    // The overflow breaker: the group's name, no key.
    line(r#"breaker_state{breaker="adm-k-metrics",state="closed"} 1"#);
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
    for line in lines.by_ref() {
        if line.unwrap().is_empty() {
            break;
        }
    }
    lines
}

#[test]
fn a_key_made_after_the_router_is_heard_on_the_event_stream() {
    let addr = serve(admin::router().into());
    let mut events = subscribe(&addr);
    // A group registered after the router, and a key made after both.
    let g = group("adm-k-events", 100);
    fail(&g, "late");
    fail(&g, "late");
    let mut seen = Vec::new();
    while seen.is_empty() {
        let data: Value = serde_json::from_str(&next_data(&mut events)).unwrap();
        if data["name"] == "adm-k-events[late]" {
            seen.push((data["from"].clone(), data["to"].clone()));
        }
    }
    assert_eq!(seen, [("closed".into(), "open".into())]);
}
