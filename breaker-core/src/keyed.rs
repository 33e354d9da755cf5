//! Breakers per key: one breaker per host, tenant or endpoint, made on first
//! use from one configuration, bounded in number, and evicted only when
//! evicting loses nothing.
//!
//! A [`KeyedBreakers<K>`] is a group named like a breaker (`"http"`); each
//! key gets a breaker of its own, whose [`name`](CircuitBreaker::name) is
//! the group's and whose [`key`](CircuitBreaker::key) is the key as text.
//! That pair is the one spelling of a keyed breaker everywhere: listeners,
//! [`registry::keys`](crate::registry::keys) and
//! [`registry::get_key`](crate::registry::get_key), and a storage's shared
//! state, which is kept under `name[key]` (`http[host-a]`). Metrics labels
//! and the admin API carry the key as a label of its own (`key="host-a"`)
//! beside `breaker="http"`; every key is a series there, so a group whose
//! keys come from untrusted input (any URL's host) needs a `max_keys` that
//! the metrics backend can afford.
//!
//! ```
//! use breaker::{keyed::KeyedBreakers, State};
//!
//! let http = KeyedBreakers::<String>::builder("http", |b| b.fail_max(2))
//!     .max_keys(1_000)
//!     .build();
//! for _ in 0..2 {
//!     let _ = http.get("sick.example").call(|| Err::<(), _>("refused"));
//! }
//! assert_eq!(http.get("sick.example").current_state(), State::Open);
//! assert_eq!(http.get("well.example").current_state(), State::Closed); // its own breaker
//! assert_eq!(http.get("sick.example").key(), Some("sick.example"));
//! ```
//!
//! # Memory and eviction
//!
//! At most `max_keys` keys are live. A new key at the cap evicts the least
//! recently used **idle** breakers first: idle means closed, no failure
//! counted, no failure or slow call in a rate policy's window (`is_idle`
//! is the one place that says it), and not held by an
//! owned handle ([`KeyedBreakers::handle`], [`registry::get_key`](crate::registry::get_key)).
//! Open and half-open breakers and breakers with failures are never
//! evicted, so flooding a group with fresh keys cannot reset a failing
//! key's count. When nothing is idle at the cap, the new key is served by
//! the group's **overflow breaker** (same settings, [`key`](CircuitBreaker::key)
//! `None`): calls still go through a breaker, shared by every key that finds
//! the group full, until keys become idle again.
//!
//! A key unused for `idle_timeout` whose breaker is idle is retired when the
//! group next adds a key (at most every quarter of `idle_timeout`) or on
//! [`KeyedBreakers::retire_idle`]; no thread runs in the background. Time is
//! read from the breakers' own clock, so a
//! [`ManualClock`](crate::clock::ManualClock) drives it in tests. A hit does
//! not read the clock: it stamps its key with the group's last reading,
//! taken when a key is added or retired and every 1,024 hits on a thread.
//! Recency only chooses which idle breaker goes first, and an idle breaker
//! holds nothing a new one would not, so a stamp a little old costs at
//! most a breaker made anew.
//!
//! # Handles and eviction
//!
//! [`KeyedBreakers::get`] lends the key's breaker for a call (`group.get(&k).call(..)`):
//! no reference count is touched, so threads on one key do not contend. A
//! call that was lent the breaker just before its key was evicted goes on
//! with it; if that call fails, its failure is also recorded on the key's
//! breaker in the group (made anew if need be), so eviction never loses a
//! failure. [`KeyedBreakers::handle`] gives an owned `Arc<CircuitBreaker>`
//! (for `call_async` on a multi-threaded runtime, or to keep): while it is
//! held its key is not evicted, and manual transitions through it act on the
//! group's breaker.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::breaker::{CircuitBreaker, Shared};
use crate::builder::CircuitBreakerBuilder;
use crate::error::ConfigError;
use crate::name::Name;
use crate::state::State;

/// The hasher of a group's map: fast on short keys, seeded per map.
type Hasher = foldhash::fast::RandomState;

/// What a key type needs: hashing for the map, `Clone` to keep a copy with
/// its breaker, `Display` for [`CircuitBreaker::key`].
pub trait Key: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static {}
impl<K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static> Key for K {}

