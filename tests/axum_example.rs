//! `examples/axum.rs` run in-process: a real inventory server guarded by a
//! route layer and a real shop server calling it through a hyper client
//! behind `CircuitBreakerLayer`, both on 127.0.0.1 with ports from the OS.
//! Time is a `ManualClock`: nothing sleeps.
#![cfg(feature = "tower")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use breaker::clock::ManualClock;
use breaker::{listener, CircuitBreaker, State};

#[allow(dead_code)] // its `main` is the example's
#[path = "../examples/axum.rs"]
mod example;

use example::{get_text, inventory, serve, shop, Database};

fn breaker(
    name: &'static str,
    fail_max: u32,
    secs: u64,
    clock: &ManualClock,
) -> Arc<CircuitBreaker> {
    Arc::new(
        CircuitBreaker::builder(name)
            .fail_max(fail_max)
            .reset_timeout(Duration::from_secs(secs))
            .clock(clock.clone())
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_open_answer_503_with_retry_after_and_recover() {
    let clock = ManualClock::new();
    let db = Arc::new(Database::default());
    let server_side = breaker("axum-inventory", 2, 30, &clock);
    // Requests that reach the inventory and its breaker turns away.
    let turned_away = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&turned_away);
    server_side.add_listener(Arc::new(listener::on_rejected(move |_, _| {
        count.fetch_add(1, Ordering::SeqCst);
    })));
    let client_side = breaker("axum-shop", 3, 10, &clock);
    let inventory_addr = serve(inventory(Arc::clone(&db), Arc::clone(&server_side)))
        .await
        .unwrap();
    let shop_addr = serve(shop(
        format!("http://{inventory_addr}"),
        Arc::clone(&client_side),
    ))
    .await
    .unwrap();
    assert!(inventory_addr.ip().is_loopback() && shop_addr.ip().is_loopback());
    let buy = format!("http://{shop_addr}/buy");
    let stock = format!("http://{inventory_addr}/stock");

    assert_eq!(
        get_text(&buy).await,
        (StatusCode::OK, None, "bought".into())
    );

    db.down.store(true, Ordering::SeqCst);
    // Two 500s: the inventory's breaker opens; the shop counts two failures.
    for _ in 0..2 {
        let (status, retry, _) = get_text(&buy).await;
        assert_eq!((status, retry), (StatusCode::BAD_GATEWAY, None));
    }
    assert_eq!(server_side.current_state(), State::Open);
    assert_eq!(client_side.fail_counter(), 2);

    // The inventory answers 503 itself, without a query; a 5xx to the shop,
    // whose breaker opens on it.
    let (status, retry, _) = get_text(&stock).await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("30"))
    );
    let (status, retry, _) = get_text(&buy).await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("30"))
    );
    assert_eq!(client_side.current_state(), State::Open);
    assert_eq!(db.queries.load(Ordering::SeqCst), 3);
    assert_eq!(turned_away.load(Ordering::SeqCst), 2);

    // The shop's breaker is open: it answers at once, calling nobody.
    clock.advance(Duration::from_secs(4));
    let (status, retry, body) = get_text(&buy).await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("6"))
    );
    assert!(body.contains("'axum-shop' is open"), "{body}");
    assert_eq!(
        turned_away.load(Ordering::SeqCst),
        2,
        "the inventory was not called"
    );

    // Both timeouts pass, the database is back: one trial on each side
    // closes both.
    db.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        get_text(&buy).await,
        (StatusCode::OK, None, "bought".into())
    );
    assert_eq!(server_side.current_state(), State::Closed);
    assert_eq!(client_side.current_state(), State::Closed);
    assert_eq!(db.queries.load(Ordering::SeqCst), 4);
}
