//! [`RedisStorage`]: one breaker state shared by every process and host that
//! use the same Redis and namespace (feature `redis`).
//!
//! ```no_run
//! use breaker::{CircuitBreaker, RedisStorage};
//! use std::time::Duration;
//!
//! let redis = RedisStorage::builder("redis://127.0.0.1:6379/")
//!     .namespace("checkout")
//!     .command_timeout(Duration::from_millis(250))
//!     .build()?;
//! // One clone per breaker: clones share the connections.
//! let payments = CircuitBreaker::builder("payments").storage(redis.clone()).build();
//! let search = CircuitBreaker::builder("search").storage(redis.clone()).build();
//! # let _ = (payments, search);
//! # Ok::<(), breaker::redis::RedisStorageError>(())
//! ```
//!
//! # How it works
//!
//! Each breaker's state is one Redis string (see [`decode`] for its format),
//! changed only by one Lua script that applies
//! [`state::step`](crate::state::step) on the server, atomically, with the
//! server's clock (`TIME`, in milliseconds) for `opened_at` and timeouts. So
//! under any number of processes failing at once `fail_counter` never passes
//! `fail_max`, the circuit opens once, and one process at a time runs the
//! half-open trial. The trial holds a *lease* (by default the reset timeout,
//! at least a second; see [`RedisStorageBuilder::trial_lease`]): if its
//! holder crashes, or runs longer than the lease, the place is freed and the
//! late result ignored. The script is loaded once and run with `EVALSHA`
//! (with `EVAL` when the server has lost it), and every write is published
//! on the namespace's pub/sub channel.
//!
//! # Trip policies
//!
//! The script applies several half-open trials
//! ([`half_open_calls`](crate::CircuitBreakerBuilder::half_open_calls)), a
//! growing [`Backoff`](crate::Backoff) and the failure rate over a time
//! window for the whole fleet, as the memory storage does for one process:
//!
//! - at most `half_open_calls` trials run at once across every process; the
//!   trials share one lease, renewed whenever a trial is admitted or
//!   finishes, so a crashed trial holder keeps its place until the others
//!   finish or the lease runs out with none admitted or finished, which
//!   frees every place under a new generation (late results are ignored);
//! - the open period of the k-th consecutive re-opening is computed by the
//!   script with the same arithmetic, in the same order, as
//!   [`Backoff::period`](crate::Backoff::period) (the jitter included,
//!   drawn from the generation), so every process and the server agree on
//!   it to the millisecond (`tests/storage/redis/policies.rs` checks 300
//!   settings against the script);
//! - a breaker on the default policy writes exactly the values it wrote
//!   before these policies existed (format `v1`); a value with more than
//!   one trial or a counted re-opening is written as `v2` (see
//!   [`decode`]), which storages of earlier versions of this crate take for
//!   corrupt: upgrade every process before turning these policies on.
//!
//! - the **failure rate** over a **time window**
//!   ([`window_time`](crate::CircuitBreakerBuilder::window_time)) is the
//!   fleet's: the script keeps the window in a hash beside the state
//!   (`{namespace:name}:window`, ten buckets of a tenth of the window on
//!   the server's clock, emptied when the circuit enters closed) and
//!   decides the rate when it applies a failure, for every process at
//!   once. A closed-state success makes no round trip: each process counts
//!   its successes (in its own stripes, as the memory storage's window
//!   does) and sends them at most once per
//!   [`flush_interval`](RedisStorageBuilder::flush_interval) (100 ms by
//!   default), and with each failure it sends, before the failure is
//!   applied. So a decision sees every success of the deciding process and
//!   lacks at most the last flush interval's successes of the others: the
//!   rate the server sees is at most that much *higher* than the fleet's,
//!   never lower. `tests/storage/redis/policies.rs` checks that two
//!   processes trip at the failure the memory storage trips at on the same
//!   sequence, and that successes counted over a time `t` cost at most
//!   `ceil(t / flush_interval)` round trips, `t` running from the first of
//!   them until the server holds the last (one run: 1,000 successes at
//!   once, 1 round trip; 592,000 over 317 ms with a 50 ms interval, 6);
//! - the **slow-call rate** over a time window
//!   ([`slow_call_rate`](crate::CircuitBreakerBuilder::slow_call_rate)) is
//!   the fleet's too, decided by the script on the same window. A slow
//!   closed-state call is one round trip of its own, as a failure is (slow
//!   calls are rare by definition): a slow success is sent at once with
//!   the successes counted before it, and the script adds it to the window
//!   as a slow call and opens the circuit with `SlowCallRate` when the
//!   rate holds; a slow failure is the failure's round trip, with the slow
//!   flag. So the slow-call rate has the failure rate's staleness (at most
//!   the others' last flush interval of fast successes missing), and the
//!   slow call that makes it hold is the one that opens the circuit, as on
//!   the memory storage (`tests/storage/redis/policies.rs` checks the trip
//!   point against it). A slow call whose round trip fails is decided on
//!   the fallback state and not sent later (its success is, with the next
//!   flush);
//! - a **count window** (`window_calls`, the default window) is refused
//!   with [`ConfigError::Unsupported`]: the last N calls of a fleet are not
//!   defined without a round trip per call;
//! - [`CircuitBreaker::window`](crate::CircuitBreaker::window) shows the
//!   fleet's window as the last reply to this process showed it (after its
//!   last failure or flush). Successes counted while the breaker runs on
//!   its fallback state (Redis unreachable) are not sent; a flush that
//!   does not reach Redis is retried with the next one.
//!
//! Every process of a fleet should give a breaker the same policy: the
//! settings of the process that sends an operation decide it. The fleet
//! view ([`RedisStorage::fleet`]) shows `retry_after` for the reset timeout
//! alone, without the backoff.
//!
//! # Versions
//!
//! The storage needs Redis 3.2 or later: the script reads the server's clock
//! with `TIME` before it writes, which Redis allows in a script from 3.2 on
//! (with the `redis.replicate_commands()` the script calls; by default from
//! 5.0), and uses `EVALSHA`/`EVAL`, `GET`, `SET` with `PX`, `PUBLISH`,
//! `SUBSCRIBE` and `PING`, all older. Redis Cluster needs 3.0, and
//! Valkey and other servers that speak these commands work the same. The
//! test suite runs against the `redis-server` Debian's packages install
//! (7.0 on the machines it ran on); older versions are not tested.
//!
//! # Keys
//!
//! A breaker named `db` in namespace `checkout` lives at `{checkout:db}:state`
//! and its writes are published on `checkout:events`. The hash tag
//! `{namespace:name}` keeps every key of a breaker in one cluster slot; keys
//! are the same in cluster mode and out of it. Each write sets the key's TTL
//! ([`RedisStorageBuilder::key_ttl`]), raised to at least two reset timeouts
//! plus a trial lease so an open circuit never expires before its trial. An
//! expired key reads as closed with zero counters.
//!
//! # The hot path, round trips and staleness
//!
//! [`load`](crate::storage::Storage::load) never does I/O: it reads a local view of
//! the shared state. The view is updated by the reply to each of this
//! process's own operations, by a pub/sub message for every write by any
//! process, and by a read of every breaker's state each
//! [`resync_interval`](RedisStorageBuilder::resync_interval) (and at once
//! after any reconnection). Round trips per call:
//!
//! | call | round trips |
//! |---|---|
//! | success, closed, `fail_counter` 0 | 0 |
//! | success, closed, with a rate policy | 0 (counted, sent once per [`flush_interval`](RedisStorageBuilder::flush_interval)) |
//! | slow call, closed, with a rate policy | 1 |
//! | rejected (open before the timeout, or half-open with the trial taken) | 0 |
//! | failure (including the one that trips) | 1 |
//! | first success after failures | 1 |
//! | trial admission, trial result | 1 each |
//! | `open()`, `close()`, `half_open()`, `reset()` | 1 |
//! | anything while Redis is unreachable | 0 |
//!
//! One more round trip only when the server answers `NOSCRIPT`. Background
//! work per storage: one read per breaker per resync interval, and one
//! pub/sub connection per storage and its clones.
//!
//! **Staleness bound.** A write by another process reaches this process's
//! view when its pub/sub message arrives: one network delivery after the
//! write (well under a millisecond on loopback). If messages are lost (the
//! pub/sub connection drops, or is disabled with
//! [`subscribe(false)`](RedisStorageBuilder::subscribe)), the view is never
//! older than `resync_interval + command_timeout` (1.25 s by default) while
//! Redis is reachable. A stale view costs at most one round trip: an
//! operation sent on it is decided by the script on the real state, and its
//! reply brings the view up to date.
//!
//! # Clocks
//!
//! Redis's clock decides when an open circuit admits its trial, so every
//! host agrees whatever its own clock says. Each reply carries the server's
//! time; the storage keeps the offset between it and the breaker's clock
//! (from the reply with the shortest round trip, renewed every few seconds)
//! and reports `opened_at` and `retry_after` in the breaker's clock, off by
//! at most half a round trip. Use the default
//! [`SystemClock`](crate::clock::SystemClock) with this storage: a manual
//! clock does not move the server's.
//!
//! # When Redis is unreachable
//!
//! A command that fails or takes longer than the
//! [`command_timeout`](RedisStorageBuilder::command_timeout) switches every
//! breaker of the storage to a local state machine that starts in the
//! [`fallback_state`](RedisStorageBuilder::fallback_state) (closed by
//! default) and follows the usual rules from there: with the default, calls
//! run and enough local failures open the circuit in this process alone. No
//! call waits longer than the command timeout, and while Redis is away no
//! call waits at all. The storage reconnects by itself (backing off from
//! 25 ms to 500 ms), reads every breaker's state and uses it again: the
//! shared state is what counts when Redis is back, and results of calls
//! admitted on the fallback are not replayed. A manual transition while
//! Redis is away applies to the fallback only. An operation that timed out
//! may still be applied by Redis later (it was sent); its effect then shows
//! in the view like any other write. A value in Redis that is not a valid
//! state (see [`decode`]) sends that breaker to its fallback until a read
//! finds a valid one; a manual transition (`reset()`, `close()`, ...)
//! overwrites it.
//!
//! A process that joins never writes what it has not changed: building a
//! breaker reads the shared state (waiting up to the connect timeout for it),
//! and its first call already follows it. With
//! [`initial_state`](RedisStorageBuilder::initial_state), that first read
//! creates the key in the given state if it does not exist yet, and only
//! then.
//!
//! # Connecting: passwords, ACL users, databases
//!
//! The URL carries what the connection needs, as the `redis` crate reads
//! it: `redis://:password@host:6379/` for `requirepass`,
//! `redis://user:password@host:6379/` for an ACL user,
//! `redis://host:6379/3` for database 3 (keys live in it; pub/sub channels
//! are server-wide). The minimal ACL for namespace `checkout` (the storage
//! runs one script that reads the server's clock, reads and writes the
//! breaker's key and publishes; it subscribes to one channel and pings; it
//! registers its breakers for [`RedisStorage::fleet`] in sorted sets and a
//! hash; the rate policies' window is a hash read with `HMGET`):
//!
//! ```text
//! ACL SETUSER breaker on >password resetkeys ~{checkout:* ~{checkout}:*
//!     resetchannels &checkout:events -@all +evalsha +eval +get +set +publish
//!     +time +subscribe +ping +zadd +zremrangebyscore +hset +hmget +pexpire
//! ```
//!
//! An ops tool that only reads and changes the fleet ([`Fleet`]) needs the
//! same keys and channel with `+evalsha +eval +get +set +publish +time
//! +zrangebyscore +zcount +hgetall`.
//!
//! A wrong password or a denied command is a storage that cannot use
//! Redis: its breakers run on the fallback state, as when Redis is down.
//! With feature `redis-tls`, `rediss://` URLs connect over TLS (see
//! `RedisStorageBuilder::tls`).
//!
//! # Trust boundary
//!
//! Whoever can write the breaker's key or publish on the namespace's channel
//! (`{namespace}:events`) can open or close the circuit for the whole fleet:
//! both are inside the trust boundary, like the Redis password. Give the
//! processes an ACL user limited to the namespace's keys and channel, and
//! nobody else write access to them. Within that boundary the storage
//! limits the harm of a bad value:
//! - A value that does not parse (see [`decode`]) sends the breaker to its
//!   fallback state, as above.
//! - A value that parses but that this configuration could not have written
//!   is repaired by the script, on the next operation or read (at most one
//!   [`resync_interval`](RedisStorageBuilder::resync_interval) later): a
//!   trial lease that runs out later than the lease from now frees the trial
//!   place (as an expired lease does), an opening time in the future starts
//!   the open period now, and a sequence number more than a day ahead of
//!   the server's clock is renumbered from the clock (views follow a
//!   renumbered value after two reads, as after any restore from a backup).
//!   One second of slack covers the server's clock being stepped back.
//! - A forged pub/sub message is not confirmed against the key before the
//!   view adopts it (that would cost a round trip on every transition heard):
//!   it misleads the view, and this process's listeners, until the next
//!   write or until two reads (two resync intervals) show the key's real
//!   value. Listeners may hear the forged transition and the way back.
//!
//! # Listeners
//!
//! Each process's listeners hear the transitions of the shared state in the
//! order they were made, each once, one at a time (a `state_change` never
//! runs while another does). Every write carries a sequence number, one
//! more than the write before it; a process hears the writes in that order,
//! from their pub/sub messages and its own replies, and a write it sees
//! early (a reply or a periodic read can arrive before the messages of
//! earlier writes) waits for the ones before it. In the process that makes
//! a transition, `state_change` runs on the calling thread, after the
//! call's `success` or `failure` listeners, as with any storage;
//! transitions made by other processes and seen meanwhile wait for it, and
//! the caller reports them too. Every other process sharing the breaker
//! hears the transition from a background thread of its storage as soon as
//! its turn comes. `before_call`, `success` and `failure` fire only in the
//! process that made the call.
//!
//! **When messages are lost.** As long as the pub/sub subscription stays
//! up, no write is missed. Writes whose messages cannot come any more are
//! *jumped over*: those published while the subscription was down (a
//! reconnection, or before it was first made), every write of other
//! processes when [`subscribe(false)`](RedisStorageBuilder::subscribe), and
//! writes made without the script (a key that expired or was deleted or
//! set by hand), whose messages never come (the listeners wait one second
//! for them). A jump takes the listeners from the state they last heard to
//! the state found after the gap along the shortest path of the state
//! machine's own transitions (closed → open → half-open → closed, and
//! half-open → open): a jump from open to closed is heard as two
//! transitions, open → half-open then half-open → closed, and one from
//! closed to half-open as closed → open then open → half-open; nothing is heard when the two states are the same, so a
//! round trip (closed → open → closed) inside the gap is not heard. Each
//! transition heard still starts from the state the one before it ended
//! in. Switching to the fallback state and back is reported the same way
//! (one change to the fallback state, one back to the shared state).
//!
//! So a listener that waits, inside `success` or `failure`, for a
//! transition made elsewhere to be reported waits in vain: it is reported
//! after the call's own. (A transition held that way for longer than ten
//! seconds is reported without waiting for its caller any longer.)

