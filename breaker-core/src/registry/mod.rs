//! The process-wide registry of named breakers.
//!
//! Breakers declared with `#[circuit_breaker]` are registered before their
//! function is first called; others are added with [`register`].
//!
//! A declared name whose attributes cannot make a breaker (two of them give
//! one setting different values, or building it fails) fails alone, where
//! it is used: its functions and [`get`] panic with the reason, [`try_get`]
//! returns `None`, [`register`] refuses it, [`names`] and [`reset_all`] skip
//! it, and [`declaration_errors`] lists it. Every other breaker keeps
//! working.
//!
//! ```
//! use breaker::{registry, CircuitBreaker, State};
//!
//! let cb = registry::register(CircuitBreaker::new("registry-doc")).unwrap();
//! cb.open();
//! assert_eq!(registry::get("registry-doc").current_state(), State::Open);
//! registry::reset_all();
//! assert_eq!(registry::get("registry-doc").current_state(), State::Closed);
//! ```

use std::collections::btree_map::{BTreeMap, Entry as MapEntry};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::breaker::CircuitBreaker;

#[cfg(feature = "serde")]
mod configure;
pub(crate) mod declared;
mod groups;
mod isolate;

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use configure::configure;
#[cfg(feature = "admin")]
pub(crate) use groups::{find_keyed, visit_groups};
pub use groups::{get_key, groups, keys, register_keyed};
pub(crate) use groups::{group_errors, reset_groups, GroupView};

pub use isolate::{isolate, Isolated, Isolation, IsolationGuard};

use declared::Declaration;

/// What a name stands for: a breaker, or the reason its declarations
/// cannot make one.
enum Entry {
    Breaker(Arc<CircuitBreaker>),
    Failed(String),
}

impl Entry {
    fn new(built: Result<CircuitBreaker, String>) -> Self {
        match built {
            Ok(cb) => Entry::Breaker(Arc::new(cb)),
            Err(message) => Entry::Failed(message),
        }
    }

    fn breaker(&self) -> Result<Arc<CircuitBreaker>, &str> {
        match self {
            Entry::Breaker(cb) => Ok(Arc::clone(cb)),
            Entry::Failed(message) => Err(message),
        }
    }
}

type Map = BTreeMap<String, Entry>;

/// The registry, with every declared breaker in it. Its start never panics:
/// a declaration that fails is kept as its error.
fn map() -> &'static RwLock<Map> {
    static MAP: OnceLock<RwLock<Map>> = OnceLock::new();
    MAP.get_or_init(|| {
        let map = declared::declare_all()
            .into_iter()
            .map(|(name, built)| (name.to_owned(), Entry::new(built)))
            .collect();
        RwLock::new(map)
    })
}

/// Why the registry refused a name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Another breaker has this name.
    #[error("a circuit breaker named '{0}' is already registered")]
    NameTaken(String),
    /// The name is declared with `#[circuit_breaker]`, but its declarations
    /// cannot make a breaker: two of them give one setting different values,
    /// or building it failed. The message says which and where.
    #[error("{message}")]
    Declaration {
        /// The declared name.
        name: String,
        /// The reason, naming the functions.
        message: String,
    },
}

/// The breaker named `name`.
///
/// # Panics
/// If there is none; the message lists the names that are registered. If
/// the name is declared but its declarations cannot make a breaker, with
/// the reason (see [`declaration_errors`]). Use [`try_get`] to get an
/// `Option` instead.
///
/// # Example
/// ```
/// use breaker::{registry, CircuitBreaker};
/// use std::sync::Arc;
///
/// let registered = registry::register(CircuitBreaker::new("get-doc")).unwrap();
/// let found = registry::get("get-doc");
/// assert!(Arc::ptr_eq(&found, &registered));
/// ```
///
/// ```should_panic
/// // panics: "no circuit breaker named 'nowhere' is registered; known breakers: [..]"
/// breaker::registry::get("nowhere");
/// ```
pub fn get(name: &str) -> Arc<CircuitBreaker> {
    if let Some(cb) = isolated(name) {
        return cb;
    }
    let found = map()
        .read()
        .get(name)
        .map(|entry| entry.breaker().map_err(str::to_owned));
    if let Some(found) = found {
        return found.unwrap_or_else(|message| panic!("{message}"));
    }
    panic!(
        "no circuit breaker named '{name}' is registered; known breakers: [{}]",
        names().join(", ")
    )
}

