//! The connection to Redis and the background work of a [`RedisStorage`]
//! and its clones: a runtime on a thread of its own that runs every command
//! (so no caller's executor ever waits on Redis I/O), a supervisor that
//! reconnects and resynchronises, a pub/sub listener, and a thread that runs
//! listeners for transitions learnt in the background (see
//! [`ReportQueue`](super::report_queue::ReportQueue) for the order they hear them in).
//!
//! [`RedisStorage`]: super::RedisStorage

use std::collections::HashMap;
use std::future::poll_fn;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{AsyncConnectionConfig, Client, Cmd, ConnectionInfo, RedisError, RedisResult, Value};
use futures_core::Stream;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, Notify};

use super::codec::decode_stored;
use super::handoff::{Answer, Handoff};
use super::script::{argv, parse_reply, OwnedLimits, Reply, Request, Script, Shape};
use super::view::Slot;
use crate::state::{Limits, Op, State};

const MIN_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Settings fixed when the storage is built.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) nodes: Vec<ConnectionInfo>,
    pub(crate) namespace: String,
    pub(crate) channel: String,
    pub(crate) fallback_state: State,
    pub(crate) initial_state: State,
    pub(crate) cluster: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) resync_interval: Duration,
    pub(crate) heartbeat_interval: Duration,
    /// How often counted successes are sent, at most (rate policies).
    pub(crate) flush_interval: Duration,
    pub(crate) subscribe: bool,
    pub(crate) shape: Shape,
    #[cfg(feature = "redis-tls")]
    pub(crate) tls: Option<super::tls::RedisTls>,
}

/// A connection that runs commands: to one server or to a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    pub(crate) async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }

    pub(crate) async fn pipeline(&mut self, pipe: &::redis::Pipeline) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => pipe.query_async(c).await,
            Conn::Cluster(c) => pipe.query_async(c).await,
        }
    }
}

/// Why a command did not get a reply.
#[derive(Clone, Copy, Debug)]
struct Fault {
    /// The connection is broken (not merely slow): make a new one.
    broken: bool,
}

/// What every slot of a storage (and its clones) shares.
pub(crate) struct Core {
    pub(crate) cfg: Config,
    /// Tells this process's writes apart in pub/sub messages.
    pub(super) id: u64,
    pub(super) script: Script,
    pub(super) rt: Handle,
    client: Option<Client>,
    cluster_client: Option<ClusterClient>,
    pub(super) conn: Mutex<Option<Conn>>,
    /// Commands go to Redis; when false, slots decide on their fallback.
    up: AtomicBool,
    /// Bumped whenever Redis is found unreachable.
    epoch: AtomicU64,
    /// The last connection attempt failed.
    failed: AtomicBool,
    slots: Mutex<HashMap<Arc<str>, Vec<Weak<Slot>>>>,
    resync_soon: Notify,
    next_op: AtomicU64,
    /// The pub/sub subscription up now (0: none), numbered from 1: a
    /// write published while it stays up reaches every slot.
    subscription: AtomicU64,
    subscriptions: AtomicU64,
    /// Slots with transitions for the listeners' thread to report.
    report_requests: mpsc::Sender<Weak<Slot>>,
}

/// The owner of the background work: dropping the last one stops it.
pub(crate) struct Hub {
    pub(crate) core: Arc<Core>,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.lock().take() {
            let _ = tx.send(());
        }
    }
}