mod codec;
mod fleet;
mod handoff;
mod hub;
mod report_queue;
mod script;
#[cfg(feature = "redis-tls")]
mod tls;
mod view;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ::redis::{ConnectionInfo, IntoConnectionInfo};

pub use codec::{decode, DecodeError};
pub use fleet::{FleetBreaker, FleetEvents, FleetSettings, FleetTransition};
#[cfg(feature = "redis-tls")]
pub use tls::RedisTls;

use self::handoff::{Answer, AnswerFuture};
use self::hub::{Config, Hub};
use self::script::{OwnedLimits, Shape};
use self::view::{Slot, FALLBACK_TAG};
use crate::error::ConfigError;
use crate::memory::MemoryStorage;
use crate::state::{Limits, Op, Policy, Snapshot, State, Totals, WindowShape};
use crate::storage::{Applied, ApplyFuture, Binding, ClosedHint, Storage};

use self::handle::RedisStorage;

/// Where [`RedisStorage`] is defined: out of this public module, so that its
/// one public path is the crate root's (`breaker::RedisStorage`).
pub(crate) mod handle {
    use super::{Arc, Hub, MemoryStorage, OnceLock, Slot};

    /// A [`Storage`](crate::storage::Storage) in Redis, shared by every
    /// process and host that use the same Redis and namespace (feature
    /// `redis`). See the [`redis` module](crate::redis) for how it works, its
    /// round trips, staleness bound and failure behaviour.
    ///
    /// Build one with [`RedisStorage::builder`], then give each breaker its
    /// own [`clone`](Clone::clone): clones share the connections and
    /// background work, and each keeps the state of the breaker it is built
    /// into, by that breaker's name.
    pub struct RedisStorage {
        pub(super) hub: Arc<Hub>,
        pub(super) slot: OnceLock<Arc<Slot>>,
        /// The state before a breaker is bound (nothing can be keyed yet).
        pub(super) unbound: MemoryStorage,
    }
}