/// The breaker named `name`, if there is one: `None` for an unknown name,
/// and for a declared name whose declarations cannot make a breaker (the
/// reason is in [`declaration_errors`]).
///
/// # Example
/// ```
/// use breaker::{registry, CircuitBreaker};
///
/// assert!(registry::try_get("try-get-doc").is_none());
/// registry::register(CircuitBreaker::new("try-get-doc")).unwrap();
/// assert_eq!(registry::try_get("try-get-doc").unwrap().name(), "try-get-doc");
/// ```
pub fn try_get(name: &str) -> Option<Arc<CircuitBreaker>> {
    if let Some(cb) = isolated(name) {
        return Some(cb);
    }
    map().read().get(name)?.breaker().ok()
}

/// Adds `breaker` under its name and returns it shared.
///
/// # Errors
/// [`RegistryError::NameTaken`] if a breaker with that name is registered;
/// [`RegistryError::Declaration`] if the name is declared with
/// `#[circuit_breaker]` but its declarations cannot make a breaker (the
/// name stays theirs). The registry is unchanged.
///
/// # Example
/// ```
/// use breaker::registry::{self, RegistryError};
/// use breaker::CircuitBreaker;
///
/// let cb = registry::register(CircuitBreaker::builder("register-doc").fail_max(3).build())?;
/// assert_eq!(cb.fail_max(), 3);
///
/// let again = registry::register(CircuitBreaker::new("register-doc"));
/// assert_eq!(again.unwrap_err(), RegistryError::NameTaken("register-doc".into()));
/// assert_eq!(registry::get("register-doc").fail_max(), 3); // the first one stays
/// # Ok::<(), RegistryError>(())
/// ```
pub fn register(breaker: CircuitBreaker) -> Result<Arc<CircuitBreaker>, RegistryError> {
    let mut map = map().write();
    match map.entry(breaker.name().to_owned()) {
        MapEntry::Occupied(e) => match e.get() {
            Entry::Breaker(_) => Err(RegistryError::NameTaken(e.key().clone())),
            Entry::Failed(message) => Err(RegistryError::Declaration {
                name: e.key().clone(),
                message: message.clone(),
            }),
        },
        MapEntry::Vacant(e) => {
            let cb = Arc::new(breaker);
            e.insert(Entry::Breaker(Arc::clone(&cb)));
            #[cfg(feature = "admin")]
            let watchers = watchers().read().clone();
            drop(map);
            #[cfg(feature = "admin")]
            for watcher in watchers {
                watcher(&cb);
            }
            Ok(cb)
        }
    }
}

/// What [`watch`] calls with each breaker of the registry: registered
/// breakers, and every breaker of a registered keyed group (each group's
/// overflow breaker, and each key's as the key is made).
#[cfg(feature = "admin")]
pub(crate) type Watcher = Arc<dyn Fn(&CircuitBreaker) + Send + Sync>;

#[cfg(feature = "admin")]
fn watchers() -> &'static RwLock<Vec<Watcher>> {
    static WATCHERS: OnceLock<RwLock<Vec<Watcher>>> = OnceLock::new();
    WATCHERS.get_or_init(Default::default)
}

/// The watchers, read-locked: a keyed group holds this while it adds a
/// key, so a watcher being added either finds the key in the group or is
/// called with it by the group.
#[cfg(feature = "admin")]
pub(crate) fn watchers_of_new_keys() -> parking_lot::RwLockReadGuard<'static, Vec<Watcher>> {
    watchers().read()
}

/// Calls `watcher` now with every breaker of the registry (registered
/// breakers, and every breaker of the registered keyed groups), and from
/// then on with each breaker registered and each key a registered group
/// makes: every breaker once, none missed (the listing happens under the
/// registry's and the watchers' write locks, which registering and adding
/// a key take). For the admin router.
#[cfg(feature = "admin")]
pub(crate) fn watch(watcher: Watcher) {
    let map = map().write();
    let mut watchers = watchers().write();
    for cb in map.values().filter_map(|entry| entry.breaker().ok()) {
        watcher(&cb);
    }
    groups::visit_groups_locked(&mut |cb| watcher(cb));
    watchers.push(watcher);
}