/// A group of breakers, one per key, sharing one configuration; cloning it
/// gives another handle on the same group.
///
/// ```
/// use breaker::keyed::KeyedBreakers;
/// use std::time::Duration;
///
/// let tenants = KeyedBreakers::<u64>::builder("tenants", |b| {
///     b.fail_max(3).reset_timeout(Duration::from_secs(30))
/// })
/// .max_keys(10_000)
/// .idle_timeout(Duration::from_secs(600))
/// .build();
/// assert_eq!(tenants.get(&42).call(|| Ok::<_, &str>("served")).unwrap(), "served");
/// assert_eq!(tenants.len(), 1);
/// ```
pub struct KeyedBreakers<K: Key> {
    group: Arc<Group<K>>,
}

impl<K: Key> Clone for KeyedBreakers<K> {
    fn clone(&self) -> Self {
        KeyedBreakers {
            group: Arc::clone(&self.group),
        }
    }
}

type Configure = dyn Fn(CircuitBreakerBuilder) -> CircuitBreakerBuilder + Send + Sync;

pub(crate) struct Group<K: Key> {
    name: Name,
    configure: Box<Configure>,
    map: papaya::HashMap<K, Slot, Hasher>,
    max_keys: usize,
    /// The idle timeout in milliseconds, 0 for none.
    idle_timeout_ms: u64,
    /// Where keys go when the group is full and nothing is idle; its clock
    /// is the group's clock.
    overflow: CircuitBreaker,
    /// Held while a key is added, evicted or retired: one at a time.
    changes: Mutex<()>,
    /// The clock reading (ms) at which the next sweep for quiet keys is due.
    next_sweep_ms: AtomicU64,
    /// The clock's coarse reading (ms) as last read: when a key is added,
    /// evicted or retired, and every [`READ_CLOCK_EVERY`] hits on a thread.
    /// A hit stamps its key with it, so hits do not read the clock (a
    /// coarse reading alone costs about as much as a whole call).
    now_ms: AtomicU64,
    this: Weak<Group<K>>,
}

/// Hits on a thread between two readings of the clock by a hit.
const READ_CLOCK_EVERY: u32 = 1024;

thread_local! {
    /// Hits this thread may still make before a hit reads the clock.
    static HITS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One key's entry: its breaker and when it was last used.
struct Slot {
    breaker: CircuitBreaker,
    /// The group's recent clock reading (`Group::now_ms`, milliseconds) when
    /// the key was last lent; written only when it changes (at most once a
    /// millisecond), so threads on one key do not write one cache line per
    /// call.
    last_used_ms: AtomicU64,
}

/// A breaker's link to its key, kept in its shared state.
pub(crate) trait KeyLink: Send + Sync {
    /// The key as text.
    fn text(&self) -> &str;
    /// Whether the key was evicted, locked while a key is evicted or pinned
    /// by an owned handle (and while a failure checks it).
    fn evicted(&self) -> &Mutex<bool>;
    /// Records a failure on the key's breaker in the group (made anew if
    /// need be): for a failure on an evicted breaker.
    fn carry_failure(&self);
}

struct Link<K: Key> {
    key: K,
    text: Box<str>,
    evicted: Mutex<bool>,
    group: Weak<Group<K>>,
}

impl<K: Key> KeyLink for Link<K> {
    fn text(&self) -> &str {
        &self.text
    }

    fn evicted(&self) -> &Mutex<bool> {
        &self.evicted
    }

    fn carry_failure(&self) {
        if let Some(group) = self.group.upgrade() {
            let keyed = KeyedBreakers { group };
            let _ = keyed.get(&self.key).call(|| Err::<(), _>(CarriedFailure));
        }
    }
}

/// The failure a group's breaker records for a call that failed on its key's
/// evicted breaker (what a `failure` listener sees).
#[derive(Debug)]
pub struct CarriedFailure;

impl fmt::Display for CarriedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a call failed on this key's evicted breaker")
    }
}

impl std::error::Error for CarriedFailure {}

