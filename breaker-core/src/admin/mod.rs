//! An admin endpoint for operations (feature `admin`): an [axum] router
//! serving the registry's breakers as JSON, manual transitions, the
//! transitions as server-sent events, Prometheus text and a live dashboard.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the dashboard: one self-contained page (no external assets), live through `/events` |
//! | `GET /breakers` | every breaker as JSON, `[{"name", "state", "fail_counter", "fail_max", "success_counter", "success_threshold", "reset_timeout_ms", "retry_after_ms", "opened_at_ms", "window"}]` (`"window"`: a rate policy's figures, or `null`; plus `"processes"` on a fleet) |
//! | `GET /breakers/{name}` | one of them; 404 `{"error": ..}` if unknown |
//! | `POST /breakers/{name}/open` (`close`, `half-open`, `reset`) | 204; 401 without the token (or a wrong or malformed one), 403 when no token is configured |
//! | `GET /events` | server-sent events, one per transition: `data: {"name","from","to","at_ms"}` |
//! | `GET /history` | `{"since_ms", "transitions": [..]}`: the last hour's transitions (at most 10,000), oldest first, and since when the router has listened |
//! | `GET /metrics` | Prometheus text: `breaker_calls_total`, `breaker_transitions_total`, `breaker_state` |
//!
//! **Keyed groups** ([`KeyedBreakers`](crate::keyed::KeyedBreakers)
//! registered with [`registry::register_keyed`],
//! or declared with `key = ..`) are listed too: each live key is a row named
//! `group[key]` (`http[host-a]`, the name its storage keeps it under), with
//! `"group"` and `"key"` fields, addressed percent-encoded
//! (`/breakers/http%5Bhost-a%5D/open`); the group's overflow breaker is the
//! row named by the group (`"group"` and no `"key"`). Their events carry
//! the same name, and `/metrics` labels them `breaker="http",key="host-a"`.
//! An evicted key leaves the list and `/metrics` with its breaker, so a
//! group adds at most `max_keys` rows and series. A key containing `/`
//! cannot be addressed (see below).
//!
//! Reads are open; changes need `Authorization: Bearer <token>` when a
//! token is configured ([`Admin::token`], compared in constant time), and
//! are refused (403) when none is. This endpoint can take a dependency
//! offline for a whole fleet: bind it to `127.0.0.1` or an internal port.
//!
//! The router hears every breaker of the registry: the first router made
//! attaches one listener to each breaker registered before, and to each
//! registered after as it is registered. That listener keeps the last
//! hour's transitions for the dashboard's timeline, sends each to the event
//! streams, and counts calls and transitions for `/metrics` from then on
//! (no `metrics` recorder needed; a call through a watched breaker pays one
//! listener dispatch).
//!
//! With `Admin::fleet` and a `RedisStorage` (feature `redis`), the
//! list also shows every breaker some live process of the namespace uses
//! (the shared state, `"processes"`), and manual transitions of those apply
//! to the whole fleet through the storage's atomic script.
//!
//! Names are untrusted: JSON escapes them, an event's data is one line of
//! JSON, the dashboard shows them as text only. A path with a `..` segment
//! or a percent-encoded slash, backslash or dot is a 404, so a breaker whose
//! name holds `/` or `\` cannot be addressed here (list it, change it in code).
//!
//! ```no_run
//! use breaker::{admin, registry, CircuitBreaker};
//!
//! # async fn serve() -> std::io::Result<()> {
//! registry::register(CircuitBreaker::new("payments")).unwrap();
//! let app: axum::Router = admin::router().token("s3cret").into();
//! // An internal address: anyone who reaches it can read, and with the
//! // token change, every breaker.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

mod auth;
mod dashboard;
mod events;
#[cfg(feature = "redis")]
mod fleet;
mod prometheus;
mod rows;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State as Shared};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use crate::registry;
use events::hub;
use rows::{error, json, unknown_breaker, Row};

/// The admin router under construction: [`router`] makes one,
/// [`token`](Admin::token) allows changes, `fleet` (feature `redis`) adds a
/// Redis fleet; `.into()` (or [`build`](Admin::build)) gives the
/// [`axum::Router`].
///
/// ```
/// use breaker::admin;
///
/// let read_only: axum::Router = admin::router().into();
/// let with_changes = admin::router().token("s3cret").build();
/// # let _ = (read_only, with_changes);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "an admin router does nothing until it is served"]
pub struct Admin {
    token: Option<String>,
    #[cfg(feature = "redis")]
    fleet: Option<crate::RedisStorage>,
}

/// The admin router for this process's registry: reads open, changes
/// refused until a [`token`](Admin::token) is set.
///
/// ```
/// let app: axum::Router = breaker::admin::router().into();
/// # let _ = app;
/// ```
pub fn router() -> Admin {
    Admin::default()
}

