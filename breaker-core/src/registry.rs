//! The process-wide registry of named breakers.
//!
//! Breakers declared with `#[circuit_breaker]` are registered before their
//! function is first called; others are added with [`register`].
//!
//! ```
//! use breaker_core::{registry, CircuitBreaker, State};
//!
//! let cb = registry::register(CircuitBreaker::new("registry-doc")).unwrap();
//! cb.open();
//! assert_eq!(registry::get("registry-doc").current_state(), State::Open);
//! registry::reset_all();
//! assert_eq!(registry::get("registry-doc").current_state(), State::Closed);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::breaker::CircuitBreaker;

type Map = BTreeMap<String, Arc<CircuitBreaker>>;

fn map() -> &'static RwLock<Map> {
    static MAP: OnceLock<RwLock<Map>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = Map::new();
        crate::private::declare_all(&mut map);
        RwLock::new(map)
    })
}

/// Registering a breaker under a name that is taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Another breaker has this name.
    #[error("a circuit breaker named '{0}' is already registered")]
    NameTaken(String),
}

/// The breaker named `name`.
///
/// # Panics
/// If there is none; the message lists the names that are registered. Use
/// [`try_get`] to get an `Option` instead.
pub fn get(name: &str) -> Arc<CircuitBreaker> {
    match try_get(name) {
        Some(cb) => cb,
        None => panic!(
            "no circuit breaker named '{name}' is registered; known breakers: [{}]",
            names().join(", ")
        ),
    }
}

/// The breaker named `name`, if there is one.
pub fn try_get(name: &str) -> Option<Arc<CircuitBreaker>> {
    map().read().get(name).cloned()
}

/// Adds `breaker` under its name and returns it shared.
///
/// # Errors
/// [`RegistryError::NameTaken`] if a breaker with that name is registered;
/// the registry is unchanged.
pub fn register(breaker: CircuitBreaker) -> Result<Arc<CircuitBreaker>, RegistryError> {
    let mut map = map().write();
    match map.entry(breaker.name().to_owned()) {
        std::collections::btree_map::Entry::Occupied(e) => {
            Err(RegistryError::NameTaken(e.key().clone()))
        }
        std::collections::btree_map::Entry::Vacant(e) => {
            Ok(Arc::clone(e.insert(Arc::new(breaker))))
        }
    }
}

/// The names of all registered breakers, sorted.
pub fn names() -> Vec<String> {
    map().read().keys().cloned().collect()
}

/// Resets every registered breaker: closed, counters zero.
pub fn reset_all() {
    let all: Vec<_> = map().read().values().cloned().collect();
    for cb in all {
        cb.reset();
    }
}

/// The breaker named `name`, registering the one `make` builds if there is
/// none yet; used by generated code.
fn get_or_register(name: &str, make: impl FnOnce() -> CircuitBreaker) -> Arc<CircuitBreaker> {
    if let Some(cb) = try_get(name) {
        return cb;
    }
    let mut map = map().write();
    Arc::clone(
        map.entry(name.to_owned())
            .or_insert_with(|| Arc::new(make())),
    )
}

/// The breaker a `#[circuit_breaker]` declaration names, from the registry
/// (where every declaration was registered at start-up), or built from this
/// declaration alone if link-time registration missed it.
pub(crate) fn declared(declaration: &'static crate::private::Declaration) -> Arc<CircuitBreaker> {
    get_or_register(declaration.name, || {
        crate::private::build(&[declaration]).unwrap_or_else(|e| panic!("{e}"))
    })
}