/// Settings of a [`KeyedBreakers`] group; made by [`KeyedBreakers::builder`].
#[must_use = "a builder does nothing until `build()`"]
pub struct KeyedBuilder<K: Key> {
    name: Cow<'static, str>,
    configure: Box<Configure>,
    max_keys: usize,
    idle_timeout: Option<Duration>,
    _key: PhantomData<fn(K)>,
}

/// What is wrong with a keyed group's settings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyedConfigError {
    /// `max_keys(0)`: a group must hold at least one key.
    #[error("max_keys must be at least 1, got 0")]
    MaxKeys,
    /// The breakers' settings are invalid.
    #[error(transparent)]
    Breaker(#[from] ConfigError),
}

impl<K: Key> KeyedBuilder<K> {
    /// The most keys live at once (default 10,000).
    ///
    /// # Example
    /// ```
    /// use breaker::keyed::KeyedBreakers;
    ///
    /// let hosts = KeyedBreakers::<String>::builder("hosts", |b| b).max_keys(2).build();
    /// for host in ["a", "b", "c"] {
    ///     let _ = hosts.get(host).call(|| Ok::<_, &str>(()));
    /// }
    /// assert_eq!(hosts.len(), 2); // "a" was idle, least recently used: evicted
    /// ```
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n;
        self
    }

    /// How long a key may go unused before its breaker, if idle, is retired
    /// (default: never).
    ///
    /// # Example
    /// ```
    /// use breaker::{clock::ManualClock, keyed::KeyedBreakers};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let hosts = KeyedBreakers::<String>::builder("quiet-hosts", {
    ///     let clock = clock.clone();
    ///     move |b| b.clock(clock.clone())
    /// })
    /// .idle_timeout(Duration::from_secs(60))
    /// .build();
    /// let _ = hosts.get("a").call(|| Ok::<_, &str>(()));
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(hosts.retire_idle(), 1);
    /// assert!(hosts.is_empty());
    /// ```
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    /// The group, or what is wrong with its settings.
    ///
    /// # Errors
    /// [`KeyedConfigError`]: `max_keys(0)`, a breaker setting out of range.
    ///
    /// # Example
    /// ```
    /// use breaker::keyed::{KeyedBreakers, KeyedConfigError};
    /// use breaker::ConfigError;
    ///
    /// let bad = KeyedBreakers::<u32>::builder("ids", |b| b.fail_max(0)).try_build();
    /// assert_eq!(bad.err(), Some(KeyedConfigError::Breaker(ConfigError::FailMax { value: 0 })));
    /// ```
    pub fn try_build(self) -> Result<KeyedBreakers<K>, KeyedConfigError> {
        if self.max_keys == 0 {
            return Err(KeyedConfigError::MaxKeys);
        }
        let name: Name = self.name.into();
        let overflow = (self.configure)(CircuitBreaker::builder(name.as_str())).try_build()?;
        let idle_timeout_ms = self.idle_timeout.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let group = Arc::new_cyclic(|this| Group {
            name,
            configure: self.configure,
            map: papaya::HashMap::builder().hasher(Hasher::default()).build(),
            max_keys: self.max_keys,
            idle_timeout_ms,
            overflow,
            changes: Mutex::new(()),
            next_sweep_ms: AtomicU64::new(0),
            now_ms: AtomicU64::new(0),
            this: this.clone(),
        });
        Ok(KeyedBreakers { group })
    }

    /// The group.
    ///
    /// # Panics
    /// With [`try_build`](Self::try_build)'s error message.
    ///
    /// # Example
    /// ```
    /// let g = breaker::keyed::KeyedBreakers::<u32>::builder("shards", |b| b.fail_max(2)).build();
    /// assert_eq!(g.name(), "shards");
    /// ```
    pub fn build(self) -> KeyedBreakers<K> {
        match self.try_build() {
            Ok(group) => group,
            Err(e) => panic!("{e}"),
        }
    }
}

