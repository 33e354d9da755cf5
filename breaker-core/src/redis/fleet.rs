//! The fleet's view of a namespace: every process registers the breakers it
//! uses (a heartbeat), and ops tools list them with their shared state and
//! apply manual transitions by name.
//!
//! Keys, beside each breaker's `{namespace:name}:state`:
//! - `{namespace}:breakers`: a sorted set of the names in use, scored by
//!   when the last registration runs out (milliseconds since the Unix
//!   epoch, on the registering host's clock);
//! - `{namespace:name}:processes`: a sorted set of the processes (storage
//!   ids) that use the breaker, scored the same way;
//! - `{namespace:name}:settings`: a hash of the breaker's settings as the
//!   last registering process had them (`fail_max`, `success_threshold`,
//!   `reset_timeout_ms`, `half_open_calls`, and the backoff's
//!   `backoff_factor`, `backoff_max_ms` (empty for a constant one) and
//!   `backoff_jitter`).
//!
//! Each process renews its entries every heartbeat interval; an entry lives
//! three intervals, so a process that dies drops out within three
//! heartbeats (hosts' clocks must agree to within an interval), and the
//! keys expire with the last process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::{cmd, pipe};

use super::codec::decode_stored;
use super::hub::{Conn, Core};
use super::script::{argv, parse_reply, Reply, Request, Shape};
use super::view::Slot;
use super::RedisStorageError;
use crate::state::{Backoff, Limits, Op, Policy, State};

/// How many heartbeat intervals an entry lives.
const LIVES: u32 = 3;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn names_key(namespace: &str) -> String {
    format!("{{{namespace}}}:breakers")
}

fn processes_key(namespace: &str, name: &str) -> String {
    format!("{{{namespace}:{name}}}:processes")
}

fn settings_key(namespace: &str, name: &str) -> String {
    format!("{{{namespace}:{name}}}:settings")
}

/// Renews this storage's registrations every heartbeat interval.
pub(crate) async fn heartbeat(core: Arc<Core>) {
    let mut tick = tokio::time::interval(core.cfg.heartbeat_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if core.up() {
            let slots = core.live_slots();
            if !slots.is_empty() {
                announce(Arc::clone(&core), slots).await;
            }
        }
    }
}

/// Registers `slots` in the namespace, best effort: a registration that
/// fails is retried at the next heartbeat.
pub(crate) async fn announce(core: Arc<Core>, slots: Vec<Arc<Slot>>) {
    let Some(mut conn) = core.conn.lock().clone() else {
        return;
    };
    let ns = &core.cfg.namespace;
    let now = now_ms();
    let life = core.cfg.heartbeat_interval.saturating_mul(LIVES);
    let life_ms = u64::try_from(life.as_millis()).unwrap_or(u64::MAX).max(1);
    let until = now.saturating_add(life_ms);
    let me = format!("{:016x}", core.id);
    let names = names_key(ns);
    let mut shared = pipe();
    shared
        .cmd("ZREMRANGEBYSCORE")
        .arg(&names)
        .arg("-inf")
        .arg(now)
        .ignore();
    for slot in &slots {
        shared
            .cmd("ZADD")
            .arg(&names)
            .arg(until)
            .arg(&*slot.name)
            .ignore();
    }
    shared.cmd("PEXPIRE").arg(&names).arg(life_ms).ignore();
    let _ = conn.pipeline(&shared).await;
    for slot in slots {
        let Some(owned) = slot.limits() else {
            continue;
        };
        let limits = owned.limits();
        let processes = processes_key(ns, &slot.name);
        let settings = settings_key(ns, &slot.name);
        let mut own = pipe();
        own.cmd("ZREMRANGEBYSCORE")
            .arg(&processes)
            .arg("-inf")
            .arg(now)
            .ignore()
            .cmd("ZADD")
            .arg(&processes)
            .arg(until)
            .arg(&me)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&processes)
            .arg(life_ms)
            .ignore()
            .cmd("HSET")
            .arg(&settings)
            .arg("fail_max")
            .arg(limits.fail_max)
            .arg("success_threshold")
            .arg(limits.success_threshold)
            .arg("reset_timeout_ms")
            .arg(u64::try_from(limits.reset_timeout.as_millis()).unwrap_or(u64::MAX))
            .arg("half_open_calls")
            .arg(limits.policy.half_open_calls)
            .arg("backoff_factor")
            .arg(format!("{}", limits.policy.backoff.factor()))
            .arg("backoff_jitter")
            .arg(format!("{}", limits.policy.backoff.jitter_fraction()))
            .ignore();
        // Empty for a constant backoff (HSET only: the minimal ACL has no HDEL).
        let max_ms = limits.policy.backoff.max().map_or_else(String::new, |max| {
            u64::try_from(max.as_millis())
                .unwrap_or(u64::MAX)
                .to_string()
        });
        own.cmd("HSET")
            .arg(&settings)
            .arg("backoff_max_ms")
            .arg(max_ms)
            .ignore();
        own.cmd("PEXPIRE").arg(&settings).arg(life_ms).ignore();
        let _ = conn.pipeline(&own).await;
    }
}