/// The names of all registered breakers, sorted: every name [`get`]
/// returns a breaker for. Declared names whose declarations cannot make a
/// breaker are not among them; [`declaration_errors`] lists those.
///
/// # Example
/// ```
/// use breaker::{registry, CircuitBreaker};
///
/// registry::register(CircuitBreaker::new("names-doc-b")).unwrap();
/// registry::register(CircuitBreaker::new("names-doc-a")).unwrap();
/// let names = registry::names();
/// let ours: Vec<_> = names.iter().filter(|n| n.starts_with("names-doc-")).collect();
/// assert_eq!(ours, ["names-doc-a", "names-doc-b"]);
/// ```
pub fn names() -> Vec<String> {
    map()
        .read()
        .iter()
        .filter(|(_, entry)| matches!(entry, Entry::Breaker(_)))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Every declared name whose `#[circuit_breaker]` declarations cannot make
/// a breaker, sorted by name, as [`RegistryError::Declaration`]s. Empty in
/// a healthy program: a start-up check or a test can assert it.
///
/// ```
/// assert_eq!(breaker::registry::declaration_errors(), []);
/// ```
pub fn declaration_errors() -> Vec<RegistryError> {
    map()
        .read()
        .iter()
        .filter_map(|(name, entry)| match entry {
            Entry::Failed(message) => Some(RegistryError::Declaration {
                name: name.clone(),
                message: message.clone(),
            }),
            Entry::Breaker(_) => None,
        })
        .chain(group_errors())
        .collect()
}

/// Resets every registered breaker: closed, counters zero.
///
/// # Example
/// ```
/// use breaker::{registry, CircuitBreaker, State};
///
/// let a = registry::register(CircuitBreaker::new("reset-all-doc-a")).unwrap();
/// let b = registry::register(CircuitBreaker::new("reset-all-doc-b")).unwrap();
/// a.open();
/// let _ = b.call(|| Err::<(), _>("refused"));
/// registry::reset_all();
/// assert_eq!(a.current_state(), State::Closed);
/// assert_eq!(b.fail_counter(), 0);
/// ```
pub fn reset_all() {
    let all: Vec<_> = map()
        .read()
        .values()
        .filter_map(|entry| entry.breaker().ok())
        .collect();
    for cb in all {
        cb.reset();
    }
    reset_groups();
}

/// Resets the breaker named `name` (closed, counters zero), the current
/// [isolated](Isolation) instance in an isolated scope.
///
/// # Panics
/// As [`get`]: when no breaker has that name, or its declarations fail.
///
/// ```
/// use breaker::{registry, CircuitBreaker, State};
///
/// registry::register(CircuitBreaker::new("reset-doc")).unwrap().open();
/// registry::reset("reset-doc");
/// assert_eq!(registry::get("reset-doc").current_state(), State::Closed);
/// ```
pub fn reset(name: &str) {
    get(name).reset();
}

/// A handle on the current scope's isolated instance of `name`, if any.
fn isolated(name: &str) -> Option<Arc<CircuitBreaker>> {
    if !isolate::active() {
        return None;
    }
    let cb = isolate::declared(name)?;
    Some(Arc::new(CircuitBreaker::from_shared(Arc::clone(
        &cb.shared,
    ))))
}

/// The breaker a `#[circuit_breaker]` declaration names, from the registry
/// (where every declaration was registered at start-up), or built from this
/// declaration alone if link-time registration missed it.
///
/// # Panics
/// When the name's declarations cannot make a breaker, with the reason.
fn declared(declaration: &'static Declaration) -> Arc<CircuitBreaker> {
    let lookup = |map: &Map| {
        map.get(declaration.name)
            .map(|entry| entry.breaker().map_err(str::to_owned))
    };
    let found = lookup(&map().read());
    let result = found.unwrap_or_else(|| {
        let mut map = map().write();
        lookup(&map).unwrap_or_else(|| {
            let entry = Entry::new(declared::build(&[declaration]));
            let result = entry.breaker().map_err(str::to_owned);
            map.insert(declaration.name.to_owned(), entry);
            #[cfg(feature = "admin")]
            if let Ok(cb) = &result {
                for watcher in watchers().read().iter() {
                    watcher(cb);
                }
            }
            result
        })
    });
    result.unwrap_or_else(|message| panic!("{message}"))
}