impl<K: Key> fmt::Debug for KeyedBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("name", &self.name)
            .field("max_keys", &self.max_keys)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<K: Key> KeyedBreakers<K> {
    /// A builder for a group named `name`; `configure` sets up each key's
    /// breaker from `CircuitBreaker::builder(name)` (settings, listeners, a
    /// storage per key, a clock) and runs once per new key.
    ///
    /// # Example
    /// ```
    /// use breaker::keyed::KeyedBreakers;
    /// use breaker::MemoryStorage;
    ///
    /// let g = KeyedBreakers::<String>::builder("api", |b| b.fail_max(3).storage(MemoryStorage::new()))
    ///     .build();
    /// assert_eq!(g.get("x").fail_max(), 3);
    /// ```
    pub fn builder<F>(name: impl Into<Cow<'static, str>>, configure: F) -> KeyedBuilder<K>
    where
        F: Fn(CircuitBreakerBuilder) -> CircuitBreakerBuilder + Send + Sync + 'static,
    {
        KeyedBuilder {
            name: name.into(),
            configure: Box::new(configure),
            max_keys: 10_000,
            idle_timeout: None,
            _key: PhantomData,
        }
    }

    /// The group's name, which each key's breaker has too.
    ///
    /// # Example
    /// ```
    /// let g = breaker::keyed::KeyedBreakers::<u8>::builder("g", |b| b).build();
    /// assert_eq!((g.name(), g.get(&1).name()), ("g", "g"));
    /// ```
    pub fn name(&self) -> &str {
        self.group.name.as_str()
    }

    /// The key's breaker, made on first use, lent for a call: hold it no
    /// longer than the call (see the module's docs for eviction).
    ///
    /// A hit is a lookup in a lock-free map with no lock and no reference
    /// count touched; the key's last-used time is written at most once a
    /// millisecond. When the group is full and nothing is idle, a new key
    /// gets the overflow breaker.
    ///
    /// # Example
    /// ```
    /// use breaker::keyed::KeyedBreakers;
    ///
    /// let hosts = KeyedBreakers::<String>::builder("hosts-get", |b| b.fail_max(1)).build();
    /// let _ = hosts.get("down.example").call(|| Err::<(), _>("refused"));
    /// assert!(hosts.get("down.example").call(|| Ok::<_, &str>(())).unwrap_err().is_open());
    /// assert!(hosts.get("up.example").call(|| Ok::<_, &str>(())).is_ok());
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Keyed<'_>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let group = &*self.group;
        let guard = group.map.guard();
        if let Some(slot) = group.map.get(key, &guard) {
            slot.touch(group.recent_ms());
            let breaker = NonNull::from(&slot.breaker);
            return Keyed::lent(breaker, guard);
        }
        drop(guard);
        group.add(key)
    }

    /// An owned handle on the key's breaker (made on first use): for
    /// `call_async` on a multi-threaded runtime, or to keep. While it is
    /// held, the key is not evicted.
    ///
    /// # Example
    /// ```
    /// use breaker::keyed::KeyedBreakers;
    ///
    /// let hosts = KeyedBreakers::<String>::builder("hosts-handle", |b| b).max_keys(1).build();
    /// let a = hosts.handle("a");
    /// let _ = hosts.get("b").call(|| Ok::<_, &str>(())); // "a" is held: "b" overflows
    /// assert_eq!(hosts.keys(), ["a"]);
    /// a.open(); // acts on the group's breaker for "a"
    /// assert!(hosts.get("a").call(|| Ok::<_, &str>(())).unwrap_err().is_open());
    /// ```
    pub fn handle<Q>(&self, key: &Q) -> Arc<CircuitBreaker>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        loop {
            let lent = self.get(key);
            if let Some(owned) = pin(&lent) {
                return owned;
            }
            // Evicted between the lookup and the pin: look again.
        }
    }

    /// The overflow breaker: what new keys get while the group is full and
    /// no key is idle.
    ///
    /// # Example
    /// ```
    /// let g = breaker::keyed::KeyedBreakers::<u8>::builder("ov", |b| b).build();
    /// assert_eq!((g.overflow().name(), g.overflow().key()), ("ov", None));
    /// ```
    pub fn overflow(&self) -> &CircuitBreaker {
        &self.group.overflow
    }

    /// Live keys.
    ///
    /// # Example
    /// ```
    /// let g = breaker::keyed::KeyedBreakers::<u8>::builder("n", |b| b).build();
    /// let _ = g.get(&1);
    /// assert_eq!(g.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.group.map.len()
    }

    /// Whether no key is live.
    ///
    /// # Example
    /// ```
    /// let g = breaker::keyed::KeyedBreakers::<u8>::builder("e", |b| b).build();
    /// assert!(g.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live keys as text ([`CircuitBreaker::key`]), sorted.
    ///
    /// # Example
    /// ```
    /// let g = breaker::keyed::KeyedBreakers::<u16>::builder("ports", |b| b).build();
    /// let _ = (g.get(&443), g.get(&80));
    /// assert_eq!(g.keys(), ["443", "80"]);
    /// ```
    pub fn keys(&self) -> Vec<String> {
        self.group.keys()
    }

    /// Retires now every idle key unused for `idle_timeout`; how many.
    /// (Also done when a key is added, at most every quarter of the timeout.)
    ///
    /// # Example
    /// ```
    /// let g = breaker::keyed::KeyedBreakers::<u8>::builder("r", |b| b).build();
    /// let _ = g.get(&1);
    /// assert_eq!(g.retire_idle(), 0); // no idle_timeout set
    /// ```
    pub fn retire_idle(&self) -> usize {
        let group = &*self.group;
        let _changes = group.changes.lock();
        let now = group.now_ms();
        group.retire_quiet(now)
    }

    /// Resets every live key's breaker and the overflow breaker.
    ///
    /// # Example
    /// ```
    /// use breaker::State;
    ///
    /// let g = breaker::keyed::KeyedBreakers::<u8>::builder("rs", |b| b).build();
    /// g.get(&1).open();
    /// g.reset_all();
    /// assert_eq!(g.get(&1).current_state(), State::Closed);
    /// ```
    pub fn reset_all(&self) {
        self.group.reset_all();
    }

    pub(crate) fn view(&self) -> Arc<dyn crate::registry::GroupView> {
        self.group.clone()
    }
}

