//! `#[circuit_breaker(key = ..)]`: one breaker per value of the key
//! expression, evaluated per call before the body.

use breaker::{circuit_breaker, registry, CircuitBreakerError, State};

#[derive(Debug, PartialEq)]
enum HttpError {
    Down,
    Breaker(CircuitBreakerError),
}

impl From<CircuitBreakerError> for HttpError {
    fn from(e: CircuitBreakerError) -> Self {
        HttpError::Breaker(e)
    }
}

fn is_open(result: &Result<(), HttpError>) -> bool {
    matches!(result, Err(HttpError::Breaker(e)) if e.state() == State::Open)
}

#[circuit_breaker(name = "keyed-str", fail_max = 2, key = host)]
fn by_str(host: &str, up: bool) -> Result<(), HttpError> {
    if up {
        Ok(())
    } else {
        Err(HttpError::Down)
    }
}

#[circuit_breaker(name = "keyed-string", fail_max = 1, key = tenant)]
fn by_string(tenant: String, up: bool) -> Result<(), HttpError> {
    // The body moves the argument the key read: the key was evaluated first.
    drop(tenant);
    if up {
        Ok(())
    } else {
        Err(HttpError::Down)
    }
}

#[circuit_breaker(name = "keyed-int", fail_max = 1, key = shard)]
fn by_int(shard: u32, up: bool) -> Result<(), HttpError> {
    if up {
        Ok(())
    } else {
        Err(HttpError::Down)
    }
}

#[circuit_breaker(name = "keyed-tuple", fail_max = 1, key = (region, port), max_keys = 100, idle_timeout = "10m")]
fn by_tuple(region: &str, port: u16, up: bool) -> Result<(), HttpError> {
    if up {
        Ok(())
    } else {
        Err(HttpError::Down)
    }
}

#[circuit_breaker(name = "keyed-async", fail_max = 1, key = url.split('/').nth(2))]
async fn fetch(url: String, up: bool) -> Result<String, HttpError> {
    if up {
        Ok(url)
    } else {
        Err(HttpError::Down)
    }
}

#[test]
fn declared_groups_are_in_the_registry_before_their_first_call() {
    assert_eq!(registry::keys("keyed-tuple"), Some(vec![]));
    assert!(registry::groups().contains(&"keyed-str".to_owned()));
    assert!(registry::try_get("keyed-str").is_none()); // a group, not one breaker
}

#[test]
fn a_str_key_gives_each_host_its_breaker() {
    let _ = by_str("down.example", false);
    let _ = by_str("down.example", false);
    assert!(is_open(&by_str("down.example", true)));
    assert_eq!(by_str("up.example", true), Ok(()));
    let open = registry::get_key("keyed-str", "down.example").unwrap();
    assert_eq!(
        (open.name(), open.key()),
        ("keyed-str", Some("down.example"))
    );
    assert_eq!(open.current_state(), State::Open);
}

#[test]
fn a_string_key_is_read_before_the_body_moves_it() {
    let _ = by_string("acme".to_owned(), false);
    assert!(is_open(&by_string("acme".to_owned(), true)));
    assert_eq!(by_string("globex".to_owned(), true), Ok(()));
}

#[test]
fn integer_and_tuple_keys() {
    let _ = by_int(7, false);
    assert!(is_open(&by_int(7, true)));
    assert_eq!(by_int(8, true), Ok(()));
    let _ = by_tuple("eu", 443, false);
    assert!(is_open(&by_tuple("eu", 443, true)));
    assert_eq!(by_tuple("eu", 80, true), Ok(()));
    assert_eq!(registry::keys("keyed-tuple").unwrap(), ["eu,443", "eu,80"]);
}

#[tokio::test]
async fn an_async_fn_keys_its_calls_and_stays_send() {
    let _ = fetch("https://down.example/a".to_owned(), false).await;
    let rejected = fetch("https://down.example/b".to_owned(), true).await;
    assert!(matches!(rejected, Err(HttpError::Breaker(_))));
    let spawned = tokio::spawn(fetch("https://up.example/".to_owned(), true));
    assert!(spawned.await.unwrap().is_ok());
    assert_eq!(
        registry::keys("keyed-async").unwrap(),
        ["down.example", "up.example"]
    );
}

#[circuit_breaker(name = "keyed-mixed", key = id)]
fn mixed_keyed(id: u32) -> Result<u32, HttpError> {
    Ok(id)
}

#[circuit_breaker(name = "keyed-mixed")]
fn mixed_plain(id: u32) -> Result<u32, HttpError> {
    Ok(id)
}