impl Clone for RedisStorage {
    /// A storage on the same connections, for another breaker: not yet bound
    /// to any, whatever `self` is bound to.
    fn clone(&self) -> Self {
        RedisStorage {
            hub: Arc::clone(&self.hub),
            slot: OnceLock::new(),
            unbound: MemoryStorage::new(),
        }
    }
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStorage")
            .field("namespace", &self.hub.core.cfg.namespace)
            .field("key", &self.key())
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

impl RedisStorage {
    /// A builder for a storage on the Redis server at `url`
    /// (`redis://[user:password@]host[:port][/db]`), or on the cluster it
    /// belongs to with [`cluster_mode`](RedisStorageBuilder::cluster_mode).
    ///
    /// # Example
    /// ```
    /// use breaker::RedisStorage;
    ///
    /// let redis = RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .namespace("checkout")
    ///     .build()?; // connects in the background: no server needed yet
    /// assert_eq!(redis.namespace(), "checkout");
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn builder(url: impl IntoConnectionInfo) -> RedisStorageBuilder {
        RedisStorageBuilder::new(url.into_connection_info())
    }

    /// A builder for a storage on the server `client` connects to.
    ///
    /// # Example
    /// ```
    /// use breaker::RedisStorage;
    ///
    /// // A client of the `redis` crate, as the application may already have.
    /// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let storage = RedisStorage::from_client(&client).namespace("checkout").build()?;
    /// assert_eq!(storage.namespace(), "checkout");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_client(client: &::redis::Client) -> RedisStorageBuilder {
        RedisStorageBuilder::new(Ok(client.get_connection_info().clone()))
    }

