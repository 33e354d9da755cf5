//! The dashboard in a real browser: headless Chromium (Debian's package,
//! installed by `scripts/test`) driven over the DevTools protocol. It loads
//! the page from an admin server on 127.0.0.1, sees a breaker trip through
//! the event stream, closes it with the token by clicking the button,
//! checks that an HTML-looking name shows as text, follows the stream
//! across a server restart, and saves a screenshot to
//! `target/tmp/dashboard.png`.
//!
//! Without Chromium the test prints why and passes, except under `CI=true`,
//! where it fails.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use breaker::keyed::KeyedBreakers;
use breaker::{admin, registry, CircuitBreaker, State};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

const TOKEN: &str = "dashboard-t0ken";
const XSS: &str = "<img src=x onerror=alert(1)>";

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// The admin server, on a thread and runtime of its own so that stopping it
/// drops every connection (the event streams included), as a crash would.
struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Server {
    fn start(addr: &str) -> Server {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let addr = addr.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // tokio's listener sets SO_REUSEADDR: a restart rebinds the port.
                let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                let app: axum::Router = admin::router().token(TOKEN).into();
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here drops every connection.
        });
        Server {
            addr: bound.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(self) -> std::net::SocketAddr {
        self.addr // dropping it stops it
    }
}

/// Chromium with a DevTools session on one page.
struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch(binary: &Path, profile: &Path) -> Browser {
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1360,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium prints its DevTools address");
        let host = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .to_owned();
        let stream = TcpStream::connect(&host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        let mut browser = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
        };
        let target = browser.send("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser.send(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.send("Page.enable", json!({}));
        browser
    }

    /// Sends a command (to the page once attached) and waits for its result.
    fn send(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::Text(message.to_string().into()))
            .unwrap();
        loop {
            let Message::Text(text) = self.ws.read().expect("DevTools answers") else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.send(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits (at most 30 s) until `expression` is true in the page: the
    /// page polls it, so this side only waits for the answer.
    fn wait_for(&mut self, what: &str, expression: &str) {
        let waited = self.eval(&format!(
            "new Promise(resolve => {{ const until = Date.now() + 30000; \
             const check = () => {{ let ok = false; try {{ ok = ({expression}) === true; }} catch (e) {{}} \
             if (ok) resolve(true); else if (Date.now() > until) resolve(false); else setTimeout(check, 50); }}; check(); }})"
        ));
        if waited != json!(true) {
            let cards = self.eval("[...document.querySelectorAll('.card')].map(c => c.dataset.name + ':' + c.className).join(', ')");
            panic!("timed out waiting until {what}; cards: {cards}");
        }
    }

    /// A real mouse click in the middle of the element `selector` finds,
    /// once it has stayed in the same place for 50 ms and nothing covers
    /// its middle (the cards move as their states change: a click taken
    /// in the middle of a re-sort would land on another card).
    fn click(&mut self, selector: &str) {
        let rect = self.eval(&format!(
            "new Promise(resolve => {{ const until = Date.now() + 30000; let last = null; \
             const check = () => {{ const e = document.querySelector({0}); let at = null; \
             if (e) {{ const r = e.getBoundingClientRect(); at = [r.x + r.width / 2, r.y + r.height / 2]; \
             const top = document.elementFromPoint(at[0], at[1]); if (!top || !e.contains(top)) at = null; }} \
             if (at && last && at[0] === last[0] && at[1] === last[1]) resolve(at); \
             else if (Date.now() > until) resolve(null); else {{ last = at; setTimeout(check, 50); }} }}; check(); }})",
            json!(selector)
        ));
        assert!(rect.is_array(), "{selector} never stood still in view");
        let (x, y) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.send(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    fn screenshot(&mut self, path: &Path) {
        let shot = self.send("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }
}

/// Standard base64 (what DevTools sends screenshots in).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, &d) in chunk.iter().enumerate() {
            n |= u32::from(d) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn card(name: &str) -> String {
    format!(
        "[...document.querySelectorAll('.card')].find(c => c.dataset.name === {})",
        json!(name)
    )
}

fn register(name: &str, fail_max: u32, reset: u64) -> Arc<CircuitBreaker> {
    registry::register(
        CircuitBreaker::builder(name.to_owned())
            .fail_max(fail_max)
            .reset_timeout(Duration::from_secs(reset))
            .build(),
    )
    .unwrap()
}

fn trip(cb: &CircuitBreaker) {
    while cb.current_state() != State::Open {
        let _ = cb.call(|| Err::<(), _>("dependency failed"));
    }
}

#[test]
fn the_dashboard_shows_breakers_live_in_a_real_browser() {
    let Some(binary) = chromium() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true but no chromium on PATH: scripts/test installs Debian's `chromium`"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium, or run scripts/test)");
        return;
    };
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let profile = tmp.join(format!("dashboard-chromium-{}", std::process::id()));

    // Something to show: open, half-open and closed breakers, failures on
    // the way to their threshold, and a name that looks like HTML.
    let payments = register("payments", 5, 60);
    let inventory = register("inventory", 5, 30);
    let _ = inventory.call(|| Err::<(), _>("timeout"));
    let _ = inventory.call(|| Err::<(), _>("timeout"));
    let search = register("search", 3, 60);
    let recommendations = register("recommendations", 3, 120);
    trip(&recommendations);
    let quotes = register("shipping-quotes", 2, 15);
    trip(&quotes);
    quotes.half_open();
    register(XSS, 5, 60);
    for name in ["accounts", "ledger", "notifications", "profile-images"] {
        register(name, 5, 60);
    }
    let _ = search;

    let server = Server::start("127.0.0.1:0");
    let url = format!("http://{}/", server.addr);
    let mut browser = Browser::launch(&binary, &profile);
    browser.send("Page.navigate", json!({ "url": url }));
    browser.wait_for(
        "every card is shown and the stream is live",
        "document.querySelectorAll('.card').length === 10 && document.getElementById('live').textContent === 'live'",
    );

    // Open ones first, then half-open, then closed by name.
    let order = browser.eval("[...document.querySelectorAll('.card')].map(c => c.dataset.name)");
    assert_eq!(order[0], "recommendations");
    assert_eq!(order[1], "shipping-quotes");
    assert_eq!(
        browser.eval(&format!(
            "{}.querySelector('.failures').textContent",
            card("inventory")
        )),
        "2 / 5"
    );
    assert_eq!(
        browser.eval(&format!(
            "{}.querySelector('.countdown').textContent.startsWith('next trial in')",
            card("recommendations")
        )),
        json!(true)
    );

    // The HTML-looking name is text: no element was made from it.
    assert_eq!(
        browser.eval(&format!("{}.querySelector('.name').textContent", card(XSS))),
        XSS
    );
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), 0);

    // A trip in this process reaches the page through the event stream.
    let heard = browser
        .eval("Number(document.body.dataset.heard || 0)")
        .as_u64()
        .unwrap();
    trip(&payments);
    browser.wait_for(
        "payments turns open through the event stream",
        &format!(
            "{}.className === 'card open' && Number(document.body.dataset.heard || 0) > {heard}",
            card("payments")
        ),
    );

    // Search narrows the cards.
    browser.eval("(() => { const s = document.getElementById('search'); s.value = 'pay'; s.dispatchEvent(new Event('input')); })()");
    assert_eq!(browser.eval("document.querySelectorAll('.card').length"), 1);
    browser.eval("(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); })()");

    // Close it with the token: type it, click the card's button.
    browser.click("#token");
    browser.send("Input.insertText", json!({ "text": TOKEN }));
    browser.click(&format!(
        "[data-name={}] button[data-action=close]",
        json!("payments")
    ));
    browser.wait_for(
        "payments shows closed",
        &format!("{}.className === 'card closed'", card("payments")),
    );
    assert_eq!(payments.current_state(), State::Closed);
    // The answer to the click may come after the event that shows it: wait
    // for it, so it cannot overwrite the refusal below.
    browser.wait_for(
        "the close is answered",
        "document.getElementById('message').textContent === 'close payments: done'",
    );

    // A wrong token is refused and said so.
    browser.eval("(() => { const t = document.getElementById('token'); t.value = 'wrong'; t.dispatchEvent(new Event('input')); })()");
    browser.click(&format!(
        "[data-name={}] button[data-action=open]",
        json!("payments")
    ));
    browser.wait_for(
        "the refusal is shown",
        "document.getElementById('message').textContent.includes('401')",
    );
    assert_eq!(payments.current_state(), State::Closed);
    browser.eval("(() => { const t = document.getElementById('token'); t.value = ''; t.dispatchEvent(new Event('input')); })()");
    browser.eval("document.getElementById('message').textContent = ''");

    // The server restarts: the page says so, reconnects by itself, and
    // follows transitions again.
    let addr = server.stop();
    browser.wait_for(
        "the page notices the server is gone",
        "document.getElementById('live').textContent === 'reconnecting'",
    );
    let server = Server::start(&addr.to_string());
    browser.wait_for(
        "the page is live again",
        "document.getElementById('live').textContent === 'live'",
    );
    trip(&payments);
    browser.wait_for(
        "payments turns open after the restart",
        &format!("{}.className === 'card open'", card("payments")),
    );

    // Its timeline has all three transitions (the history read at the
    // reconnection, plus the event).
    browser.wait_for(
        "payments' timeline counts three transitions",
        &format!(
            "{}.querySelector('.heard-count').textContent === '3 transitions in the last hour'",
            card("payments")
        ),
    );

    // The picture: every state, failures, a countdown, timelines.
    let shot = tmp.join("dashboard.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    // 500 breakers: the page picks them up (its periodic reload), keeps the
    // open ones first, and the search finds one.
    for i in 0..490 {
        let cb = register(&format!("bulk-{i:03}"), 5, 60);
        if i == 250 {
            cb.open();
        }
    }
    browser.wait_for(
        "500 cards",
        "document.querySelectorAll('.card').length === 500",
    );
    let first = browser
        .eval("[...document.querySelectorAll('.card')].slice(0, 3).map(c => c.dataset.name)");
    assert_eq!(first, json!(["bulk-250", "payments", "recommendations"]));
    browser.eval("(() => { const s = document.getElementById('search'); s.value = 'bulk-04'; s.dispatchEvent(new Event('input')); })()");
    assert_eq!(
        browser.eval("document.querySelectorAll('.card').length"),
        10
    );
    assert_eq!(
        browser.eval("document.getElementById('shown').textContent"),
        "10 of 500 breakers"
    );
    browser.eval("(() => { const f = document.getElementById('filter'); f.value = 'open'; document.getElementById('search').value = ''; f.dispatchEvent(new Event('change')); })()");
    assert_eq!(browser.eval("document.querySelectorAll('.card').length"), 3);

    // A keyed group: one section, a card per key (the overflow breaker
    // too), the key as the card's title, open keys first.
    let hosts = KeyedBreakers::<String>::builder("http-hosts", |b| {
        b.fail_max(2).reset_timeout(Duration::from_secs(60))
    })
    .build();
    registry::register_keyed(&hosts).unwrap();
    for _ in 0..2 {
        let _ = hosts.get("host-a").call(|| Err::<(), _>("refused"));
    }
    let _ = hosts.get("host-b").call(|| Err::<(), _>("refused"));
    hosts.get("host-c").call(|| Ok::<_, &str>(())).unwrap();
    browser.eval("(() => { const f = document.getElementById('filter'); f.value = ''; const s = document.getElementById('search'); s.value = 'http-hosts'; f.dispatchEvent(new Event('change')); })()");
    browser.wait_for(
        "the group's section with its four cards",
        "document.querySelectorAll('.group').length === 1 && document.querySelectorAll('.group .card').length === 4",
    );
    assert_eq!(
        browser.eval("document.querySelector('.group .group-name').textContent"),
        "http-hosts"
    );
    let keys = browser.eval(
        "[...document.querySelectorAll('.group .card')].map(c => c.dataset.name + '=' + c.querySelector('.name').textContent)",
    );
    assert_eq!(
        keys,
        json!([
            "http-hosts[host-a]=host-a",
            "http-hosts=overflow",
            "http-hosts[host-b]=host-b",
            "http-hosts[host-c]=host-c"
        ])
    );
    // A key's trip reaches its card through the event stream.
    let _ = hosts.get("host-b").call(|| Err::<(), _>("refused"));
    browser.wait_for(
        "host-b turns open",
        &format!("{}.className === 'card open'", card("http-hosts[host-b]")),
    );
    let shot = tmp.join("dashboard-keyed.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());
    drop(browser);
    drop(server);
    let _ = std::fs::remove_dir_all(&profile);
}