impl Admin {
    /// Allows manual transitions to requests that carry
    /// `Authorization: Bearer <token>` (compared in constant time). An
    /// empty token matches nothing.
    ///
    /// ```
    /// let app = breaker::admin::router().token(std::env::var("ADMIN_TOKEN").unwrap_or_default());
    /// # let _ = app;
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Adds the breakers of `storage`'s namespace on Redis: the list shows
    /// every breaker some live process uses, with the shared state and the
    /// number of processes; transitions of those apply fleet-wide; their
    /// transitions reach `/events` and the dashboard (from a thread this
    /// starts, subscribed to the namespace: give a storage once per process).
    ///
    /// ```no_run
    /// use breaker::{admin, RedisStorage};
    ///
    /// let redis = RedisStorage::builder("redis://127.0.0.1:6379/").namespace("checkout").build()?;
    /// let app: axum::Router = admin::router().token("s3cret").fleet(redis).into();
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn fleet(mut self, storage: crate::RedisStorage) -> Self {
        fleet::listen(&storage);
        self.fleet = Some(storage);
        self
    }

    /// The [`axum::Router`]; nest it anywhere (`Router::new().nest("/admin", ..)`).
    ///
    /// ```
    /// let app = axum::Router::new().nest("/admin", breaker::admin::router().build());
    /// # let _ = app;
    /// ```
    pub fn build(self) -> Router {
        hub();
        let shared = Arc::new(self);
        Router::new()
            .route("/", get(dashboard::page))
            .route("/breakers", get(list))
            .route("/breakers/{name}", get(detail))
            .route("/breakers/{name}/{action}", post(apply))
            .route("/events", get(events))
            .route("/history", get(history))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn(plain_paths))
            .with_state(shared)
    }
}

impl From<Admin> for Router {
    fn from(admin: Admin) -> Router {
        admin.build()
    }
}

type State = Arc<Admin>;

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

/// A path with a `..` or `.` segment, or a percent-encoded slash,
/// backslash or dot, is a 404 before any route sees it.
async fn plain_paths(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let lower = path.to_ascii_lowercase();
    let sneaky = ["%2f", "%5c", "%2e", "\\"]
        .iter()
        .any(|s| lower.contains(s))
        || path
            .split('/')
            .any(|segment| segment == ".." || segment == ".");
    if sneaky {
        return error(StatusCode::NOT_FOUND, "no such route");
    }
    next.run(request).await
}

/// Every breaker of this process: the registry's, then each registered
/// keyed group's (its overflow breaker under the group's name, then a row
/// per live key, `group[key]`), sorted by name.
fn local_rows() -> Vec<Row> {
    let mut rows: Vec<Row> = registry::names()
        .into_iter()
        .filter_map(|name| registry::try_get(&name))
        .map(|cb| Row::of(&cb))
        .collect();
    registry::visit_groups(&mut |group, cb| {
        let mut row = Row::of(cb);
        row.group = Some(group.to_owned());
        rows.push(row);
    });
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// The breaker of this process named `name`: a registered one, a keyed
/// group's overflow breaker by the group's name, or a live key's breaker
/// as `group[key]`.
pub(crate) fn local(name: &str) -> Option<Arc<crate::CircuitBreaker>> {
    registry::try_get(name).or_else(|| registry::find_keyed(name))
}

async fn rows(admin: &Admin) -> Result<Vec<Row>, Response> {
    let local = local_rows();
    #[cfg(feature = "redis")]
    if let Some(storage) = &admin.fleet {
        return fleet::rows(storage.clone(), local).await;
    }
    let _ = admin;
    Ok(local)
}

async fn list(Shared(admin): Shared<State>) -> Response {
    match rows(&admin).await {
        Ok(rows) => json(StatusCode::OK, &rows),
        Err(response) => response,
    }
}

async fn detail(Shared(admin): Shared<State>, Path(name): Path<String>) -> Response {
    if let Some(cb) = local(&name) {
        let mut row = Row::of(&cb);
        if cb.key().is_none() && registry::keys(&name).is_some() {
            row.group = Some(name); // a group's overflow breaker
        }
        return json(StatusCode::OK, &row);
    }
    match rows(&admin).await {
        Ok(rows) => match rows.into_iter().find(|r| r.name == name) {
            Some(row) => json(StatusCode::OK, &row),
            None => unknown_breaker(&name),
        },
        Err(response) => response,
    }
}

/// A manual transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Open,
    Close,
    HalfOpen,
    Reset,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "open" => Action::Open,
            "close" => Action::Close,
            "half-open" => Action::HalfOpen,
            "reset" => Action::Reset,
            _ => return None,
        })
    }
}

async fn apply(
    Shared(admin): Shared<State>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("unknown action '{action}', valid actions: open, close, half-open, reset"),
        );
    };
    if let Err(refusal) = auth::check(admin.token.as_deref(), &headers) {
        return error(refusal.status(), refusal.message());
    }
    if let Some(cb) = local(&name) {
        match action {
            Action::Open => cb.open(),
            Action::Close => cb.close(),
            Action::HalfOpen => cb.half_open(),
            Action::Reset => cb.reset(),
        }
        return StatusCode::NO_CONTENT.into_response();
    }
    #[cfg(feature = "redis")]
    if let Some(storage) = &admin.fleet {
        return fleet::apply(storage.clone(), name, action).await;
    }
    unknown_breaker(&name)
}

async fn history() -> Response {
    json(StatusCode::OK, &hub().history())
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus::render(),
    )
        .into_response()
}

/// Every transition from now on; a stream that fell behind is sent a
/// `lagged` event (the dashboard reloads the list on it).
async fn events() -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = hub().subscribe();
    let stream = stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(t) => Event::default().data(serde_json::to_string(&t).unwrap_or_default()),
            Err(RecvError::Lagged(missed)) => Event::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