    /// A storage on `url` with every setting at its default.
    ///
    /// # Errors
    /// As [`RedisStorageBuilder::build`].
    ///
    /// # Example
    /// ```
    /// use breaker::redis::RedisStorageError;
    /// use breaker::RedisStorage;
    ///
    /// let redis = RedisStorage::open("redis://127.0.0.1:6379/")?;
    /// assert_eq!(redis.namespace(), "breaker"); // the default
    /// assert!(matches!(RedisStorage::open("http://example.com"), Err(RedisStorageError::Client(_))));
    /// # Ok::<(), RedisStorageError>(())
    /// ```
    pub fn open(url: impl IntoConnectionInfo) -> Result<Self, RedisStorageError> {
        Self::builder(url).build()
    }

    /// The Redis key of the breaker this storage is bound to, once bound.
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, RedisStorage};
    /// use std::time::Duration;
    ///
    /// use std::sync::Arc;
    ///
    /// // No Redis listens on port 1: the breaker runs on the fallback state.
    /// let redis = RedisStorage::builder("redis://127.0.0.1:1/")
    ///     .namespace("checkout")
    ///     .connect_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// assert_eq!(redis.key(), None); // not bound to a breaker yet
    /// // An `Arc` of a storage is a storage: keep one to look at it later.
    /// let storage = Arc::new(redis.clone());
    /// let payments = CircuitBreaker::builder("payments").storage(storage.clone()).build();
    /// assert_eq!(storage.key(), Some("{checkout:payments}:state"));
    /// # let _ = payments;
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn key(&self) -> Option<&str> {
        self.slot.get().map(|s| s.key.as_str())
    }

    /// The namespace.
    ///
    /// # Example
    /// ```
    /// let redis = breaker::RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .namespace("checkout")
    ///     .build()?;
    /// assert_eq!(redis.namespace(), "checkout");
    /// assert_eq!(redis.clone().namespace(), "checkout"); // clones share it
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn namespace(&self) -> &str {
        &self.hub.core.cfg.namespace
    }

    /// Whether calls follow the shared state now: `false` before the first
    /// read of it, while Redis is unreachable, and while its value is corrupt
    /// (calls then follow the fallback state).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, RedisStorage};
    /// use std::time::Duration;
    ///
    /// use std::sync::Arc;
    ///
    /// // No Redis listens on port 1.
    /// let redis = RedisStorage::builder("redis://127.0.0.1:1/")
    ///     .connect_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// let storage = Arc::new(redis);
    /// let db = CircuitBreaker::builder("db").storage(storage.clone()).build();
    /// assert!(!storage.is_shared()); // Redis is unreachable
    /// assert!(db.call(|| Ok::<_, &str>(())).is_ok()); // decided on the fallback state
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn is_shared(&self) -> bool {
        self.slot.get().is_some_and(|s| !s.on_fallback())
    }

    /// The namespace's breakers as the fleet uses them, for ops tools: list
    /// them, read one, open, close or reset one for every process (see
    /// [`Fleet`]). Works on any storage of the namespace, bound to a breaker
    /// or not.
    ///
    /// # Example
    /// ```no_run
    /// use breaker::{RedisStorage, State};
    ///
    /// let redis = RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .namespace("checkout")
    ///     .build()?;
    /// for b in redis.fleet().list()? {
    ///     println!("{}: {:?} in {} processes", b.name, b.state, b.processes);
    /// }
    /// redis.fleet().close("payments")?; // every process follows
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn fleet(&self) -> Fleet<'_> {
        Fleet { storage: self }
    }

    fn decide_locally(&self, slot: &Arc<Slot>, op: Op, limits: &Limits) -> Option<Applied> {
        if slot.on_fallback() {
            let repair = matches!(op, Op::Force(_) | Op::Reset) && slot.only_corrupt();
            if !repair {
                return Some(slot.apply_fallback(op, limits));
            }
        }
        match op {
            // Giving a trial place back changes no state: it is sent without
            // waiting (a dropped future must not block its executor), and
            // the view frees the place at once. This process's next
            // admission is sent after it on the same connection.
            Op::Cancel { generation } if generation & FALLBACK_TAG == 0 => {
                let applied = slot.release_trial(generation);
                self.hub.core.spawn_cancel(slot, generation);
                Some(applied)
            }
            // Admitted on the fallback: nothing to count in Redis.
            Op::Success { generation, .. }
            | Op::Failure { generation, .. }
            | Op::SlowCall { generation, .. }
            | Op::Cancel { generation }
                if generation & FALLBACK_TAG != 0 =>
            {
                Some(slot.stale())
            }
            _ => None,
        }
    }
}

impl Storage for RedisStorage {
    fn load(&self) -> Snapshot {
        match self.slot.get() {
            Some(slot) => slot.load(),
            None => self.unbound.load(),
        }
    }

    /// The script ports `step` with several half-open trials (each
    /// finishing trial renews the trials' lease), a growing backoff (the
    /// script computes the period as
    /// [`Backoff::period`](crate::Backoff::period) does, bit for bit) and the
    /// failure and slow-call rates over a time window kept on the server
    /// for the whole fleet. It refuses a count window (the last N calls of
    /// a fleet are not defined without a round trip per call).
    fn check_policy(&self, policy: &Policy) -> Result<(), ConfigError> {
        let rate = &policy.rate;
        if rate.is_on() && matches!(rate.window, WindowShape::Calls(_)) {
            return Err(ConfigError::Unsupported {
                storage: "RedisStorage",
                setting: "a count window (window_calls, the default window): give it window_time",
            });
        }
        Ok(())
    }

    /// The rate policies' window is kept on the server, for the fleet.
    fn keeps_window(&self) -> bool {
        true
    }

    fn window(&self) -> Option<Totals> {
        self.slot.get()?.window()
    }

    /// Redis admits a call and sees that a success has nothing to record
    /// without building a snapshot.
    fn closed_hint(&self) -> Option<ClosedHint> {
        self.slot.get()?.closed_hint()
    }

