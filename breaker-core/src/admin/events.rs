//! What the admin router hears: one listener on every breaker of the
//! registry, attached when the first router is made (to the breakers
//! registered before) and as each later one is registered
//! (`registry::watch`). It keeps the last hour's transitions, sends each
//! one to the event streams, and counts calls and transitions for
//! `/metrics`.
//!
//! Successes are counted where no two threads write one cache line: each
//! thread adds to a stripe of its own (the rate windows' lanes and stripes,
//! through a count window of one call that never changes generation), and
//! `/metrics` sums the stripes when it is scraped. Every other outcome
//! already writes shared state, so it is one atomic add.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::breaker::CircuitBreaker;
use crate::error::CircuitBreakerError;
use crate::listener::{Failure, Hooks, Listener};
use crate::registry;
use crate::state::State;
use crate::window::{Kind, Window};

/// How far back the history goes.
pub(crate) const HISTORY: Duration = Duration::from_secs(3_600);
/// The most transitions the history keeps (a storm of manual transitions
/// must not grow it without bound).
const HISTORY_MAX: usize = 10_000;
/// Transitions a slow event stream may fall behind before it is told it
/// missed some.
const BACKLOG: usize = 1_024;

/// A transition, as `/events` sends it and `/history` lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) name: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) at_ms: u64,
}

/// `GET /history`: the last hour's transitions, and since when the hub has
/// listened (nothing before is known).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct History {
    pub(crate) since_ms: u64,
    pub(crate) transitions: Vec<Transition>,
}

/// Calls of one breaker by outcome, and its transitions, since the admin
/// started listening to it.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) success: Successes,
    pub(crate) failure: AtomicU64,
    pub(crate) excluded: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    /// `[from][to]`, by [`index`].
    pub(crate) transitions: [[AtomicU64; 3]; 3],
}

/// A count of successes, one stripe per thread: a success is a plain load
/// and store on the calling thread's own cache line, never a
/// read-modify-write of a line other threads write.
pub(crate) struct Successes(Window);

/// The one generation the window counts in: it is never cleared, so its
/// total only grows.
const GENERATION: u64 = 0;

impl Default for Successes {
    fn default() -> Self {
        Successes(Window::new(Kind::Calls(1)).expect("a count window of 1 call"))
    }
}

impl Successes {
    /// One more success, on this thread's stripe.
    #[inline]
    pub(crate) fn add(&self) {
        self.0.record_success(GENERATION, || Duration::ZERO);
    }

    /// Every success added so far (each thread's stripe, summed): exact
    /// once the adds it should see happened before it.
    pub(crate) fn total(&self) -> u64 {
        self.0.recorded(GENERATION).unwrap_or(0)
    }
}

pub(crate) const STATES: [State; 3] = [State::Closed, State::Open, State::HalfOpen];

pub(crate) fn index(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Everything the routers of this process share.
pub(crate) struct Hub {
    /// When the hub started listening (ms since the Unix epoch): the
    /// history knows nothing before.
    since_ms: u64,
    sender: broadcast::Sender<Transition>,
    history: Mutex<VecDeque<Transition>>,
    /// By name (`http[host-a]` for a key's breaker); the breaker's
    /// listener owns its counters, so a key's entry dies with its breaker
    /// and is swept when the map has doubled since the last sweep.
    counters: RwLock<Tally>,
}

#[derive(Default)]
struct Tally {
    by_name: HashMap<String, Weak<Counters>>,
    /// Entries after the last sweep: the next is due at twice as many.
    swept_at: usize,
}

/// The hub, listening to every breaker of the registry from its first use.
pub(crate) fn hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    static WATCHING: OnceLock<()> = OnceLock::new();
    let shared = HUB.get_or_init(|| Hub {
        since_ms: now_ms(),
        sender: broadcast::channel(BACKLOG).0,
        history: Mutex::new(VecDeque::new()),
        counters: RwLock::new(Tally::default()),
    });
    WATCHING.get_or_init(|| {
        registry::watch(Arc::new(|cb: &CircuitBreaker| shared.attach(cb)));
    });
    shared
}

impl Hub {
    fn attach(&'static self, cb: &CircuitBreaker) {
        let counters = Arc::new(Counters::default());
        {
            let mut tally = self.counters.write();
            tally
                .by_name
                .insert(super::rows::name_of(cb), Arc::downgrade(&counters));
            if tally.by_name.len() >= 2 * tally.swept_at.max(64) {
                tally.by_name.retain(|_, c| c.strong_count() > 0);
                tally.swept_at = tally.by_name.len();
            }
        }
        cb.add_listener(Arc::new(Watch {
            hub: self,
            counters,
        }));
    }

    /// The counters of the breaker named `name`, if the admin listens to it.
    pub(crate) fn counters(&self, name: &str) -> Option<Arc<Counters>> {
        self.counters.read().by_name.get(name)?.upgrade()
    }

    /// A receiver of every transition from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.sender.subscribe()
    }

    /// The transitions of the last hour, oldest first, and since when the
    /// hub has listened.
    pub(crate) fn history(&self) -> History {
        let mut history = self.history.lock();
        forget_old(&mut history);
        History {
            since_ms: self.since_ms,
            transitions: history.iter().cloned().collect(),
        }
    }

    /// Tells the streams and the history of a transition.
    pub(crate) fn publish(&self, transition: Transition) {
        {
            let mut history = self.history.lock();
            history.push_back(transition.clone());
            if history.len() > HISTORY_MAX {
                history.pop_front();
            }
            forget_old(&mut history);
        }
        // No stream listening is not an error.
        let _ = self.sender.send(transition);
    }
}

fn forget_old(history: &mut VecDeque<Transition>) {
    let oldest = now_ms().saturating_sub(HISTORY.as_millis() as u64);
    while history.front().is_some_and(|t| t.at_ms < oldest) {
        history.pop_front();
    }
}

/// The listener the hub attaches to one breaker.
struct Watch {
    hub: &'static Hub,
    counters: Arc<Counters>,
}

impl Listener for Watch {
    /// Not `before_call`; `success` adds to a count no other thread
    /// writes ([`Successes`]).
    fn hooks(&self) -> Hooks {
        Hooks::SUCCESS
            | Hooks::STATE_CHANGE
            | Hooks::FAILURE
            | Hooks::EXCLUDED
            | Hooks::REJECTED
            | Hooks::CANCELLED
    }

    fn success(&self, _: &CircuitBreaker) {
        self.counters.success.add();
    }

    fn state_change(&self, cb: &CircuitBreaker, old: State, new: State) {
        self.counters.transitions[index(old)][index(new)].fetch_add(1, Ordering::Relaxed);
        self.hub.publish(Transition {
            name: super::rows::name_of(cb),
            from: old.to_string(),
            to: new.to_string(),
            at_ms: now_ms(),
        });
    }

    fn failure(&self, _: &CircuitBreaker, _: &Failure<'_>) {
        self.counters.failure.fetch_add(1, Ordering::Relaxed);
    }

    fn excluded(&self, _: &CircuitBreaker, _: &Failure<'_>) {
        self.counters.excluded.fetch_add(1, Ordering::Relaxed);
    }

    fn rejected(&self, _: &CircuitBreaker, _: &CircuitBreakerError) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn cancelled(&self, _: &CircuitBreaker) {
        self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
    }
}
