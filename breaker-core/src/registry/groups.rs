//! Keyed groups ([`KeyedBreakers`]) in the registry: listed by name with
//! their live keys, one key's breaker looked up for ops.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use super::RegistryError;
use crate::breaker::CircuitBreaker;
use crate::keyed::{Key, KeyedBreakers};

/// What the registry sees of a keyed group, whatever its key type.
pub(crate) trait GroupView: Send + Sync {
    fn keys(&self) -> Vec<String>;
    fn find(&self, key: &str) -> Option<Arc<CircuitBreaker>>;
    fn reset_all(&self);
    /// Calls `f` with the overflow breaker, then each live key's breaker
    /// (lent under the map's guard: no handle is made, nothing is pinned).
    #[cfg(feature = "admin")]
    fn visit(&self, f: &mut dyn FnMut(&CircuitBreaker));
    /// An owned handle on the overflow breaker.
    #[cfg(feature = "admin")]
    fn overflow(&self) -> Arc<CircuitBreaker>;
    /// From now on, each new key's breaker goes to the registry's watchers.
    #[cfg(feature = "admin")]
    fn watched(&self);
}

type Groups = BTreeMap<String, Arc<dyn GroupView>>;

/// The groups declared with `#[circuit_breaker(key = ..)]`, built once.
type Declared = BTreeMap<&'static str, Result<KeyedBreakers<String>, String>>;

fn declared_groups() -> &'static Declared {
    static DECLARED: OnceLock<Declared> = OnceLock::new();
    DECLARED.get_or_init(super::declared::keyed_all)
}

fn groups_map() -> &'static RwLock<Groups> {
    static GROUPS: OnceLock<RwLock<Groups>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let declared: Groups = declared_groups()
            .iter()
            .filter_map(|(name, group)| Some(((*name).to_owned(), group.as_ref().ok()?.view())))
            .collect();
        // No watcher can exist yet: `watch` lists the groups through this
        // map, so it is made before any watcher is added.
        #[cfg(feature = "admin")]
        for group in declared.values() {
            group.watched();
        }
        RwLock::new(declared)
    })
}

/// The declared group `name`: `None` if no attribute declares it with `key`.
pub(crate) fn declared_group(name: &str) -> Option<Result<KeyedBreakers<String>, String>> {
    let _ = groups_map(); // listed before first use
    declared_groups().get(name).cloned()
}

/// Registers a keyed group under its name (a name no breaker or group has).
///
/// # Errors
/// [`RegistryError::NameTaken`] when a breaker or a group has the name.
///
/// # Example
/// ```
/// use breaker::{keyed::KeyedBreakers, registry};
///
/// let http = KeyedBreakers::<String>::builder("http-doc", |b| b.fail_max(2)).build();
/// registry::register_keyed(&http).unwrap();
/// let _ = http.get("host-a").call(|| Ok::<_, &str>(()));
/// assert_eq!(registry::keys("http-doc"), Some(vec!["host-a".to_owned()]));
/// assert!(registry::register_keyed(&http).is_err()); // taken
/// ```
pub fn register_keyed<K: Key>(group: &KeyedBreakers<K>) -> Result<(), RegistryError> {
    let name = group.name().to_owned();
    if super::try_get(&name).is_some() {
        return Err(RegistryError::NameTaken(name));
    }
    // The watchers' lock first (as `watch` takes it), so a watcher sees the
    // group's breakers here or hears of them from `watch`, not both.
    #[cfg(feature = "admin")]
    let watchers = super::watchers().write();
    let mut groups = groups_map().write();
    if groups.contains_key(&name) {
        return Err(RegistryError::NameTaken(name));
    }
    let view = group.view();
    #[cfg(feature = "admin")]
    {
        view.watched();
        for watcher in watchers.iter() {
            view.visit(&mut |cb| watcher(cb));
        }
    }
    groups.insert(name, view);
    Ok(())
}

/// The names of the registered keyed groups, sorted.
///
/// # Example
/// ```
/// use breaker::{keyed::KeyedBreakers, registry};
///
/// let g = KeyedBreakers::<u32>::builder("groups-doc", |b| b).build();
/// registry::register_keyed(&g).unwrap();
/// assert!(registry::groups().contains(&"groups-doc".to_owned()));
/// ```
pub fn groups() -> Vec<String> {
    groups_map().read().keys().cloned().collect()
}