    fn apply(&self, op: Op, limits: &Limits) -> Applied {
        let Some(slot) = self.slot.get() else {
            return self.unbound.apply(op, limits);
        };
        if let Some(applied) = self.decide_locally(slot, op, limits) {
            return applied;
        }
        let core = &self.hub.core;
        let deadline = Instant::now() + core.cfg.command_timeout;
        let (op_id, handoff) = core.submit(slot, op, OwnedLimits::of(limits));
        match handoff.wait_until(deadline) {
            Some(Answer::Applied(applied)) => applied,
            Some(Answer::Unavailable) => slot.apply_fallback(op, limits),
            None => {
                slot.abandon(op_id);
                core.mark_down(false);
                slot.apply_fallback(op, limits)
            }
        }
    }

    fn apply_async(&self, op: Op, limits: Limits<'_>) -> ApplyFuture<'_> {
        let Some(slot) = self.slot.get() else {
            let applied = self.unbound.apply(op, &limits);
            return Box::pin(std::future::ready(applied));
        };
        if let Some(applied) = self.decide_locally(slot, op, &limits) {
            return Box::pin(std::future::ready(applied));
        }
        let owned = OwnedLimits::of(&limits);
        let (op_id, handoff) = self.hub.core.submit(slot, op, owned);
        let answer = AnswerFuture {
            handoff,
            slot: Arc::clone(slot),
            op_id,
            done: false,
        };
        Box::pin(async move {
            match answer.await {
                Some(Answer::Applied(applied)) => applied,
                Some(Answer::Unavailable) => slot.apply_fallback(op, &owned.limits()),
                None => {
                    slot.abandon(op_id);
                    slot.apply_fallback(op, &owned.limits())
                }
            }
        })
    }

    /// Reports the transition of this process's own operation in the order
    /// the local view saw it: after every change it saw before, before any it
    /// saw after (those wait for it, however long the call's `failure` or
    /// `success` listeners take), together with whatever is ready behind it
    /// unless another thread is reporting already (which then reports it).
    /// A transition the view did not see in order (it had already moved
    /// past it, or it was decided on a fallback the view no longer
    /// followed) is not reported: the view reported the change it saw
    /// instead.
    fn announce(&self, applied: &Applied, tell: &mut dyn FnMut(State, State)) {
        match self.slot.get() {
            Some(slot) => slot.announce(applied, tell),
            None => self.unbound.announce(applied, tell),
        }
    }

    /// Binds the storage to its breaker: keys its state by the breaker's
    /// name and reads it, waiting up to the connect timeout (less if Redis is
    /// known to be unreachable). A storage is bound once; later bindings are
    /// ignored (build each breaker on its own clone).
    fn bind(&self, binding: Binding) {
        let core = &self.hub.core;
        let key = state_key(&core.cfg.namespace, binding.name());
        let mut created = None;
        let slot = self.slot.get_or_init(|| {
            let slot = Slot::new(Arc::clone(core), binding, key, !core.up());
            created = Some(Arc::clone(&slot));
            slot
        });
        if created.is_none() {
            return;
        }
        core.register(slot);
        core.read_new(slot);
        slot.wait_ready(Instant::now() + core.cfg.connect_timeout + core.cfg.command_timeout);
    }
}

/// The breakers of a [`RedisStorage`]'s namespace, fleet-wide: made by
/// [`RedisStorage::fleet`].
///
/// Every process registers the breakers it uses (a heartbeat every
/// [`heartbeat_interval`](RedisStorageBuilder::heartbeat_interval), 10 s by
/// default; an entry lives three intervals), so [`list`](Self::list) shows
/// every breaker some live process uses, with its shared state and how many
/// processes use it. The manual transitions go through the same atomic
/// script as the breakers' own operations, and every process hears them as
/// it hears any other write.
///
/// Each method blocks its thread (from async code, call it through
/// `spawn_blocking`) for at most the connect timeout plus a few command
/// timeouts, then fails with [`RedisStorageError::Timeout`]; a failed command
/// is [`RedisStorageError::Redis`].
#[derive(Clone, Copy, Debug)]
pub struct Fleet<'a> {
    storage: &'a RedisStorage,
}

impl Fleet<'_> {
    fn limit(&self, commands: u32) -> Duration {
        let cfg = &self.storage.hub.core.cfg;
        cfg.connect_timeout + cfg.command_timeout.saturating_mul(commands)
    }

    /// Every breaker a live process registered, sorted by name.
    ///
    /// ```no_run
    /// # let redis = breaker::RedisStorage::builder("redis://127.0.0.1:6379/").build()?;
    /// let open: Vec<_> = redis
    ///     .fleet()
    ///     .list()?
    ///     .into_iter()
    ///     .filter(|b| b.state == Some(breaker::State::Open))
    ///     .collect();
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn list(&self) -> Result<Vec<FleetBreaker>, RedisStorageError> {
        let core = Arc::clone(&self.storage.hub.core);
        fleet::block_on(&self.storage.hub.core, self.limit(20), fleet::list(core))
    }

    /// Breaker `name`'s shared state, registered or not (a breaker no
    /// process uses reads closed, with no processes and no settings).
    ///
    /// ```no_run
    /// # let redis = breaker::RedisStorage::builder("redis://127.0.0.1:6379/").build()?;
    /// let payments = redis.fleet().get("payments")?;
    /// println!("{:?}, retry after {:?}", payments.state, payments.retry_after);
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn get(&self, name: &str) -> Result<FleetBreaker, RedisStorageError> {
        let core = Arc::clone(&self.storage.hub.core);
        let name = name.to_owned();
        fleet::block_on(
            &self.storage.hub.core,
            self.limit(3),
            fleet::get(core, name),
        )
    }

    fn apply(&self, name: &str, op: Op) -> Result<State, RedisStorageError> {
        let core = Arc::clone(&self.storage.hub.core);
        let name = name.to_owned();
        fleet::block_on(
            &self.storage.hub.core,
            self.limit(4),
            fleet::transition(core, name, op),
        )
    }

    /// Opens breaker `name` for the fleet (as
    /// [`CircuitBreaker::open`](crate::CircuitBreaker::open) does in every
    /// process); returns the state it is in now.
    ///
    /// ```no_run
    /// # let redis = breaker::RedisStorage::builder("redis://127.0.0.1:6379/").build()?;
    /// redis.fleet().open("payments")?;
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn open(&self, name: &str) -> Result<State, RedisStorageError> {
        self.apply(name, Op::Force(State::Open))
    }

    /// Closes breaker `name` for the fleet.
    ///
    /// ```no_run
    /// # let redis = breaker::RedisStorage::builder("redis://127.0.0.1:6379/").build()?;
    /// redis.fleet().close("payments")?;
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn close(&self, name: &str) -> Result<State, RedisStorageError> {
        self.apply(name, Op::Force(State::Closed))
    }

    /// Puts breaker `name` in half-open for the fleet.
    ///
    /// ```no_run
    /// # let redis = breaker::RedisStorage::builder("redis://127.0.0.1:6379/").build()?;
    /// redis.fleet().half_open("payments")?;
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn half_open(&self, name: &str) -> Result<State, RedisStorageError> {
        self.apply(name, Op::Force(State::HalfOpen))
    }

    /// The namespace's transitions from now on, as every process hears them
    /// (the pub/sub channel): an iterator that blocks for the next one.
    ///
    /// ```no_run
    /// # let redis = breaker::RedisStorage::builder("redis://127.0.0.1:6379/").build()?;
    /// for t in redis.fleet().watch()? {
    ///     println!("{}: {} -> {}", t.name, t.from, t.to);
    /// }
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn watch(&self) -> Result<FleetEvents, RedisStorageError> {
        fleet::watch(&self.storage.hub.core, self.limit(2))
    }

    /// Resets breaker `name` for the fleet: closed, counters at zero.
    ///
    /// ```no_run
    /// # let redis = breaker::RedisStorage::builder("redis://127.0.0.1:6379/").build()?;
    /// redis.fleet().reset("payments")?;
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn reset(&self, name: &str) -> Result<State, RedisStorageError> {
        self.apply(name, Op::Reset)
    }
}