impl<K: Key> fmt::Debug for KeyedBreakers<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreakers")
            .field("name", &self.name())
            .field("keys", &self.len())
            .field("max_keys", &self.group.max_keys)
            .finish_non_exhaustive()
    }
}

/// An owned handle on `cb`, unless its key was evicted (checked under the
/// key's lock, which eviction holds while it decides).
fn pin(cb: &CircuitBreaker) -> Option<Arc<CircuitBreaker>> {
    let owned = || Arc::new(CircuitBreaker::from_shared(Arc::clone(&cb.shared)));
    match &cb.shared.key {
        None => Some(owned()), // the overflow breaker
        Some(link) => {
            let evicted = link.evicted().lock();
            (!*evicted).then(owned)
        }
    }
}

/// Whether evicting `cb` loses nothing: closed, no failure counted, and
/// nobody else holds its state (no owned handle, no storage operation in
/// flight), and no failure or slow call in its rate policy's window.
pub(crate) fn is_idle(cb: &CircuitBreaker) -> bool {
    if Arc::strong_count(&cb.shared) != 1 {
        return false;
    }
    let snap = cb.snapshot();
    snap.state == State::Closed && snap.fail_counter == 0 && !snap.trial && cb.window_is_quiet()
}

impl Slot {
    #[inline(always)]
    fn touch(&self, now_ms: u64) {
        if self.last_used_ms.load(Ordering::Relaxed) != now_ms {
            self.last_used_ms.store(now_ms, Ordering::Relaxed);
        }
    }
}

impl<K: Key> Group<K> {
    /// The clock's coarse reading in milliseconds, kept as `now_ms`.
    fn now_ms(&self) -> u64 {
        let now = self.overflow.shared.clock.coarse_nanos().0 / 1_000_000;
        if self.now_ms.load(Ordering::Relaxed) < now {
            self.now_ms.store(now, Ordering::Relaxed);
        }
        now
    }

