//! The admin router on a Redis fleet: the namespace's breakers beside the
//! process's own, manual transitions applied fleet-wide, and the fleet's
//! transitions on the event streams.

use std::time::{Duration, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::events::{hub, Transition};
use super::rows::{error, unknown_breaker, Row};
use super::Action;
use crate::redis::{FleetBreaker, RedisStorageError};
use crate::RedisStorage;

fn row(b: FleetBreaker) -> Row {
    Row {
        state: b.state_text(),
        fail_counter: b.fail_counter,
        fail_max: b.settings.map(|s| s.fail_max),
        success_counter: b.success_counter,
        success_threshold: b.settings.map(|s| s.success_threshold),
        reset_timeout_ms: b.settings.map(|s| s.reset_timeout.as_millis() as u64),
        retry_after_ms: b.retry_after.map(|d| d.as_millis() as u64),
        opened_at_ms: b
            .opened_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64),
        window: None,
        processes: Some(b.processes),
        name: b.name,
        group: None,
        key: None,
    }
}

fn unreachable(e: &RedisStorageError) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("cannot read the fleet from Redis: {e}"),
    )
}

/// The fleet's breakers (with the shared state), then this process's
/// breakers that the fleet does not list.
pub(super) async fn rows(storage: RedisStorage, local: Vec<Row>) -> Result<Vec<Row>, Response> {
    let listed = tokio::task::spawn_blocking(move || storage.fleet().list())
        .await
        .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the fleet read failed"))?
        .map_err(|e| unreachable(&e))?;
    let mut rows: Vec<Row> = listed.into_iter().map(row).collect();
    let fleet_names: std::collections::HashSet<String> =
        rows.iter().map(|r| r.name.clone()).collect();
    // The fleet knows names only: a keyed breaker this process has keeps
    // its group and key.
    let keyed: std::collections::HashMap<&str, (&Option<String>, &Option<String>)> = local
        .iter()
        .filter(|r| r.group.is_some())
        .map(|r| (r.name.as_str(), (&r.group, &r.key)))
        .collect();
    for r in &mut rows {
        if let Some((group, key)) = keyed.get(r.name.as_str()) {
            r.group = (*group).clone();
            r.key = (*key).clone();
        }
    }
    drop(keyed);
    rows.extend(local.into_iter().filter(|r| !fleet_names.contains(&r.name)));
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// A manual transition of a breaker this process does not have, applied
/// to the fleet's shared state (404 if no live process uses it).
pub(super) async fn apply(storage: RedisStorage, name: String, action: Action) -> Response {
    let answer = tokio::task::spawn_blocking(move || {
        let fleet = storage.fleet();
        let known = fleet.list()?.into_iter().any(|b| b.name == name);
        if !known {
            return Ok(Err(name));
        }
        match action {
            Action::Open => fleet.open(&name),
            Action::Close => fleet.close(&name),
            Action::HalfOpen => fleet.half_open(&name),
            Action::Reset => fleet.reset(&name),
        }
        .map(|_| Ok(()))
    })
    .await;
    match answer {
        Ok(Ok(Ok(()))) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(Err(name))) => unknown_breaker(&name),
        Ok(Err(e)) => unreachable(&e),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the fleet transition failed",
        ),
    }
}

/// Forwards the namespace's transitions of breakers this process does not
/// have (its own tell their listeners, the hub among them) to the hub, on
/// a thread of its own that resubscribes when the subscription is lost.
pub(super) fn listen(storage: &RedisStorage) {
    let storage = storage.clone();
    let spawned = std::thread::Builder::new()
        .name("breaker-admin-fleet".into())
        .spawn(move || loop {
            if let Ok(events) = storage.fleet().watch() {
                for t in events {
                    if super::local(&t.name).is_some() {
                        continue;
                    }
                    hub().publish(Transition {
                        name: t.name,
                        from: t.from.to_string(),
                        to: t.to.to_string(),
                        at_ms: t
                            .at
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64),
                    });
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        });
    // Without the thread the list still works; only live fleet events are lost.
    drop(spawned);
}