/// The key of breaker `name` in `namespace`.
fn state_key(namespace: &str, name: &str) -> String {
    format!("{{{namespace}:{name}}}:state")
}

/// Settings for a [`RedisStorage`]; made by [`RedisStorage::builder`].
#[must_use = "a builder does nothing until `build()`"]
pub struct RedisStorageBuilder {
    nodes: Vec<Result<ConnectionInfo, ::redis::RedisError>>,
    namespace: String,
    fallback_state: State,
    initial_state: State,
    heartbeat_interval: Duration,
    flush_interval: Duration,
    #[cfg(feature = "redis-tls")]
    tls: Option<RedisTls>,
    cluster: bool,
    key_ttl: Duration,
    connect_timeout: Duration,
    command_timeout: Duration,
    resync_interval: Duration,
    trial_lease: Option<Duration>,
    subscribe: bool,
}

impl fmt::Debug for RedisStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStorageBuilder")
            .field("namespace", &self.namespace)
            .field("fallback_state", &self.fallback_state)
            .field("initial_state", &self.initial_state)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("flush_interval", &self.flush_interval)
            .field("tls", &self.tls_debug())
            .field("cluster_mode", &self.cluster)
            .field("key_ttl", &self.key_ttl)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("resync_interval", &self.resync_interval)
            .field("trial_lease", &self.trial_lease)
            .field("subscribe", &self.subscribe)
            .finish_non_exhaustive()
    }
}

impl RedisStorageBuilder {
    fn new(node: Result<ConnectionInfo, ::redis::RedisError>) -> Self {
        RedisStorageBuilder {
            nodes: vec![node],
            namespace: "breaker".into(),
            fallback_state: State::Closed,
            initial_state: State::Closed,
            heartbeat_interval: Duration::from_secs(10),
            flush_interval: Duration::from_millis(100),
            #[cfg(feature = "redis-tls")]
            tls: None,
            cluster: false,
            key_ttl: Duration::from_secs(24 * 3_600),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(250),
            resync_interval: Duration::from_secs(1),
            trial_lease: None,
            subscribe: true,
        }
    }

    /// Breakers in the same namespace and of the same name share their state
    /// (default `breaker`). Letters, digits and `-_.` only, at most 64.
    ///
    /// # Example
    /// ```
    /// use breaker::redis::RedisStorageError;
    /// use breaker::RedisStorage;
    ///
    /// let url = "redis://127.0.0.1:6379/";
    /// let redis = RedisStorage::builder(url).namespace("checkout-v2").build()?;
    /// assert_eq!(redis.namespace(), "checkout-v2");
    /// let bad = RedisStorage::builder(url).namespace("checkout:v2").build();
    /// assert!(matches!(bad, Err(RedisStorageError::Namespace { .. })));
    /// # Ok::<(), RedisStorageError>(())
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The state a breaker starts from, and decides on locally, while Redis
    /// is unreachable (default [`State::Closed`]: calls keep running).
    ///
    /// # Example
    /// ```
    /// use breaker::{CircuitBreaker, RedisStorage, State};
    /// use std::time::Duration;
    ///
    /// // No Redis listens on port 1: calls are rejected until it can be reached.
    /// let redis = RedisStorage::builder("redis://127.0.0.1:1/")
    ///     .fallback_state(State::Open)
    ///     .connect_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// let db = CircuitBreaker::builder("db").storage(redis).build();
    /// assert_eq!(db.current_state(), State::Open);
    /// assert!(db.call(|| Ok::<_, &str>(())).unwrap_err().is_open());
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    pub fn fallback_state(mut self, state: State) -> Self {
        self.fallback_state = state;
        self
    }

    /// The state a breaker's shared key is created in when it does not exist
    /// yet (default [`State::Closed`]), as pybreaker's `CircuitRedisStorage`
    /// takes one: the first read after the breaker is bound creates the key
    /// only if it is missing, so a process joining a fleet never overwrites
    /// the fleet's state. A key that exists is followed as it is. A key that
    /// later expires (idle for [`key_ttl`](Self::key_ttl)) or is lost with
    /// the server's data is a closed breaker again, as without this setting:
    /// the initial state is applied once per breaker and process, at start.
    ///
    /// # Example
    /// ```
    /// use breaker::{RedisStorage, State};
    ///
    /// // Start a new fleet's breaker open: the first trial comes after
    /// // `reset_timeout`.
    /// let builder = RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .initial_state(State::Open);
    /// assert!(format!("{builder:?}").contains("initial_state: Open"));
    /// ```
    pub fn initial_state(mut self, state: State) -> Self {
        self.initial_state = state;
        self
    }

