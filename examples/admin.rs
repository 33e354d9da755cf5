//! The admin endpoint and its dashboard, with a few breakers tripping and
//! recovering so the page has something to show.
//!
//! ```sh
//! ADMIN_TOKEN=s3cret cargo run --example admin --features admin
//! # then open http://127.0.0.1:9090/ (the token in the page's token box enables the buttons)
//! curl http://127.0.0.1:9090/breakers
//! curl -X POST -H 'Authorization: Bearer s3cret' http://127.0.0.1:9090/breakers/payments/close
//! ```
//!
//! It binds 127.0.0.1 on purpose: whoever reaches this port reads every
//! breaker and, with the token, can open one, which takes a dependency
//! offline. In production bind it to loopback or an internal port that only
//! operators reach (set `ADMIN_ADDR` to change it here), and put the token
//! in a secret. Without `ADMIN_TOKEN`, the endpoint is read-only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use breaker::{admin, registry, CircuitBreaker};

fn breaker(name: &'static str, fail_max: u32, reset: u64) {
    registry::register(
        CircuitBreaker::builder(name)
            .fail_max(fail_max)
            .reset_timeout(Duration::from_secs(reset))
            .build(),
    )
    .expect("names are unique");
}

/// Calls each breaker's "dependency" a few times a second; some of them
/// fail in bursts, so their breakers trip, wait, and recover.
async fn traffic() {
    let tick = AtomicU64::new(0);
    loop {
        let t = tick.fetch_add(1, Ordering::Relaxed);
        for (name, failing) in [
            ("payments", t % 60 < 20),          // fails a third of the time, in bursts
            ("inventory", t.is_multiple_of(7)), // a failure now and then: never trips
            ("recommendations", t % 90 < 60),   // mostly down
            ("search", false),                  // healthy
            ("shipping-quotes", t % 40 < 5),    // short outages
        ] {
            let cb = registry::get(name);
            let _ = cb.call(|| {
                if failing {
                    Err("dependency failed")
                } else {
                    Ok(())
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    breaker("payments", 5, 10);
    breaker("inventory", 5, 30);
    breaker("recommendations", 3, 15);
    breaker("search", 5, 60);
    breaker("shipping-quotes", 2, 5);

    let mut app = admin::router();
    if let Ok(token) = std::env::var("ADMIN_TOKEN") {
        app = app.token(token);
    }
    let addr = std::env::var("ADMIN_ADDR").unwrap_or_else(|_| "127.0.0.1:9090".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("admin endpoint on http://{addr}/ (Ctrl-C to stop)");
    tokio::spawn(traffic());
    axum::serve(listener, axum::Router::from(app)).await
}