/// One breaker of a namespace, as [`RedisStorage::fleet`](crate::RedisStorage::fleet)
/// lists it: the shared state, and what the processes using it registered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetBreaker {
    /// The breaker's name.
    pub name: String,
    /// Its shared state (closed when its key does not exist); `None` when
    /// the stored value is not a valid state.
    pub state: Option<State>,
    /// Consecutive failures counted in the closed state.
    pub fail_counter: u32,
    /// Trial successes counted in the half-open state.
    pub success_counter: u32,
    /// When the circuit last opened, on the server's clock (while open).
    pub opened_at: Option<SystemTime>,
    /// How long until the open circuit admits a trial, on the server's clock
    /// and the registered reset timeout (while open).
    pub retry_after: Option<Duration>,
    /// Live processes that registered the breaker.
    pub processes: u64,
    /// The settings the last registering process had, if any registered.
    pub settings: Option<FleetSettings>,
}

impl FleetBreaker {
    /// The shared state as text, spelled as the admin API's rows and the
    /// CLI show it: `closed`, `open`, `half-open`, or `unknown` when the
    /// stored value is not a valid state (written by something else, or
    /// damaged).
    ///
    /// ```no_run
    /// use breaker::RedisStorage;
    ///
    /// let redis = RedisStorage::builder("redis://127.0.0.1:6379/").build()?;
    /// for b in redis.fleet().list()? {
    ///     println!("{} {}", b.name, b.state_text());
    /// }
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn state_text(&self) -> String {
        self.state
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string())
    }
}

/// A breaker's settings as a process registered them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetSettings {
    /// Consecutive failures that open the circuit.
    pub fail_max: u32,
    /// Trial successes that close it.
    pub success_threshold: u32,
    /// How long it stays open before a trial (before a growing backoff
    /// lengthens it).
    pub reset_timeout: Duration,
    /// Half-open trials at once (1 when a process of an earlier version
    /// registered the breaker).
    pub half_open_calls: u32,
    /// How the open period grows (constant when a process of an earlier
    /// version registered the breaker).
    pub backoff: Backoff,
}

impl FleetSettings {
    /// Reads the settings hash; `None` without the three settings every
    /// version registers.
    fn parse(hash: &HashMap<String, String>) -> Option<Self> {
        let number = |key: &str| hash.get(key)?.parse::<u64>().ok();
        let float = |key: &str| hash.get(key)?.parse::<f64>().ok();
        let backoff = match number("backoff_max_ms") {
            Some(max) => Backoff::exponential(
                float("backoff_factor").unwrap_or(1.0),
                Duration::from_millis(max),
            ),
            None => Backoff::constant(),
        };
        Some(FleetSettings {
            fail_max: u32::try_from(number("fail_max")?).unwrap_or(u32::MAX),
            success_threshold: u32::try_from(number("success_threshold")?).unwrap_or(u32::MAX),
            reset_timeout: Duration::from_millis(number("reset_timeout_ms")?),
            half_open_calls: number("half_open_calls")
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            backoff: backoff.jitter(float("backoff_jitter").unwrap_or(0.0)),
        })
    }

    /// The open period of an opening with `reopens` re-openings and
    /// `generation`, as the breakers compute it.
    fn open_period(&self, reopens: u32, generation: u64) -> Duration {
        self.backoff.period(self.reset_timeout, reopens, generation)
    }
}

/// A connection for an ops command: the storage's own, or a new one.
async fn connection(core: &Core) -> Result<Conn, RedisStorageError> {
    if let Some(conn) = core.conn.lock().clone() {
        return Ok(conn);
    }
    core.connect().await.map_err(RedisStorageError::Redis)
}