    /// Connect over TLS with these settings (feature `redis-tls`): a CA to
    /// trust, a client certificate. Every node's URL must be `rediss://`
    /// (else [`build`](Self::build) fails with
    /// [`RedisStorageError::TlsNeedsRediss`]); a `rediss://` URL without
    /// this setting uses the system's roots and no client certificate.
    ///
    /// # Example
    /// ```
    /// use breaker::redis::RedisTls;
    /// use breaker::RedisStorage;
    ///
    /// # let ca = Vec::new();
    /// let storage = RedisStorage::builder("rediss://127.0.0.1:1/")
    ///     .tls(RedisTls::new().root_cert_pem(ca))
    ///     .build()?;
    /// # let _ = storage;
    /// # Ok::<(), breaker::redis::RedisStorageError>(())
    /// ```
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls(mut self, tls: RedisTls) -> Self {
        self.tls = Some(tls);
        self
    }

    fn tls_debug(&self) -> Option<&dyn fmt::Debug> {
        #[cfg(feature = "redis-tls")]
        return self.tls.as_ref().map(|t| t as &dyn fmt::Debug);
        #[cfg(not(feature = "redis-tls"))]
        None
    }

    /// How often this process renews its registration of the breakers it
    /// uses (default 10 s), which [`RedisStorage::fleet`] lists; an entry
    /// lives three intervals, so a process that stops drops out of the list
    /// within three. Must be greater than zero.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = breaker::RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .heartbeat_interval(Duration::from_secs(5));
    /// assert!(format!("{builder:?}").contains("heartbeat_interval: 5s"));
    /// ```
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How often, at most, this process sends Redis the closed-state
    /// successes it counted for breakers with a rate policy (default
    /// 100 ms; only when there are some). Successes cost no round trip:
    /// they are counted in the process and sent in one script call per
    /// breaker and interval, and a failure sends those counted before it.
    /// So the fleet's window, which the server decides on, lacks at most
    /// the successes of the last interval of the *other* processes. Must be
    /// greater than zero.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = breaker::RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .flush_interval(Duration::from_millis(50));
    /// assert!(format!("{builder:?}").contains("flush_interval: 50ms"));
    /// ```
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Talk to a Redis Cluster (default `false`): the URL given to the
    /// builder, and any added with [`node`](Self::node), are its seed nodes.
    ///
    /// # Example
    /// ```
    /// let builder = breaker::RedisStorage::builder("redis://10.0.0.1:6379/")
    ///     .cluster_mode(true)
    ///     .node("redis://10.0.0.2:6379/");
    /// assert!(format!("{builder:?}").contains("cluster_mode: true"));
    /// ```
    pub fn cluster_mode(mut self, on: bool) -> Self {
        self.cluster = on;
        self
    }

    /// Adds a seed node of the cluster (in cluster mode; ignored otherwise).
    /// The pub/sub listener also moves to the next seed node when one fails.
    ///
    /// # Example
    /// ```
    /// use breaker::redis::RedisStorageError;
    /// use breaker::RedisStorage;
    ///
    /// let bad = RedisStorage::builder("redis://10.0.0.1:6379/")
    ///     .cluster_mode(true)
    ///     .node("not a url")
    ///     .build();
    /// assert!(matches!(bad, Err(RedisStorageError::Client(_)))); // every node is checked
    /// ```
    pub fn node(mut self, url: impl IntoConnectionInfo) -> Self {
        self.nodes.push(url.into_connection_info());
        self
    }

    /// How long a breaker's key lives after its last write (default 24 h),
    /// raised to two reset timeouts plus a trial lease if shorter.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = breaker::RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .key_ttl(Duration::from_secs(3_600));
    /// assert!(format!("{builder:?}").contains("key_ttl: 3600s"));
    /// ```
    pub fn key_ttl(mut self, ttl: Duration) -> Self {
        self.key_ttl = ttl;
        self
    }