impl Hub {
    /// Starts the runtime thread, the listeners' thread, the supervisor and
    /// (unless disabled) the pub/sub listener.
    pub(crate) fn start(cfg: Config) -> Result<Hub, super::RedisStorageError> {
        use super::RedisStorageError as E;
        let (client, cluster_client) = if cfg.cluster {
            let builder = ClusterClientBuilder::new(cfg.nodes.clone())
                .connection_timeout(cfg.connect_timeout)
                .response_timeout(cfg.command_timeout)
                .retries(2);
            #[cfg(feature = "redis-tls")]
            let builder = match &cfg.tls {
                Some(tls) => {
                    super::tls::install_provider();
                    builder.certs(tls.certificates())
                }
                None => builder,
            };
            (None, Some(builder.build().map_err(E::Client)?))
        } else {
            let info = cfg.nodes.first().cloned().ok_or(E::NoNode)?;
            (Some(client(&cfg, info).map_err(E::Client)?), None)
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(E::Runtime)?;
        let (report_requests, inbox) = mpsc::channel::<Weak<Slot>>();
        std::thread::Builder::new()
            .name("breaker-redis-listeners".into())
            .spawn(move || {
                for slot in inbox {
                    let Some(slot) = slot.upgrade() else {
                        continue;
                    };
                    // A panicking listener is the breaker's to contain; the
                    // others still run, and so does this thread.
                    let _ = catch_unwind(AssertUnwindSafe(|| slot.report_pending()));
                }
            })
            .map_err(E::Runtime)?;
        let core = Arc::new(Core {
            id: process_unique_id(),
            script: Script::new(),
            rt: rt.handle().clone(),
            client,
            cluster_client,
            conn: Mutex::new(None),
            up: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            slots: Mutex::new(HashMap::new()),
            resync_soon: Notify::new(),
            next_op: AtomicU64::new(1),
            subscription: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
            report_requests,
            cfg,
        });
        let (shutdown, stop) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("breaker-redis".into())
            .spawn(move || {
                rt.block_on(async move {
                    let _ = stop.await;
                });
            })
            .map_err(E::Runtime)?;
        core.rt.spawn(supervise(Arc::clone(&core)));
        core.rt.spawn(super::fleet::heartbeat(Arc::clone(&core)));
        core.rt.spawn(flush(Arc::clone(&core)));
        if core.cfg.subscribe {
            core.rt.spawn(listen(Arc::clone(&core)));
        }
        Ok(Hub {
            core,
            shutdown: Mutex::new(Some(shutdown)),
        })
    }
}

/// A number no other hub in any process is likely to share.
fn process_unique_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // SplitMix64 over the process id, the time and a counter.
    let mut z =
        (u64::from(std::process::id()) << 32) ^ nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Core {
    pub(crate) fn up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The pub/sub subscription up now, if one is.
    pub(crate) fn subscription(&self) -> Option<u64> {
        match self.subscription.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }

    /// Whether the last connection attempt failed.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Asks the listeners' thread to report what `slot` has ready.
    pub(crate) fn request_report(&self, slot: Weak<Slot>) {
        let _ = self.report_requests.send(slot);
    }

    pub(crate) fn register(self: &Arc<Self>, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock();
        let list = slots.entry(Arc::clone(&slot.name)).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(slot));
        drop(slots);
        self.rt.spawn(super::fleet::announce(
            Arc::clone(self),
            vec![Arc::clone(slot)],
        ));
    }

    pub(super) fn live_slots(&self) -> Vec<Arc<Slot>> {
        self.slots
            .lock()
            .values()
            .flat_map(|list| list.iter().filter_map(Weak::upgrade))
            .collect()
    }