/// Every breaker registered in the namespace, sorted by name.
pub(crate) async fn list(core: Arc<Core>) -> Result<Vec<FleetBreaker>, RedisStorageError> {
    let mut conn = connection(&core).await?;
    let ns = &core.cfg.namespace;
    let now = now_ms();
    let names: Vec<String> = ::redis::from_redis_value(
        conn.query(cmd("ZRANGEBYSCORE").arg(names_key(ns)).arg(now).arg("+inf"))
            .await
            .map_err(RedisStorageError::Redis)?,
    )
    .map_err(|e| RedisStorageError::Redis(e.into()))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(describe(&mut conn, ns, &name, now).await?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One breaker of the namespace, registered or not.
pub(crate) async fn get(core: Arc<Core>, name: String) -> Result<FleetBreaker, RedisStorageError> {
    let mut conn = connection(&core).await?;
    describe(&mut conn, &core.cfg.namespace, &name, now_ms()).await
}

/// The replies of `describe`'s pipeline: the server's time (seconds and
/// microseconds), the stored state, the live processes, the settings.
type Described = ((u64, u64), Option<Vec<u8>>, u64, HashMap<String, String>);

async fn describe(
    conn: &mut Conn,
    ns: &str,
    name: &str,
    now: u64,
) -> Result<FleetBreaker, RedisStorageError> {
    let mut p = pipe();
    p.cmd("TIME")
        .cmd("GET")
        .arg(super::state_key(ns, name))
        .cmd("ZCOUNT")
        .arg(processes_key(ns, name))
        .arg(now)
        .arg("+inf")
        .cmd("HGETALL")
        .arg(settings_key(ns, name));
    let (time, raw, processes, settings): Described =
        ::redis::from_redis_value(conn.pipeline(&p).await.map_err(RedisStorageError::Redis)?)
            .map_err(|e| RedisStorageError::Redis(e.into()))?;
    let server_ms = time.0 * 1_000 + time.1 / 1_000;
    let settings = FleetSettings::parse(&settings);
    let mut b = FleetBreaker {
        name: name.to_owned(),
        state: Some(State::Closed),
        fail_counter: 0,
        success_counter: 0,
        opened_at: None,
        retry_after: None,
        processes,
        settings,
    };
    match raw.as_deref().map(decode_stored) {
        None => {}
        Some(Err(_)) => b.state = None,
        Some(Ok(s)) => {
            b.state = Some(s.state);
            b.fail_counter = s.fail_counter;
            b.success_counter = s.success_counter;
            if s.state == State::Open {
                b.opened_at = Some(UNIX_EPOCH + Duration::from_millis(s.opened_at_ms));
                b.retry_after = settings.map(|set| {
                    let period = set.open_period(u32::from(s.reopens), s.generation);
                    let due = s
                        .opened_at_ms
                        .saturating_add(u64::try_from(period.as_millis()).unwrap_or(u64::MAX));
                    // Opening times are rounded up to the millisecond.
                    Duration::from_millis(due.saturating_sub(server_ms)).min(period)
                });
            }
        }
    }
    Ok(b)
}

/// Applies a manual transition to breaker `name` for the whole fleet,
/// through the same script as the breakers' own operations.
pub(crate) async fn transition(
    core: Arc<Core>,
    name: String,
    op: Op,
) -> Result<State, RedisStorageError> {
    let mut conn = connection(&core).await?;
    let ns = &core.cfg.namespace;
    let hash: HashMap<String, String> = ::redis::from_redis_value(
        conn.query(cmd("HGETALL").arg(settings_key(ns, &name)))
            .await
            .map_err(RedisStorageError::Redis)?,
    )
    .map_err(|e| RedisStorageError::Redis(e.into()))?;
    // The registered settings, so that a manual opening counts its
    // re-opening as the breakers would; the defaults when none registered.
    let settings = FleetSettings::parse(&hash);
    let mut policy = Policy::DEFAULT;
    if let Some(set) = settings {
        policy.half_open_calls = set.half_open_calls;
        policy.backoff = set.backoff;
    }
    let limits = Limits {
        fail_max: settings.map_or(5, |set| set.fail_max),
        success_threshold: settings.map_or(1, |set| set.success_threshold),
        reset_timeout: settings.map_or(Duration::from_secs(60), |set| set.reset_timeout),
        now: Duration::ZERO,
        policy: &policy,
    };
    let shape: &Shape = &core.cfg.shape;
    let args = argv(
        Request::Apply(op),
        &limits,
        shape,
        &core.cfg.channel,
        "",
        &name,
        0,
    );
    let reply = core
        .script
        .run(&mut conn, &super::state_key(ns, &name), &args)
        .await
        .map_err(RedisStorageError::Redis)?;
    match parse_reply(&reply) {
        Reply::Done { after, .. } => Ok(after.state),
        Reply::Corrupt => Err(RedisStorageError::Redis(::redis::RedisError::from((
            ::redis::ErrorKind::Parse,
            "the script's reply is not a state",
        )))),
    }
}

/// Runs `work` on the storage's runtime and waits for it, at most `limit`.
pub(crate) fn block_on<T: Send + 'static>(
    core: &Core,
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, RedisStorageError>> + Send + 'static,
) -> Result<T, RedisStorageError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    core.rt.spawn(async move {
        let _ = tx.send(tokio::time::timeout(limit, work).await);
    });
    match rx.recv_timeout(limit + Duration::from_millis(100)) {
        Ok(Ok(result)) => result,
        _ => Err(RedisStorageError::Timeout { after: limit }),
    }
}

