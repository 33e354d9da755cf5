//! Shared pieces of the benchmarks: the guarded work and the peers' setup.
//! See `benches/hot_path.rs` and `scripts/bench`.

use std::hint::black_box;

/// The guarded work: a trivial function returning `Ok`.
#[inline(never)]
pub fn work(x: u64) -> Result<u64, Failure> {
    Ok(black_box(x) + 1)
}

/// A failure every `every` calls.
#[inline(never)]
pub fn work_failing_every(x: u64, every: u64) -> Result<u64, Failure> {
    if black_box(x).is_multiple_of(every) {
        Err(Failure)
    } else {
        Ok(x + 1)
    }
}

/// A listener that does nothing but is not optimised away.
pub struct Quiet;

impl breaker::Listener for Quiet {
    fn before_call(&self, cb: &breaker::CircuitBreaker) {
        black_box(cb);
    }
    fn success(&self, cb: &breaker::CircuitBreaker) {
        black_box(cb);
    }
}

/// The benchmarks' error type.
#[derive(Debug)]
pub struct Failure;

impl From<breaker::CircuitBreakerError> for Failure {
    fn from(_: breaker::CircuitBreakerError) -> Self {
        Failure
    }
}

/// failsafe with its fastest policy: consecutive failures, constant backoff.
pub fn failsafe_breaker(fail_max: u32) -> impl failsafe::CircuitBreaker + Clone + Send + Sync {
    use std::time::Duration;
    let policy = failsafe::failure_policy::consecutive_failures(
        fail_max,
        failsafe::backoff::constant(Duration::from_secs(3600)),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

/// failsafe's rate policy: open when fewer than half the calls of the last
/// 60 s succeeded (at least 10 calls), constant backoff.
pub fn failsafe_rate_breaker() -> impl failsafe::CircuitBreaker + Clone + Send + Sync {
    use std::time::Duration;
    let policy = failsafe::failure_policy::success_rate_over_time_window(
        0.5,
        10,
        Duration::from_secs(60),
        failsafe::backoff::constant(Duration::from_secs(3600)),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

/// The work as a tower `Service`, behind tower-resilience-circuitbreaker
/// with a failure rate of 0.5 over a count window of 100 calls.
pub fn tower_resilience_service() -> impl tower::Service<
    u64,
    Response = u64,
    Error = tower_resilience_circuitbreaker::CircuitBreakerError<Failure>,
    Future: Send,
> + Clone
       + Send {
    use tower::Layer;
    let layer = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_type(tower_resilience_circuitbreaker::SlidingWindowType::CountBased)
        .sliding_window_size(100)
        .build()
        .expect("valid settings");
    layer.layer(tower::service_fn(|x: u64| std::future::ready(work(x))))
}

/// A waker that unparks the thread that made it.
pub fn thread_waker() -> std::task::Waker {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())))
}

/// Polls `fut` where it is made until it is ready, parking the thread
/// while it is pending (`waker` must wake this thread: [`thread_waker`]).
/// A future that is ready at once costs one poll, as without a runtime.
#[macro_export]
macro_rules! block_on {
    ($fut:expr, $waker:expr) => {{
        let mut fut = std::pin::pin!($fut);
        let mut cx = std::task::Context::from_waker($waker);
        loop {
            match std::future::Future::poll(fut.as_mut(), &mut cx) {
                std::task::Poll::Ready(out) => break out,
                std::task::Poll::Pending => std::thread::park(),
            }
        }
    }};
}

/// A redis-server of the bench's own on a free 127.0.0.1 port, killed on
/// drop (the Redis benches and `redis_instructions` start one).
pub struct RedisServer {
    child: std::process::Child,
    port: u16,
}

impl RedisServer {
    /// Starts one and waits up to 5 s for its PING; `None` if there is no
    /// `redis-server` on the PATH or it does not answer.
    pub fn start() -> Option<RedisServer> {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let ping = redis::Client::open(server.url())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ping.is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