    /// `now_ms` for a hit: the last reading, read anew every
    /// [`READ_CLOCK_EVERY`] hits on this thread. A key's recency is only a
    /// choice of which idle breaker to evict first (an idle breaker holds
    /// nothing a new one would not), so a reading a little old is enough.
    #[inline(always)]
    fn recent_ms(&self) -> u64 {
        let due = HITS.with(|hits| {
            let left = hits.get();
            hits.set(left.wrapping_sub(1));
            left == 0
        });
        if due {
            self.read_clock_for_hits()
        } else {
            self.now_ms.load(Ordering::Relaxed)
        }
    }

    #[cold]
    #[inline(never)]
    fn read_clock_for_hits(&self) -> u64 {
        HITS.with(|hits| hits.set(READ_CLOCK_EVERY - 1));
        self.now_ms()
    }

    /// The slow path of `get`: the key is not in the map (yet).
    #[cold]
    #[inline(never)]
    fn add<Q>(&self, key: &Q) -> Keyed<'_>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let guard = self.map.guard();
        let _changes = self.changes.lock();
        let now = self.now_ms();
        if let Some(slot) = self.map.get(key, &guard) {
            slot.touch(now);
            let breaker = NonNull::from(&slot.breaker);
            return Keyed::lent(breaker, guard);
        }
        if self.idle_timeout_ms > 0 && now >= self.next_sweep_ms.load(Ordering::Relaxed) {
            self.retire_quiet(now);
            let every = (self.idle_timeout_ms / 4).max(1);
            self.next_sweep_ms.store(now + every, Ordering::Relaxed);
        }
        if self.map.len() >= self.max_keys {
            // Evict a batch at once, so a stream of new keys at the cap
            // scans the map once per batch rather than once per key.
            self.evict((self.max_keys / 32).max(1));
            if self.map.len() >= self.max_keys {
                return Keyed::overflow(&self.overflow);
            }
        }
        let key = key.to_owned();
        let link = Link {
            text: key.to_string().into_boxed_str(),
            key: key.clone(),
            evicted: Mutex::new(false),
            group: self.this.clone(),
        };
        let mut builder = (self.configure)(CircuitBreaker::builder(self.name.as_str()));
        builder.key = Some(Box::new(link));
        let Ok(breaker) = builder.try_build() else {
            // The same function built the overflow breaker: only a function
            // that changes its mind gets here.
            return Keyed::overflow(&self.overflow);
        };
        let slot = Slot {
            breaker,
            last_used_ms: AtomicU64::new(now),
        };
        let breaker = NonNull::from(&self.map.get_or_insert(key, slot, &guard).breaker);
        Keyed::lent(breaker, guard)
    }

    /// Evicts up to `n` idle breakers, least recently used first. The
    /// caller holds `changes`.
    fn evict(&self, n: usize) -> usize {
        let guard = self.map.guard();
        let mut idle: Vec<(u64, &K, &Slot)> = self
            .map
            .iter(&guard)
            .filter(|(_, slot)| is_idle(&slot.breaker))
            .map(|(k, slot)| (slot.last_used_ms.load(Ordering::Relaxed), k, slot))
            .collect();
        if idle.len() > n {
            idle.select_nth_unstable_by_key(n, |(used, _, _)| *used);
            idle.truncate(n);
        }
        idle.into_iter()
            .filter(|(_, k, slot)| self.try_evict(k, slot, &guard))
            .count()
    }

    /// Retires idle breakers unused for the idle timeout. The caller holds
    /// `changes`.
    fn retire_quiet(&self, now: u64) -> usize {
        if self.idle_timeout_ms == 0 {
            return 0;
        }
        let guard = self.map.guard();
        let quiet: Vec<(&K, &Slot)> = self
            .map
            .iter(&guard)
            .filter(|(_, slot)| {
                now.saturating_sub(slot.last_used_ms.load(Ordering::Relaxed))
                    >= self.idle_timeout_ms
            })
            .collect();
        quiet
            .into_iter()
            .filter(|(k, slot)| self.try_evict(k, slot, &guard))
            .count()
    }

    /// Removes `slot` if its breaker is idle, deciding under its key's lock
    /// (which `pin` and a failure's check take too).
    fn try_evict(&self, key: &K, slot: &Slot, guard: &papaya::LocalGuard<'_>) -> bool {
        let Some(link) = &slot.breaker.shared.key else {
            return false;
        };
        let mut evicted = link.evicted().lock();
        if !is_idle(&slot.breaker) {
            return false;
        }
        *evicted = true;
        self.map.remove(key, guard);
        true
    }

    fn keys(&self) -> Vec<String> {
        let guard = self.map.guard();
        let mut keys: Vec<String> = self
            .map
            .values(&guard)
            .filter_map(|slot| slot.breaker.key().map(str::to_owned))
            .collect();
        keys.sort_unstable();
        keys
    }

    fn reset_all(&self) {
        let guard = self.map.guard();
        for slot in self.map.values(&guard) {
            slot.breaker.reset();
        }
        self.overflow.reset();
    }
}