/// A transition of one of the namespace's breakers, as
/// [`Fleet::watch`](super::Fleet::watch) hears it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetTransition {
    /// The breaker's name.
    pub name: String,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// When this process heard it.
    pub at: SystemTime,
}

/// The namespace's transitions as they happen: an iterator that blocks for
/// the next one, made by [`Fleet::watch`](super::Fleet::watch). It ends
/// (`None`) when the subscription is lost; dropping it unsubscribes.
#[derive(Debug)]
pub struct FleetEvents {
    heard: std::sync::mpsc::Receiver<FleetTransition>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Iterator for FleetEvents {
    type Item = FleetTransition;

    fn next(&mut self) -> Option<FleetTransition> {
        self.heard.recv().ok()
    }
}

/// Subscribes to the namespace's channel; the subscription is up when this
/// returns `Ok`.
pub(crate) fn watch(core: &Arc<Core>, limit: Duration) -> Result<FleetEvents, RedisStorageError> {
    let (tx, heard) = std::sync::mpsc::channel();
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
    let task_core = Arc::clone(core);
    core.rt.spawn(async move {
        let core = task_core;
        let subscribed = tokio::time::timeout(limit, async {
            let node = core.cfg.nodes[0].clone();
            let mut pubsub = super::hub::client(&core.cfg, node)?
                .get_async_pubsub()
                .await?;
            pubsub.subscribe(&core.cfg.channel).await?;
            Ok::<_, ::redis::RedisError>(pubsub)
        })
        .await;
        let mut pubsub = match subscribed {
            Ok(Ok(pubsub)) => {
                let _ = ready_tx.send(Ok(()));
                pubsub
            }
            Ok(Err(e)) => {
                let _ = ready_tx.send(Err(RedisStorageError::Redis(e)));
                return;
            }
            Err(_) => {
                let _ = ready_tx.send(Err(RedisStorageError::Timeout { after: limit }));
                return;
            }
        };
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                _ = &mut stop => return,
                m = std::future::poll_fn(|cx| {
                    futures_core::Stream::poll_next(std::pin::Pin::new(&mut messages), cx)
                }) => m,
            };
            let Some(message) = message else {
                return;
            };
            if let Some(t) = transition_in(message.get_payload_bytes()) {
                if tx.send(t).is_err() {
                    return;
                }
            }
        }
    });
    match ready.recv_timeout(limit + Duration::from_millis(100)) {
        Ok(Ok(())) => Ok(FleetEvents {
            heard,
            _stop: stop_tx,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(RedisStorageError::Timeout { after: limit }),
    }
}

/// The transition a pub/sub message reports (`origin \n state-before \n
/// state-after \n name`), if it reports one.
fn transition_in(payload: &[u8]) -> Option<FleetTransition> {
    let mut parts = payload.splitn(4, |&b| b == b'\n');
    let (_, before, after, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let from: State = std::str::from_utf8(before).ok()?.parse().ok()?;
    let to = decode_stored(after).ok()?.state;
    (from != to).then(|| FleetTransition {
        name: String::from_utf8_lossy(name).into_owned(),
        from,
        to,
        at: SystemTime::now(),
    })
}