    fn slots_named(&self, name: &str) -> Vec<Arc<Slot>> {
        self.slots
            .lock()
            .get(name)
            .map(|list| list.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    /// Redis is unreachable or too slow: every slot decides on its fallback
    /// until the supervisor has reconnected and read its state again.
    pub(crate) fn mark_down(&self, broken: bool) {
        if broken {
            *self.conn.lock() = None;
        }
        let was_up = self.up.swap(false, Ordering::AcqRel);
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let slots = self.live_slots();
        for slot in &slots {
            slot.set_down(true, epoch);
        }
        #[cfg(feature = "tracing")]
        if was_up {
            let cfg = &self.cfg;
            crate::tracing::redis_down(&cfg.namespace, broken, slots.len(), cfg.fallback_state);
        }
        let _ = was_up;
        self.resync_soon.notify_one();
    }

    /// Sends `op` for `slot` to Redis in the background; the caller waits on
    /// the returned handoff.
    pub(crate) fn submit(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        op: Op,
        limits: OwnedLimits,
    ) -> (u64, Arc<Handoff>) {
        let op_id = self.next_op.fetch_add(1, Ordering::Relaxed);
        slot.begin(op_id);
        let handoff = Handoff::new();
        let task = perform(
            Arc::clone(self),
            Arc::clone(slot),
            op,
            limits,
            op_id,
            Arc::clone(&handoff),
        );
        self.rt.spawn(task);
        (op_id, handoff)
    }

    /// Reads a newly bound slot's state.
    pub(crate) fn read_new(self: &Arc<Self>, slot: &Arc<Slot>) {
        let core = Arc::clone(self);
        let slot = Arc::clone(slot);
        self.rt.spawn(async move {
            if core.up() {
                core.read(&slot).await;
            }
        });
    }

    /// Reads `slot`'s state and adopts it; a fault marks Redis down.
    async fn read(&self, slot: &Slot) -> bool {
        match self.adopt(slot, self.epoch()).await {
            Ok(()) => true,
            Err(fault) => {
                self.mark_down(fault.broken);
                false
            }
        }
    }

    /// Reads `slot`'s state from Redis and has the slot follow it (a corrupt
    /// value included: the slot then decides from its fallback), as of
    /// connection `epoch`.
    async fn adopt(&self, slot: &Slot, epoch: u64) -> Result<(), Fault> {
        let under = self.subscription();
        // The first read creates a missing key in the initial state.
        let request = match self.cfg.initial_state {
            State::Closed => Request::Read,
            _ if slot.synced() => Request::Read,
            state => Request::Init(state),
        };
        let limits = slot.limits().unwrap_or_else(read_limits);
        match self.call(slot, request, &limits.limits(), "", 0).await? {
            Reply::Done {
                after,
                missing,
                window,
                ..
            } => {
                if after.state == State::Closed {
                    slot.note_window(after.generation, window);
                }
                slot.absorb_read(after, under, missing)
            }
            Reply::Corrupt => slot.set_corrupt(),
        }
        slot.set_down(false, epoch);
        Ok(())
    }

    /// Runs the script once for `slot`, within the command timeout.
    async fn call(
        &self,
        slot: &Slot,
        request: Request,
        limits: &Limits<'_>,
        origin: &str,
        successes: u64,
    ) -> Result<Reply, Fault> {
        let Some(mut conn) = self.conn.lock().clone() else {
            return Err(Fault { broken: true });
        };
        let args = argv(
            request,
            limits,
            &self.cfg.shape,
            &self.cfg.channel,
            origin,
            &slot.name,
            successes,
        );
        let sent = slot.now();
        let result = tokio::time::timeout(
            self.cfg.command_timeout,
            self.script.run(&mut conn, &slot.key, &args),
        )
        .await;
        let received = slot.now();
        match result {
            Err(_) => Err(Fault { broken: false }),
            Ok(Err(e)) => Err(Fault {
                broken: is_broken(&e),
            }),
            Ok(Ok(value)) => {
                let reply = parse_reply(&value);
                if let Reply::Done { now_us, .. } = reply {
                    slot.sample_clock(now_us, sent, received);
                }
                Ok(reply)
            }
        }
    }

    pub(super) async fn connect(&self) -> RedisResult<Conn> {
        if let Some(client) = &self.cluster_client {
            return Ok(Conn::Cluster(client.get_async_connection().await?));
        }
        let Some(client) = &self.client else {
            unreachable!("a hub has a client or a cluster client");
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.cfg.connect_timeout))
            .set_response_timeout(Some(self.cfg.command_timeout));
        Ok(Conn::Single(
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await?,
        ))
    }

    /// Connects (if needed), checks the server answers, reads every slot's
    /// state and returns to Redis. `false` if any step failed.
    async fn recover(&self) -> bool {
        let epoch = self.epoch();
        let existing = self.conn.lock().clone();
        let mut conn = match existing {
            Some(conn) => conn,
            None => {
                let limit = self.cfg.connect_timeout + self.cfg.command_timeout;
                match tokio::time::timeout(limit, self.connect()).await {
                    Ok(Ok(conn)) => conn,
                    _ => return false,
                }
            }
        };
        let ping =
            tokio::time::timeout(self.cfg.command_timeout, conn.query(&::redis::cmd("PING"))).await;
        if !matches!(ping, Ok(Ok(_))) {
            *self.conn.lock() = None;
            return false;
        }
        *self.conn.lock() = Some(conn);
        for slot in self.live_slots() {
            if !self.recover_slot(&slot, epoch).await {
                return false;
            }
        }
        if self.epoch() != epoch {
            return false;
        }
        let was_up = self.up.swap(true, Ordering::AcqRel);
        #[cfg(feature = "tracing")]
        if !was_up && epoch > 0 {
            crate::tracing::redis_up(&self.cfg.namespace, self.live_slots().len());
        }
        let _ = was_up;
        // Slots bound while this ran.
        for slot in self.live_slots() {
            if slot.on_fallback() && !self.recover_slot(&slot, epoch).await {
                return false;
            }
        }
        true
    }

    async fn recover_slot(&self, slot: &Slot, epoch: u64) -> bool {
        match self.adopt(slot, epoch).await {
            Ok(()) => true,
            Err(fault) => {
                if fault.broken || !self.up() {
                    *self.conn.lock() = None;
                }
                false
            }
        }
    }

    /// Reads every slot's state (the periodic resync), all at once: the
    /// reads are pipelined on the connection, so the resync takes about one
    /// round trip however many breakers there are.
    async fn resync(self: &Arc<Self>) {
        let mut reads = tokio::task::JoinSet::new();
        for slot in self.live_slots() {
            let core = Arc::clone(self);
            reads.spawn(async move {
                if core.up() {
                    core.read(&slot).await;
                }
            });
        }
        while reads.join_next().await.is_some() {}
    }

    /// A pub/sub message, received under subscription `under`:
    /// `origin \n state-before \n state-after \n name`.
    fn dispatch(&self, payload: &[u8], under: u64) {
        let mut parts = payload.splitn(4, |&b| b == b'\n');
        let (Some(origin), Some(before), Some(raw), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Ok(after) = decode_stored(raw) else {
            return;
        };
        let Some(before) = std::str::from_utf8(before)
            .ok()
            .and_then(|s| s.parse::<State>().ok())
        else {
            return;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return;
        };
        let own_op = std::str::from_utf8(origin)
            .ok()
            .and_then(|o| o.split_once(':'))
            .filter(|(hub, _)| u64::from_str_radix(hub, 16).ok() == Some(self.id))
            .and_then(|(_, op)| op.parse::<u64>().ok());
        for slot in self.slots_named(name) {
            slot.absorb_message(own_op, before, after, under);
        }
    }

    /// A trial admitted for a caller that left before learning of it (it
    /// timed out, or its future was dropped) would hold its place until the
    /// lease runs out: give the place back.
    pub(crate) async fn release_orphan(&self, slot: &Slot, applied: &crate::storage::Applied) {
        let crate::state::Outcome::Admitted {
            generation,
            trial: true,
        } = applied.outcome
        else {
            return;
        };
        self.cancel(slot, generation).await;
    }

    /// Gives the trial place of `generation` back, in Redis.
    async fn cancel(&self, slot: &Slot, generation: u64) {
        let op = Op::Cancel { generation };
        if let Ok(Reply::Done {
            before,
            after,
            outcome: Some(outcome),
            missing,
            ..
        }) = self
            .call(
                slot,
                Request::Apply(op),
                &slot.limits().unwrap_or_else(read_limits).limits(),
                &self.origin(0),
                0,
            )
            .await
        {
            slot.absorb_own(0, before, after, outcome, missing);
        }
    }

    /// Spawns [`release_orphan`](Self::release_orphan), freeing the place
    /// in the view at once.
    pub(crate) fn spawn_release_orphan(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        applied: crate::storage::Applied,
    ) {
        if let crate::state::Outcome::Admitted {
            generation,
            trial: true,
        } = applied.outcome
        {
            slot.release_trial(generation);
        }
        let core = Arc::clone(self);
        let slot = Arc::clone(slot);
        self.rt
            .spawn(async move { core.release_orphan(&slot, &applied).await });
    }

    /// Sends a cancellation without waiting for it.
    pub(crate) fn spawn_cancel(self: &Arc<Self>, slot: &Arc<Slot>, generation: u64) {
        let core = Arc::clone(self);
        let slot = Arc::clone(slot);
        self.rt
            .spawn(async move { core.cancel(&slot, generation).await });
    }

    fn origin(&self, op_id: u64) -> String {
        format!("{:016x}:{op_id}", self.id)
    }
}

/// Limits for a read (the script ignores them).
/// A client for one node, over TLS when the storage has TLS settings.
pub(super) fn client(cfg: &Config, info: ConnectionInfo) -> RedisResult<Client> {
    #[cfg(feature = "redis-tls")]
    return super::tls::client(info, cfg.tls.as_ref());
    #[cfg(not(feature = "redis-tls"))]
    {
        let _ = cfg;
        Client::open(info)
    }
}

fn read_limits() -> OwnedLimits {
    OwnedLimits::of(&Limits {
        fail_max: 1,
        success_threshold: 1,
        reset_timeout: Duration::ZERO,
        now: Duration::ZERO,
        ..Limits::DEFAULT
    })
}

/// Whether the error means the connection itself is gone.
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

/// Applies one operation in Redis and hands the answer to its caller.
async fn perform(
    core: Arc<Core>,
    slot: Arc<Slot>,
    op: Op,
    limits: OwnedLimits,
    op_id: u64,
    handoff: Arc<Handoff>,
) {
    /// Closes the handoff if the runtime drops this task midway.
    struct Closer(Arc<Handoff>);
    impl Drop for Closer {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _closer = Closer(Arc::clone(&handoff));
    let origin = core.origin(op_id);
    // A closed-state result carries the successes counted before it, so the
    // rate the script decides on has every one this process has seen.
    let counted = match op {
        Op::Success {
            generation,
            trial: false,
        }
        | Op::Failure {
            generation,
            trial: false,
        }
        | Op::SlowCall { generation, .. }
            if limits.limits().policy.rate.is_on() =>
        {
            Some(generation)
        }
        _ => None,
    };
    let successes = counted.map_or(0, |generation| slot.take_successes(generation));
    let result = core
        .call(
            &slot,
            Request::Apply(op),
            &limits.limits(),
            &origin,
            successes,
        )
        .await;
    if let Some(generation) = counted {
        match &result {
            Ok(Reply::Done { before, window, .. }) => {
                if before.state == State::Closed && before.generation == generation {
                    slot.note_window(generation, *window);
                }
            }
            _ => slot.give_back(generation, successes),
        }
    }
    match result {
        Ok(Reply::Done {
            before,
            after,
            outcome: Some(outcome),
            missing,
            ..
        }) => {
            let applied = slot.absorb_own(op_id, before, after, outcome, missing);
            if !handoff.deliver(Answer::Applied(applied)) {
                slot.announce_lost(&applied);
                core.release_orphan(&slot, &applied).await;
            }
            return;
        }
        Ok(_) => slot.set_corrupt(),
        Err(fault) => core.mark_down(fault.broken),
    }
    slot.abandon(op_id);
    handoff.deliver(Answer::Unavailable);
}

/// Sends the successes each breaker with a rate policy counted, at most
/// once per flush interval (and only when there are some): the server's
/// window then lags the fleet's successes by at most one interval, plus a
/// round trip. A failure sends those counted before it itself.
///
/// Each round starts a whole interval after the one before it has ended,
/// never sooner (a sleep, not a ticker, whose ticks may come early after a
/// late one): so successes counted over a time `t` are sent in at most
/// `ceil(t / flush_interval)` round trips, `t` running from the first of
/// them to the round trip that sends the last.
async fn flush(core: Arc<Core>) {
    loop {
        tokio::time::sleep(core.cfg.flush_interval).await;
        if !core.up() {
            continue;
        }
        let mut sends = tokio::task::JoinSet::new();
        for slot in core.live_slots() {
            let Some(owned) = slot.limits() else {
                continue;
            };
            if !owned.limits().policy.rate.is_on() || slot.on_fallback() {
                continue;
            }
            let Some(generation) = slot.closed_hint().map(|h| h.generation) else {
                continue;
            };
            let successes = slot.take_successes(generation);
            if successes == 0 {
                continue;
            }
            let core = Arc::clone(&core);
            sends.spawn(async move {
                let request = Request::Flush { generation };
                match core
                    .call(&slot, request, &owned.limits(), "", successes)
                    .await
                {
                    Ok(Reply::Done { before, window, .. }) => {
                        if before.state == State::Closed && before.generation == generation {
                            slot.note_window(generation, window);
                        }
                    }
                    Ok(Reply::Corrupt) => slot.give_back(generation, successes),
                    Err(fault) => {
                        slot.give_back(generation, successes);
                        core.mark_down(fault.broken);
                    }
                }
            });
        }
        while sends.join_next().await.is_some() {}
    }
}

/// Sleeps `d`, or less if woken.
async fn wait_for_resync(core: &Core, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = core.resync_soon.notified() => {}
    }
}

/// Keeps the connection up and every view current.
async fn supervise(core: Arc<Core>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if !core.up() {
            if core.recover().await {
                core.failed.store(false, Ordering::Release);
                backoff = MIN_BACKOFF;
            } else {
                core.failed.store(true, Ordering::Release);
                for slot in core.live_slots() {
                    slot.attempt_failed();
                }
                tokio::time::sleep(backoff).await;
                backoff =
                    (backoff * 2).min(MAX_BACKOFF.min(core.cfg.resync_interval).max(MIN_BACKOFF));
            }
            continue;
        }
        wait_for_resync(&core, core.cfg.resync_interval).await;
        if core.up() {
            core.resync().await;
        }
    }
}

/// Listens for the writes of every process in the namespace.
async fn listen(core: Arc<Core>) {
    let mut attempt = 0usize;
    let mut backoff = MIN_BACKOFF;
    loop {
        let node = core.cfg.nodes[attempt % core.cfg.nodes.len()].clone();
        attempt = attempt.wrapping_add(1);
        let limit = core.cfg.connect_timeout + core.cfg.command_timeout;
        let subscribed = tokio::time::timeout(limit, async {
            let mut pubsub = client(&core.cfg, node)?.get_async_pubsub().await?;
            pubsub.subscribe(&core.cfg.channel).await?;
            Ok::<_, RedisError>(pubsub)
        })
        .await;
        let Ok(Ok(pubsub)) = subscribed else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        backoff = MIN_BACKOFF;
        let under = core.subscriptions.fetch_add(1, Ordering::Relaxed) + 1;
        core.subscription.store(under, Ordering::Release);
        // Messages may have been missed while not subscribed.
        core.resync_soon.notify_one();
        let (mut sink, stream) = pubsub.split();
        let mut stream = pin!(stream);
        let mut ping = tokio::time::interval(core.cfg.resync_interval);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = poll_fn(|cx| stream.as_mut().poll_next(cx)) => match msg {
                    Some(msg) => core.dispatch(msg.get_payload_bytes(), under),
                    None => break,
                },
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(core.cfg.command_timeout, sink.ping::<Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        // Messages published from now on are lost.
        core.subscription.store(0, Ordering::Release);
    }
}
