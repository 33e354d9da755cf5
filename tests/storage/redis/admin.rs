//! The admin router on a fleet (`admin::router().fleet(storage)`): every
//! breaker some live process of the namespace uses is listed with the
//! shared state and the number of processes, a manual transition applies to
//! every process, and the fleet's transitions reach `/events`.

#[path = "../../admin_support/mod.rs"]
mod admin_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use admin_support::{request, serve};
use breaker::{admin, CircuitBreaker, RedisStorage, State};
use serde_json::Value;

use super::{bound, eventually, storage};
use crate::support;

fn process(url: &str, ns: &str) -> RedisStorage {
    RedisStorage::builder(url)
        .namespace(ns)
        .heartbeat_interval(Duration::from_millis(50))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn get(addr: &str, path: &str) -> (u16, Value) {
    let a = request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    (
        a.status,
        serde_json::from_str(&a.body).unwrap_or(Value::Null),
    )
}

fn post(addr: &str, path: &str) -> u16 {
    request(
        addr,
        &format!("POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fleet-t0ken\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .status
}

fn row<'a>(rows: &'a Value, name: &str) -> Option<&'a Value> {
    rows.as_array()?.iter().find(|r| r["name"] == name)
}

#[test]
fn the_admin_router_lists_and_changes_a_whole_fleet() {
    let Some(server) = support::shared() else {
        return;
    };
    let ns = support::namespace("admin-fleet");
    let (a_store, b_store) = (process(&server.url(), &ns), process(&server.url(), &ns));
    let api = || {
        CircuitBreaker::builder("fleet-api")
            .fail_max(2)
            .reset_timeout(Duration::from_secs(60))
    };
    let (a_api, _) = bound(api(), &a_store);
    let (b_api, _) = bound(api(), &b_store);
    let (b_db, _) = bound(CircuitBreaker::builder("fleet-db"), &b_store);
    let ops = storage(&server.url(), "unused")
        .namespace(&ns)
        .build()
        .unwrap();
    let addr = serve(admin::router().token("fleet-t0ken").fleet(ops).into());

    assert!(eventually(Duration::from_secs(3), || {
        let (status, rows) = get(&addr, "/breakers");
        status == 200
            && row(&rows, "fleet-api").is_some_and(|r| r["processes"] == 2)
            && row(&rows, "fleet-db").is_some_and(|r| r["processes"] == 1)
    }));
    let (_, rows) = get(&addr, "/breakers");
    let listed = row(&rows, "fleet-api").unwrap();
    assert_eq!(listed["state"], "closed");
    assert_eq!(listed["fail_max"], 2);
    assert_eq!(listed["reset_timeout_ms"], 60_000);

    // A trip in one process shows as the fleet's state.
    let _ = a_api.call(|| Err::<(), _>("boom"));
    let _ = a_api.call(|| Err::<(), _>("boom"));
    let (status, one) = get(&addr, "/breakers/fleet-api");
    assert_eq!(status, 200);
    assert_eq!(one["state"], "open");
    assert_eq!(one["fail_counter"], 2);
    assert!(one["retry_after_ms"].as_u64().unwrap() > 50_000);

    // Closed from the admin endpoint: every process follows.
    assert_eq!(post(&addr, "/breakers/fleet-api/close"), 204);
    assert!(eventually(Duration::from_secs(2), || a_api.current_state()
        == State::Closed
        && b_api.current_state() == State::Closed));
    assert_eq!(post(&addr, "/breakers/fleet-db/open"), 204);
    assert!(eventually(Duration::from_secs(2), || b_db.current_state()
        == State::Open));
    assert_eq!(get(&addr, "/breakers/fleet-db").1["state"], "open");
    assert_eq!(post(&addr, "/breakers/fleet-nobody/open"), 404);
    assert_eq!(get(&addr, "/breakers/fleet-nobody").0, 404);

    // The fleet's transitions reach the event stream: toggled until heard
    // (the stream's subscription to Redis is up a moment after the router).
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let heard = Arc::new(AtomicBool::new(false));
    let toggler = {
        let heard = Arc::clone(&heard);
        let toggle = process(&server.url(), &ns);
        std::thread::spawn(move || {
            while !heard.load(Ordering::Relaxed) {
                let _ = toggle.fleet().open("fleet-db");
                let _ = toggle.fleet().close("fleet-db");
            }
        })
    };
    let found = BufReader::new(stream)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let data: Value = serde_json::from_str(line.strip_prefix("data:")?.trim()).ok()?;
            (data["name"] == "fleet-db").then_some(data)
        });
    heard.store(true, Ordering::Relaxed);
    toggler.join().unwrap();
    let event = found.expect("a fleet transition on the stream");
    assert!(event["at_ms"].as_u64().unwrap() > 1_600_000_000_000);
}
