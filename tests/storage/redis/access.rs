//! Connections as managed Redis needs them: a password, an ACL user limited
//! to the breaker's keys and channel (the minimal ACL the module docs give),
//! the database number from the URL.

use std::time::Duration;

use breaker::{CircuitBreaker, RedisStorage, State};

use super::{bound, eventually};
use crate::support::{self, Server};

/// The ACL rules the module docs give for namespace `ns`.
fn minimal_acl(ns: &str) -> Vec<String> {
    [
        "resetkeys".to_owned(),
        format!("~{{{ns}:*"),
        format!("~{{{ns}}}:*"),
        "resetchannels".to_owned(),
        format!("&{ns}:events"),
        "-@all".to_owned(),
        "+evalsha".to_owned(),
        "+eval".to_owned(),
        "+get".to_owned(),
        "+set".to_owned(),
        "+publish".to_owned(),
        "+time".to_owned(),
        "+subscribe".to_owned(),
        "+ping".to_owned(),
        "+zadd".to_owned(),
        "+zremrangebyscore".to_owned(),
        "+hset".to_owned(),
        "+hmget".to_owned(),
        "+pexpire".to_owned(),
    ]
    .into()
}

fn trip_and_share(url: &str, ns: &str) {
    let a = RedisStorage::builder(url)
        .namespace(ns)
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let b = RedisStorage::builder(url)
        .namespace(ns)
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let builder = || {
        CircuitBreaker::builder("api")
            .fail_max(2)
            .reset_timeout(Duration::from_secs(60))
    };
    let (ca, sa) = bound(builder(), &a);
    let (cb, sb) = bound(builder(), &b);
    assert!(sa.is_shared(), "{url}: the storage could not use Redis");
    assert!(sb.is_shared());
    let _ = ca.call(|| Err::<(), _>("boom"));
    let _ = ca.call(|| Err::<(), _>("boom"));
    assert_eq!(ca.current_state(), State::Open);
    // Only Redis could have told the other storage (pub/sub or a read).
    assert!(eventually(Duration::from_secs(3), || cb.current_state() == State::Open));
    assert!(sa.is_shared() && sb.is_shared());
    // A failure rate over the fleet's window (a hash beside the state).
    let rated = || {
        CircuitBreaker::builder("rated")
            .failure_rate(0.5)
            .window_time(Duration::from_secs(10))
            .min_calls(2)
    };
    let (ra, _) = bound(rated(), &a);
    let (rb, _) = bound(rated(), &b);
    assert!(rb.call(|| Ok::<_, &str>(())).is_ok());
    let _ = ra.call(|| Err::<(), _>("boom"));
    assert!(eventually(Duration::from_secs(3), || {
        let _ = ra.call(|| Err::<(), _>("boom"));
        ra.current_state() == State::Open
    }));
    assert!(eventually(Duration::from_secs(3), || rb.current_state() == State::Open));
    assert!(sa.is_shared() && sb.is_shared());
}

#[test]
fn an_acl_user_limited_to_the_namespace_and_a_password() {
    if !support::available() {
        return;
    }
    let ns = support::namespace("acl");
    let mut args = vec!["--requirepass".to_owned(), "admin-secret".to_owned()];
    args.push("--user".to_owned());
    args.extend(["breaker".to_owned(), "on".to_owned(), ">s3cret".to_owned()]);
    args.extend(minimal_acl(&ns));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    // The ACL user.
    trip_and_share(
        &format!("redis://breaker:s3cret@127.0.0.1:{}/", server.port),
        &ns,
    );
    // The default user's password (`requirepass`), and a database number.
    let url = format!("redis://:admin-secret@127.0.0.1:{}/3", server.port);
    trip_and_share(&url, &support::namespace("password"));
    // Nothing was denied to the ACL user, and the password's breaker lives in
    // database 3.
    let log = std::process::Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "--no-auth-warning"])
        .args(["-a", "admin-secret", "ACL", "LOG"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.trim().is_empty(), "ACL LOG: {log}");
    let info = std::process::Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "--no-auth-warning"])
        .args(["-a", "admin-secret", "INFO", "keyspace"])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("db3:keys="), "{info}");
}

#[test]
fn a_wrong_password_is_a_storage_that_never_shares() {
    if !support::available() {
        return;
    }
    let server = Server::start(&["--requirepass", "admin-secret"]);
    let s = RedisStorage::builder(format!("redis://:wrong@127.0.0.1:{}/", server.port))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let (cb, st) = bound(CircuitBreaker::builder("api"), &s);
    // Calls run on the fallback state (closed) instead of failing or waiting.
    assert!(!st.is_shared());
    assert!(cb.call(|| Ok::<_, &str>(())).is_ok());
}