impl<K: Key> crate::registry::GroupView for Group<K> {
    fn keys(&self) -> Vec<String> {
        Group::keys(self)
    }

    fn find(&self, key: &str) -> Option<Arc<CircuitBreaker>> {
        let guard = self.map.guard();
        let found = self
            .map
            .values(&guard)
            .find(|slot| slot.breaker.key() == Some(key))?;
        pin(&found.breaker)
    }

    fn reset_all(&self) {
        Group::reset_all(self);
    }
}

/// A key's breaker, lent by [`KeyedBreakers::get`] for a call; it derefs to
/// [`CircuitBreaker`]. It keeps the group's map from freeing the breaker
/// while it lives (it is not `Send`: for async calls on a multi-threaded
/// runtime use [`KeyedBreakers::handle`]).
///
/// ```
/// use breaker::keyed::KeyedBreakers;
///
/// let g = KeyedBreakers::<String>::builder("lent", |b| b).build();
/// let cb = g.get("k");
/// assert_eq!(cb.key(), Some("k"));
/// assert_eq!(cb.call(|| Ok::<_, &str>(1)).unwrap(), 1);
/// ```
pub struct Keyed<'a> {
    breaker: NonNull<CircuitBreaker>,
    /// Keeps the map's entry (and the breaker in it) from being freed.
    _guard: Option<papaya::LocalGuard<'a>>,
    _lent: PhantomData<&'a CircuitBreaker>,
}

impl<'a> Keyed<'a> {
    #[inline(always)]
    /// `breaker` was read from the group's map under `guard`.
    fn lent(breaker: NonNull<CircuitBreaker>, guard: papaya::LocalGuard<'a>) -> Self {
        Keyed {
            breaker,
            _guard: Some(guard),
            _lent: PhantomData,
        }
    }

    fn overflow(breaker: &'a CircuitBreaker) -> Self {
        Keyed {
            breaker: NonNull::from(breaker),
            _guard: None,
            _lent: PhantomData,
        }
    }
}

impl Deref for Keyed<'_> {
    type Target = CircuitBreaker;

    #[inline(always)]
    #[allow(unsafe_code)]
    fn deref(&self) -> &CircuitBreaker {
        // SAFETY: `breaker` points either at the group's overflow breaker,
        // which lives as long as the group, borrowed for `'a`; or at the
        // value of an entry read from the group's papaya map under `_guard`.
        // papaya frees a removed entry only once every guard that was
        // active when it was removed is dropped (its reclamation is
        // epoch-based: `HashMap::get` returns `&'g V` valid for the guard's
        // life), and `_guard` is dropped only with `self`, so the pointee
        // outlives every reference this returns. Moving a `LocalGuard` does
        // not end its protection. Exercised by `tests/keyed.rs`
        // (`a_lent_breaker_outlives_its_eviction`), which evicts and
        // reclaims keys while a lent breaker is used.
        unsafe { self.breaker.as_ref() }
    }
}

impl fmt::Debug for Keyed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl CircuitBreaker {
    /// The key of a breaker in a [`KeyedBreakers`] group, as text (the key's
    /// `Display`); `None` for a plain breaker and a group's overflow
    /// breaker. With [`name`](Self::name), the group's name, it tells which
    /// breaker a listener hears.
    ///
    /// # Example
    /// ```
    /// use breaker::{keyed::KeyedBreakers, CircuitBreaker};
    ///
    /// let g = KeyedBreakers::<String>::builder("http", |b| b).build();
    /// assert_eq!((g.get("host-a").name(), g.get("host-a").key()), ("http", Some("host-a")));
    /// assert_eq!(CircuitBreaker::new("db").key(), None);
    /// ```
    pub fn key(&self) -> Option<&str> {
        self.shared.key.as_deref().map(KeyLink::text)
    }