    /// The longest wait for a connection, and for the first read of a
    /// breaker's state when it is built (default 1 s).
    ///
    /// # Example
    /// ```
    /// use breaker::redis::RedisStorageError;
    /// use breaker::RedisStorage;
    /// use std::time::{Duration, Instant};
    ///
    /// // No Redis listens on port 1: building a breaker waits at most about this long.
    /// let redis = RedisStorage::builder("redis://127.0.0.1:1/")
    ///     .connect_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// let start = Instant::now();
    /// let db = breaker::CircuitBreaker::builder("db").storage(redis).build();
    /// assert!(start.elapsed() < Duration::from_secs(1));
    /// # let _ = db;
    ///
    /// let zero = RedisStorage::builder("redis://127.0.0.1:1/").connect_timeout(Duration::ZERO).build();
    /// assert!(matches!(zero, Err(RedisStorageError::ZeroDuration { setting: "connect_timeout" })));
    /// # Ok::<(), RedisStorageError>(())
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest any call waits for Redis (default 250 ms); past it, Redis
    /// counts as unreachable and calls decide on the fallback state.
    ///
    /// # Example
    /// ```
    /// use breaker::redis::RedisStorageError;
    /// use breaker::RedisStorage;
    /// use std::time::Duration;
    ///
    /// let url = "redis://127.0.0.1:6379/";
    /// assert!(RedisStorage::builder(url).command_timeout(Duration::from_millis(50)).build().is_ok());
    /// let zero = RedisStorage::builder(url).command_timeout(Duration::ZERO).build();
    /// assert!(matches!(zero, Err(RedisStorageError::ZeroDuration { setting: "command_timeout" })));
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How often every breaker's state is read again, whatever pub/sub says
    /// (default 1 s): with the command timeout, it bounds how stale the
    /// local view can be.
    ///
    /// # Example
    /// ```
    /// use breaker::redis::RedisStorageError;
    /// use breaker::RedisStorage;
    /// use std::time::Duration;
    ///
    /// let url = "redis://127.0.0.1:6379/";
    /// assert!(RedisStorage::builder(url).resync_interval(Duration::from_secs(5)).build().is_ok());
    /// let zero = RedisStorage::builder(url).resync_interval(Duration::ZERO).build();
    /// assert!(matches!(zero, Err(RedisStorageError::ZeroDuration { setting: "resync_interval" })));
    /// ```
    pub fn resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = interval;
        self
    }

    /// How long a half-open trial holds its place (default: the breaker's
    /// reset timeout, at least 1 s). A trial that runs longer loses it: its
    /// result is ignored and another call may run as the trial.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = breaker::RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .trial_lease(Duration::from_secs(5)); // the slowest trial call expected
    /// assert!(format!("{builder:?}").contains("trial_lease: Some(5s)"));
    /// ```
    pub fn trial_lease(mut self, lease: Duration) -> Self {
        self.trial_lease = Some(lease);
        self
    }

    /// Whether to listen on pub/sub for other processes' writes (default
    /// `true`). Without it, their transitions show after at most a resync
    /// interval; use it where pub/sub is not allowed.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = breaker::RedisStorage::builder("redis://127.0.0.1:6379/")
    ///     .subscribe(false)
    ///     .resync_interval(Duration::from_millis(250)); // see others' writes sooner
    /// assert!(format!("{builder:?}").contains("subscribe: false"));
    /// ```
    pub fn subscribe(mut self, on: bool) -> Self {
        self.subscribe = on;
        self
    }

    /// The storage. It connects in the background and never fails for
    /// Redis being unreachable: until it can reach Redis, its breakers decide
    /// on the fallback state.
    ///
    /// # Errors
    /// [`RedisStorageError`] for an invalid URL or namespace, a zero timeout
    /// or interval, or when its background threads cannot start.
    ///
    /// # Example
    /// ```
    /// use breaker::redis::RedisStorageError;
    /// use breaker::RedisStorage;
    ///
    /// // Nothing listens on port 1, and building still succeeds.
    /// let redis = RedisStorage::builder("redis://127.0.0.1:1/").build()?;
    /// assert!(!redis.is_shared());
    /// let bad = RedisStorage::builder("http://example.com").build();
    /// assert!(matches!(bad, Err(RedisStorageError::Client(_))));
    /// # Ok::<(), RedisStorageError>(())
    /// ```
    pub fn build(self) -> Result<RedisStorage, RedisStorageError> {
        let nodes = self
            .nodes
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(RedisStorageError::Client)?;
        check_namespace(&self.namespace)?;
        for (what, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("resync_interval", self.resync_interval),
            ("heartbeat_interval", self.heartbeat_interval),
            ("flush_interval", self.flush_interval),
        ] {
            if d.is_zero() {
                return Err(RedisStorageError::ZeroDuration { setting: what });
            }
        }
        #[cfg(feature = "redis-tls")]
        if self.tls.is_some() {
            if let Some(node) = nodes
                .iter()
                .find(|n| !matches!(n.addr(), ::redis::ConnectionAddr::TcpTls { .. }))
            {
                return Err(RedisStorageError::TlsNeedsRediss {
                    node: node.addr().to_string(),
                });
            }
        }
        let nodes = if self.cluster {
            nodes
        } else {
            nodes[..1].to_vec()
        };
        let cfg = Config {
            channel: format!("{}:events", self.namespace),
            nodes,
            namespace: self.namespace,
            fallback_state: self.fallback_state,
            initial_state: self.initial_state,
            cluster: self.cluster,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            resync_interval: self.resync_interval,
            heartbeat_interval: self.heartbeat_interval,
            flush_interval: self.flush_interval,
            subscribe: self.subscribe,
            shape: Shape {
                trial_lease: self.trial_lease,
                key_ttl: self.key_ttl,
            },
            #[cfg(feature = "redis-tls")]
            tls: self.tls,
        };
        Ok(RedisStorage {
            hub: Arc::new(Hub::start(cfg)?),
            slot: OnceLock::new(),
            unbound: MemoryStorage::new(),
        })
    }
}

fn check_namespace(namespace: &str) -> Result<(), RedisStorageError> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 64
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RedisStorageError::Namespace {
            namespace: namespace.to_owned(),
        })
    }
}

/// Why a [`RedisStorage`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStorageError {
    /// The URL or client settings are invalid.
    #[error("invalid Redis connection settings: {0}")]
    Client(#[source] ::redis::RedisError),
    /// No node to connect to.
    #[error("no Redis node given")]
    NoNode,
    /// The namespace has characters other than letters, digits and `-_.`,
    /// is empty or longer than 64.
    #[error("invalid namespace '{namespace}': use 1 to 64 letters, digits, '-', '_' or '.'")]
    Namespace {
        /// The namespace given.
        namespace: String,
    },
    /// A timeout or interval of zero.
    #[error("`{setting}` must be greater than zero")]
    ZeroDuration {
        /// The setting.
        setting: &'static str,
    },
    /// A command of [`Fleet`] failed.
    #[error("Redis command failed: {0}")]
    Redis(#[source] ::redis::RedisError),
    /// A command of [`Fleet`] got no answer in time.
    #[error("Redis did not answer within {after:?}")]
    Timeout {
        /// How long it waited.
        after: Duration,
    },
    /// TLS settings were given for a node whose URL is not `rediss://`.
    #[error("TLS settings need rediss:// URLs, and node {node} is not one")]
    TlsNeedsRediss {
        /// The node's address.
        node: String,
    },
    /// The background runtime or threads could not start.
    #[error("cannot start the Redis storage's background work: {0}")]
    Runtime(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_hash_tag_per_breaker() {
        assert_eq!(state_key("checkout", "db"), "{checkout:db}:state");
        assert_eq!(state_key("n", "a::b"), "{n:a::b}:state");
    }

    #[test]
    fn namespaces_are_checked() {
        assert!(check_namespace("checkout-v2.eu_1").is_ok());
        for bad in ["", "a:b", "a{b", "a b", &"x".repeat(65)] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_are_checked_before_anything_starts() {
        let zero = RedisStorage::builder("redis://127.0.0.1:1/")
            .command_timeout(Duration::ZERO)
            .build();
        assert!(matches!(
            zero,
            Err(RedisStorageError::ZeroDuration {
                setting: "command_timeout"
            })
        ));
        let bad_url = RedisStorage::builder("http://nowhere").build();
        assert!(matches!(bad_url, Err(RedisStorageError::Client(_))));
    }
}
