//! Not public API. Referenced by code that `#[circuit_breaker]` generates;
//! may change in any release.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::breaker::CircuitBreaker;

/// Registers every breaker declared with the attribute (filled in by the
/// attribute's declarations).
pub(crate) fn declare_all(map: &mut BTreeMap<String, Arc<CircuitBreaker>>) {
    let _ = map;
}

/// The breaker named `name`, built by `make` if the registry has none.
#[doc(hidden)]
pub fn get_or_register(name: &str, make: impl FnOnce() -> CircuitBreaker) -> Arc<CircuitBreaker> {
    crate::registry::get_or_register(name, make)
}