    /// A failure on the breaker of an evicted key is carried to the key's
    /// breaker in the group, so eviction never loses a failure. Inline: a
    /// breaker outside a group pays one load and branch per failure.
    #[inline(always)]
    pub(crate) fn carry_if_evicted(&self) {
        if let Some(link) = &self.shared.key {
            carry_if_evicted(&**link);
        }
    }
}

#[cold]
#[inline(never)]
fn carry_if_evicted(link: &dyn KeyLink) {
    let evicted = *link.evicted().lock();
    if evicted {
        link.carry_failure();
    }
}

impl Shared {
    /// The name a storage keeps this breaker's state under: `name`, or
    /// `name[key]` for a keyed breaker.
    pub(crate) fn storage_name(&self) -> Arc<str> {
        match &self.key {
            None => self.name.as_str().into(),
            Some(link) => format!("{}[{}]", self.name.as_str(), link.text()).into(),
        }
    }
}

/// A value that names a key of a group keyed by `String`: what
/// `#[circuit_breaker(key = ..)]` takes. The key is the value's text, found
/// without allocating for strings, integers, `bool` and `char`.
///
/// Implemented for `str`, `String`, references, the integer types, `bool`,
/// `char`, `Option<T>` (`None` is the empty key) and tuples of up to four
/// (their parts joined by `,`); implement it for a type of your own to use
/// it as a key.
///
/// ```
/// use breaker::keyed::ToKey;
///
/// assert_eq!(("eu", 7u16).with_key(str::to_owned), "eu,7");
/// assert_eq!(Some("host-a").with_key(str::len), 6);
/// assert_eq!(None::<&str>.with_key(str::to_owned), "");
/// ```
pub trait ToKey {
    /// Calls `f` with the key's text.
    fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R;
}

impl ToKey for str {
    fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        f(self)
    }
}

impl ToKey for String {
    fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        f(self)
    }
}

impl<T: ToKey + ?Sized> ToKey for &T {
    fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        (**self).with_key(f)
    }
}

impl<T: ToKey + ?Sized> ToKey for &mut T {
    fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        (**self).with_key(f)
    }
}

impl<T: ToKey + ?Sized> ToKey for Box<T> {
    fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        (**self).with_key(f)
    }
}

impl<T: ToKey> ToKey for Option<T> {
    fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Some(key) => key.with_key(f),
            None => f(""),
        }
    }
}

/// Formats into a buffer on the stack: the text of a number or a `char`.
struct StackText {
    bytes: [u8; 48],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn with_display<R>(value: &dyn fmt::Display, f: impl FnOnce(&str) -> R) -> R {
    use fmt::Write as _;
    let mut text = StackText {
        bytes: [0; 48],
        len: 0,
    };
    match write!(text, "{value}") {
        // Only whole `str`s were copied in: the bytes are UTF-8.
        Ok(()) => f(std::str::from_utf8(&text.bytes[..text.len]).unwrap_or_default()),
        Err(_) => f(&value.to_string()),
    }
}

macro_rules! display_keys {
    ($($t:ty),*) => {$(
        impl ToKey for $t {
            fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
                with_display(self, f)
            }
        }
    )*};
}

display_keys!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char);

macro_rules! tuple_keys {
    ($($name:ident)+) => {
        impl<$($name: ToKey),+> ToKey for ($($name,)+) {
            #[allow(non_snake_case)]
            fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
                let ($($name,)+) = self;
                let mut text = String::new();
                let mut first = true;
                $(
                    $name.with_key(|part| {
                        if !first {
                            text.push(',');
                        }
                        text.push_str(part);
                    });
                    first = false;
                )+
                let _ = first;
                f(&text)
            }
        }
    };
}

tuple_keys!(A);
tuple_keys!(A B);
tuple_keys!(A B C);
tuple_keys!(A B C D);