#[test]
fn a_name_declared_with_and_without_key_fails_its_group_alone() {
    assert_eq!(mixed_plain(1), Ok(1)); // the plain breaker works
    let panic = std::panic::catch_unwind(|| mixed_keyed(1)).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(breaker::registry::declaration_errors()
        .iter()
        .any(|e| e.to_string() == *message));
    assert!(
        message.contains(
            "is declared with `key` on keyed::mixed_keyed but without on keyed::mixed_plain"
        ),
        "{message}"
    );
}

// ---- iterators and streams ----

#[circuit_breaker(name = "keyed-iter", fail_max = 1, key = host)]
fn lines(host: &str, up: bool) -> impl Iterator<Item = Result<u32, HttpError>> {
    let failing = !up;
    (0..3).map(move |i| {
        if failing && i == 1 {
            Err(HttpError::Down)
        } else {
            Ok(i)
        }
    })
}

#[circuit_breaker(name = "keyed-iter-owned", fail_max = 1, key = tenant.as_str(), max_keys = 1)]
fn tenant_lines(
    tenant: String,
) -> Result<impl Iterator<Item = Result<String, HttpError>>, HttpError> {
    // The body moves the argument the key borrowed: the key was read first.
    Ok(std::iter::once(Ok(tenant)))
}

#[test]
fn an_iterator_is_one_call_on_its_keys_breaker() {
    let failed: Vec<_> = lines("down.example", false).collect();
    // The failing item trips the key's breaker (`throw_new_error_on_trip`).
    assert_eq!(failed[0], Ok(0));
    assert!(matches!(failed[1], Err(HttpError::Breaker(ref e)) if e.state() == State::Open));
    // The failing item opened the key's breaker: the next iteration is refused.
    let refused: Vec<_> = lines("down.example", true).collect();
    assert!(matches!(refused[..], [Err(HttpError::Breaker(ref e))] if e.state() == State::Open));
    // Another key has its own breaker.
    let up: Vec<_> = lines("up.example", true).collect();
    assert_eq!(up, [Ok(0), Ok(1), Ok(2)]);
    assert_eq!(
        registry::keys("keyed-iter").unwrap(),
        ["down.example", "up.example"]
    );
}

#[test]
fn a_running_iterator_keeps_its_key_from_eviction() {
    let held = tenant_lines("acme".to_owned()).unwrap();
    // max_keys = 1 and "acme" is held by the running iterator: a new key
    // is served by the overflow breaker instead of evicting it.
    let other: Vec<_> = tenant_lines("globex".to_owned()).unwrap().collect();
    assert!(matches!(other[..], [Ok(ref t)] if t == "globex"));
    assert_eq!(registry::keys("keyed-iter-owned").unwrap(), ["acme"]);
    assert_eq!(held.collect::<Vec<_>>().len(), 1);
    // Finished and dropped: "acme" is idle again, so a new key evicts it.
    let _ = tenant_lines("initech".to_owned()).unwrap().count();
    assert_eq!(registry::keys("keyed-iter-owned").unwrap(), ["initech"]);
}

struct Items(Vec<Result<u32, HttpError>>);

impl futures_core::Stream for Items {
    type Item = Result<u32, HttpError>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = (!self.0.is_empty()).then(|| self.0.remove(0));
        std::task::Poll::Ready(next)
    }
}

#[circuit_breaker(name = "keyed-stream", fail_max = 1, key = (region, shard))]
fn shard_items(
    region: &str,
    shard: u16,
    up: bool,
) -> impl futures_core::Stream<Item = Result<u32, HttpError>> + Unpin {
    let _ = region;
    Items(if up {
        vec![Ok(u32::from(shard))]
    } else {
        vec![Err(HttpError::Down)]
    })
}

fn drain<S: futures_core::Stream + Unpin>(mut s: S) -> Vec<S::Item> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut out = Vec::new();
    while let std::task::Poll::Ready(Some(item)) = std::pin::Pin::new(&mut s).poll_next(&mut cx) {
        out.push(item);
    }
    out
}

#[test]
fn a_stream_is_one_call_on_its_keys_breaker() {
    let tripped = drain(shard_items("eu", 1, false));
    assert!(matches!(tripped[..], [Err(HttpError::Breaker(ref e))] if e.state() == State::Open));
    let refused = drain(shard_items("eu", 1, true));
    assert!(matches!(refused[..], [Err(HttpError::Breaker(ref e))] if e.state() == State::Open));
    assert_eq!(drain(shard_items("eu", 2, true)), [Ok(2)]);
    assert_eq!(registry::keys("keyed-stream").unwrap(), ["eu,1", "eu,2"]);
}
