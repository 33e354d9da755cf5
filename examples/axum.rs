//! Breakers in an axum service, on both sides of an HTTP call:
//! `cargo run --example axum --features tower`.
//!
//! - `inventory` (the downstream) guards its own route with a breaker, as a
//!   route layer: while its database fails, the breaker opens and the route
//!   answers 503 with `Retry-After` without touching the database.
//! - `shop` (the front) calls the inventory through a hyper client wrapped
//!   in a tower `ServiceBuilder` with a `CircuitBreakerLayer`: 5xx answers
//!   count as failures, and while its breaker is open it answers 503 with
//!   `Retry-After` at once, without calling the inventory.
//!
//! Both listen on 127.0.0.1, on ports the OS chooses. `tests/axum_example.rs`
//! runs them in-process and checks every step that `main` prints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use breaker::tower::{server_error, CircuitBreakerLayer, CircuitBreakerService};
use breaker::{CircuitBreaker, CircuitBreakerError, Error};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};

/// 503 with `Retry-After` in whole seconds, rounded up (at least 1).
pub fn unavailable(e: &CircuitBreakerError) -> Response {
    let retry = e.retry_after().unwrap_or(Duration::from_secs(1));
    let secs = (retry.as_secs() + u64::from(retry.subsec_nanos() > 0)).max(1);
    let headers = [(RETRY_AFTER, secs.to_string())];
    (StatusCode::SERVICE_UNAVAILABLE, headers, e.to_string()).into_response()
}

/// The inventory's database, as far as this example goes: up or down, and
/// how many queries reached it.
#[derive(Default)]
pub struct Database {
    pub down: AtomicBool,
    pub queries: AtomicU64,
}

async fn stock(State(db): State<Arc<Database>>) -> Response {
    db.queries.fetch_add(1, Ordering::SeqCst);
    match db.down.load(Ordering::SeqCst) {
        true => (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response(),
        false => (StatusCode::OK, "12 in stock").into_response(),
    }
}

/// The downstream: `GET /stock`, guarded server-side by `cb`.
pub fn inventory(db: Arc<Database>, cb: Arc<CircuitBreaker>) -> Router {
    let guard = ServiceBuilder::new()
        // The breaker's error becomes a response: axum routes cannot fail.
        .layer(HandleErrorLayer::new(|e: Error<Infallible>| async move {
            match e {
                Error::Open(e) => unavailable(&e),
                Error::Inner(never) | Error::Tripped(_, never) => match never {},
            }
        }))
        .layer(CircuitBreakerLayer::new(cb).fail_if(server_error::<Body>));
    Router::new()
        .route("/stock", get(stock))
        .route_layer(guard)
        .with_state(db)
}

/// The client side: a hyper client behind a breaker that counts 5xx
/// answers as failures.
pub type Downstream =
    CircuitBreakerService<Client<HttpConnector, Body>, fn(&axum::http::Response<Incoming>) -> bool>;

#[derive(Clone)]
struct Shop {
    inventory: Downstream,
    url: String,
}

async fn buy(State(shop): State<Shop>) -> Response {
    let request = Request::get(format!("{}/stock", shop.url))
        .body(Body::empty())
        .expect("a valid request");
    match shop.inventory.oneshot(request).await {
        Ok(answer) if answer.status().is_success() => (StatusCode::OK, "bought").into_response(),
        // The inventory's own breaker is open: pass its 503 on, with its
        // Retry-After.
        Ok(answer) if answer.status() == StatusCode::SERVICE_UNAVAILABLE => {
            let mut response =
                (StatusCode::SERVICE_UNAVAILABLE, "inventory unavailable").into_response();
            if let Some(retry) = answer.headers().get(RETRY_AFTER) {
                response.headers_mut().insert(RETRY_AFTER, retry.clone());
            }
            response
        }
        Ok(answer) => (
            StatusCode::BAD_GATEWAY,
            format!("inventory answered {}", answer.status()),
        )
            .into_response(),
        Err(Error::Open(e)) => unavailable(&e),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The front: `GET /buy` asks the inventory at `url` through `cb`.
pub fn shop(url: String, cb: Arc<CircuitBreaker>) -> Router {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let fail_if: fn(&axum::http::Response<Incoming>) -> bool = server_error::<Incoming>;
    let inventory = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(cb).fail_if(fail_if))
        .service(client);
    Router::new()
        .route("/buy", get(buy))
        .with_state(Shop { inventory, url })
}

/// Serves `router` on 127.0.0.1, on a port the OS chooses.
pub async fn serve(router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

/// `GET url`: the status, the `Retry-After` header, and the body.
pub async fn get_text(url: &str) -> (StatusCode, Option<String>, String) {
    use http_body_util::BodyExt;
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let request = Request::get(url)
        .body(Body::empty())
        .expect("a valid request");
    let response = client.request(request).await.expect("the server answers");
    let status = response.status();
    let retry = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, retry, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let db = Arc::new(Database::default());
    let inventory_breaker = CircuitBreaker::builder("inventory-db")
        .fail_max(2)
        .reset_timeout(Duration::from_secs(30))
        .build();
    let shop_breaker = CircuitBreaker::builder("inventory-client")
        .fail_max(3)
        .reset_timeout(Duration::from_secs(10))
        .build();
    let inventory_addr = serve(inventory(Arc::clone(&db), Arc::new(inventory_breaker))).await?;
    let shop_addr = serve(shop(
        format!("http://{inventory_addr}"),
        Arc::new(shop_breaker),
    ))
    .await?;
    let buy = format!("http://{shop_addr}/buy");
    println!("inventory on {inventory_addr}, shop on {shop_addr}");

    println!("GET /buy -> {:?}", get_text(&buy).await);
    db.down.store(true, Ordering::SeqCst);
    println!("the inventory's database goes down");
    for _ in 0..5 {
        println!("GET /buy -> {:?}", get_text(&buy).await);
    }
    println!(
        "the database saw {} queries",
        db.queries.load(Ordering::SeqCst)
    );
    Ok(())
}