/// The live keys of the group `name` ([`CircuitBreaker::key`]), sorted;
/// `None` if no group has that name.
///
/// # Example
/// ```
/// use breaker::{keyed::KeyedBreakers, registry};
///
/// let g = KeyedBreakers::<u32>::builder("keys-doc", |b| b).build();
/// registry::register_keyed(&g).unwrap();
/// let _ = (g.get(&7), g.get(&12));
/// assert_eq!(registry::keys("keys-doc").unwrap(), ["12", "7"]);
/// assert_eq!(registry::keys("no-such-group"), None);
/// ```
pub fn keys(name: &str) -> Option<Vec<String>> {
    if let Some(group) = isolated(name) {
        return Some(group.keys());
    }
    let group = groups_map().read().get(name).cloned()?;
    Some(group.keys())
}

/// The current isolated scope's instance of the declared group `name`.
fn isolated(name: &str) -> Option<&'static KeyedBreakers<String>> {
    if !super::isolate::active() {
        return None;
    }
    super::isolate::declared_group(name)
}

/// The breaker of `key` (as [`CircuitBreaker::key`] spells it) in the group
/// `name`, if that key is live: an owned handle, so the key is not evicted
/// while it is held, and `open()`, `close()`, `reset()` act on the group.
///
/// # Example
/// ```
/// use breaker::{keyed::KeyedBreakers, registry, State};
///
/// let g = KeyedBreakers::<String>::builder("get-key-doc", |b| b).build();
/// registry::register_keyed(&g).unwrap();
/// let _ = g.get("host-a").call(|| Ok::<_, &str>(()));
/// registry::get_key("get-key-doc", "host-a").unwrap().open();
/// assert_eq!(g.get("host-a").current_state(), State::Open);
/// assert!(registry::get_key("get-key-doc", "host-b").is_none());
/// ```
pub fn get_key(name: &str, key: &str) -> Option<Arc<CircuitBreaker>> {
    if let Some(group) = isolated(name) {
        return group.view().find(key);
    }
    let group = groups_map().read().get(name).cloned()?;
    group.find(key)
}

/// Calls `f` with every breaker of every registered group, by group name:
/// the group's overflow breaker, then each live key's.
#[cfg(feature = "admin")]
pub(crate) fn visit_groups(f: &mut dyn FnMut(&str, &CircuitBreaker)) {
    let all: Vec<_> = groups_map()
        .read()
        .iter()
        .map(|(name, group)| (name.clone(), Arc::clone(group)))
        .collect();
    for (name, group) in all {
        group.visit(&mut |cb| f(&name, cb));
    }
}

/// Calls `f` with every breaker of every registered group while the
/// groups' map is read-locked (no group joins meanwhile): for `watch`.
#[cfg(feature = "admin")]
pub(crate) fn visit_groups_locked(f: &mut dyn FnMut(&CircuitBreaker)) {
    for group in groups_map().read().values() {
        group.visit(f);
    }
}

/// The breaker a keyed spelling names: a group's name gives its overflow
/// breaker, `group[key]` the key's breaker if the key is live.
#[cfg(feature = "admin")]
pub(crate) fn find_keyed(name: &str) -> Option<Arc<CircuitBreaker>> {
    let groups = groups_map().read();
    if let Some(group) = groups.get(name) {
        return Some(group.overflow());
    }
    // Several groups may fit (`a` and `a[b` both fit `a[b[c]]`): try each.
    let fits: Vec<_> = groups
        .iter()
        .filter_map(|(group_name, group)| {
            let key = name
                .strip_prefix(group_name.as_str())?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            Some((Arc::clone(group), key))
        })
        .collect();
    drop(groups);
    fits.into_iter().find_map(|(group, key)| group.find(key))
}

/// Resets every key's breaker in every registered group.
pub(crate) fn reset_groups() {
    let all: Vec<_> = groups_map().read().values().cloned().collect();
    for group in all {
        group.reset_all();
    }
}

/// The declared groups whose declarations cannot make a group.
pub(crate) fn group_errors() -> Vec<RegistryError> {
    declared_groups()
        .iter()
        .filter_map(|(name, group)| {
            let message = group.as_ref().err()?;
            Some(RegistryError::Declaration {
                name: (*name).to_owned(),
                message: message.clone(),
            })
        })
        .collect()
}
