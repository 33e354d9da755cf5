//! Operator overrides: [`Settings`] applied by name to a registered or
//! declared breaker.

use crate::error::ConfigError;
use crate::settings::Settings;

/// Applies `settings` to the breaker named `name` (registered, or declared
/// with the attribute), all or none: a value out of range leaves it as it
/// was, and the error names the breaker and every bad value. An unknown
/// name is an error listing the registered ones.
///
/// Declared breakers are in the registry from start-up, so a service can
/// read its configuration file first thing in `main` and configure them
/// before any call.
///
/// ```
/// use breaker::{registry, CircuitBreaker, ConfigError, Settings};
/// use std::collections::BTreeMap;
///
/// registry::register(CircuitBreaker::new("configure-doc")).unwrap();
/// let file: BTreeMap<String, Settings> = toml::from_str(r#"
///     [configure-doc]
///     fail_max = 2
///     reset_timeout = "30s"
/// "#).unwrap();
/// for (name, settings) in &file {
///     registry::configure(name, settings)?;
/// }
/// assert_eq!(registry::get("configure-doc").fail_max(), 2);
///
/// let err = registry::configure("configure-typo", &Settings::new()).unwrap_err();
/// assert!(err.to_string().contains("no circuit breaker named 'configure-typo'"));
/// # Ok::<(), ConfigError>(())
/// ```
pub fn configure(name: &str, settings: &Settings) -> Result<(), ConfigError> {
    let Some(cb) = super::try_get(name) else {
        return Err(ConfigError::UnknownBreaker {
            name: name.to_owned(),
            known: super::names().join(", "),
        });
    };
    settings.apply(&cb)
}
