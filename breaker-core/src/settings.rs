//! [`Settings`]: a breaker's settings as data, read from any serde format,
//! for operators to override declared breakers at start-up
//! ([`registry::configure`](crate::registry::configure)). Also serde for
//! [`State`].

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::breaker::CircuitBreaker;
use crate::builder::{check_fail_max, check_success_threshold, CircuitBreakerBuilder};
use crate::duration::parse_duration;
use crate::error::ConfigError;
use crate::state::State;

/// Every builder setting that is data, each optional: what is absent is
/// left as it is. Deserialises from any serde format (keys as the builder's
/// methods, durations as `"60s"`); unknown keys and bad values are errors
/// naming the key. Values are checked when applied, all at once.
///
/// ```
/// use breaker::Settings;
/// use std::time::Duration;
///
/// let s: Settings = toml::from_str(r#"
///     fail_max = 3
///     reset_timeout = "1m30s"
/// "#).unwrap();
/// assert_eq!(s.fail_max, Some(3));
/// assert_eq!(s.reset_timeout, Some(Duration::from_secs(90)));
/// assert_eq!(s.success_threshold, None);
///
/// let err = toml::from_str::<Settings>("fail_maxx = 3").unwrap_err();
/// assert!(err.to_string().contains("unknown setting `fail_maxx`"));
/// let err = toml::from_str::<Settings>("reset_timeout = \"60\"").unwrap_err();
/// assert!(err.to_string().contains("`reset_timeout`: `60` has no unit"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// [`fail_max`](CircuitBreakerBuilder::fail_max).
    pub fail_max: Option<u32>,
    /// [`reset_timeout`](CircuitBreakerBuilder::reset_timeout), written `"60s"`.
    pub reset_timeout: Option<Duration>,
    /// [`success_threshold`](CircuitBreakerBuilder::success_threshold).
    pub success_threshold: Option<u32>,
    /// [`throw_new_error_on_trip`](CircuitBreakerBuilder::throw_new_error_on_trip).
    pub throw_new_error_on_trip: Option<bool>,
}

/// The keys, as written in a file.
const KEYS: &[&str] = &[
    "fail_max",
    "reset_timeout",
    "success_threshold",
    "throw_new_error_on_trip",
];

impl Settings {
    /// No setting: applying it changes nothing.
    ///
    /// ```
    /// let mut s = breaker::Settings::new();
    /// s.fail_max = Some(3);
    /// ```
    pub fn new() -> Self {
        Settings::default()
    }

    /// The settings `cb` runs with now, every one of them.
    ///
    /// ```
    /// use breaker::{CircuitBreaker, Settings};
    ///
    /// let cb = CircuitBreaker::builder("db").fail_max(7).build();
    /// assert_eq!(Settings::of(&cb).fail_max, Some(7));
    /// ```
    pub fn of(cb: &CircuitBreaker) -> Self {
        Settings {
            fail_max: Some(cb.fail_max()),
            reset_timeout: Some(cb.reset_timeout()),
            success_threshold: Some(cb.success_threshold()),
            throw_new_error_on_trip: Some(cb.throw_new_error_on_trip()),
        }
    }

    /// Every value out of range, all at once (empty when all are valid).
    ///
    /// ```
    /// use breaker::{ConfigError, Settings};
    ///
    /// let mut s = Settings::new();
    /// s.fail_max = Some(0);
    /// s.success_threshold = Some(0);
    /// assert_eq!(
    ///     s.check(),
    ///     [ConfigError::FailMax { value: 0 }, ConfigError::SuccessThreshold { value: 0 }]
    /// );
    /// ```
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if let Some(Err(e)) = self.fail_max.map(check_fail_max) {
            errors.push(e);
        }
        if let Some(Err(e)) = self.success_threshold.map(check_success_threshold) {
            errors.push(e);
        }
        errors
    }

    /// `builder` with these settings on top (its `try_build` checks them).
    ///
    /// ```
    /// use breaker::{CircuitBreaker, Settings};
    ///
    /// let s: Settings = toml::from_str("fail_max = 2").unwrap();
    /// let cb = s.apply_to(CircuitBreaker::builder("db")).build();
    /// assert_eq!(cb.fail_max(), 2);
    /// ```
    pub fn apply_to(&self, mut builder: CircuitBreakerBuilder) -> CircuitBreakerBuilder {
        if let Some(n) = self.fail_max {
            builder = builder.fail_max(n);
        }
        if let Some(d) = self.reset_timeout {
            builder = builder.reset_timeout(d);
        }
        if let Some(n) = self.success_threshold {
            builder = builder.success_threshold(n);
        }
        if let Some(on) = self.throw_new_error_on_trip {
            builder = builder.throw_new_error_on_trip(on);
        }
        builder
    }

    /// Applies these settings to a running breaker, all or none: any value
    /// out of range leaves it as it was, and the error lists them all.
    ///
    /// ```
    /// use breaker::{CircuitBreaker, Settings};
    ///
    /// let cb = CircuitBreaker::new("db");
    /// let s: Settings = toml::from_str("fail_max = 0\nsuccess_threshold = 1000").unwrap();
    /// let err = s.apply(&cb).unwrap_err();
    /// assert!(err.to_string().contains("fail_max must be between 1 and 65535, got 0"));
    /// assert!(err.to_string().contains("success_threshold must be between 1 and 255, got 1000"));
    /// assert_eq!(cb.fail_max(), 5); // unchanged
    /// ```
    pub fn apply(&self, cb: &CircuitBreaker) -> Result<(), ConfigError> {
        let errors = self.check();
        if !errors.is_empty() {
            return Err(ConfigError::Settings {
                breaker: cb.name().to_owned(),
                errors,
            });
        }
        let checked = |result: Result<(), ConfigError>| result.expect("checked above");
        if let Some(n) = self.fail_max {
            checked(cb.set_fail_max(n));
        }
        if let Some(d) = self.reset_timeout {
            cb.set_reset_timeout(d);
        }
        if let Some(n) = self.success_threshold {
            checked(cb.set_success_threshold(n));
        }
        if let Some(on) = self.throw_new_error_on_trip {
            cb.set_throw_new_error_on_trip(on);
        }
        Ok(())
    }
}

/// A duration as the attribute writes it: `"1m30s"`, `"250ms"`, `"0s"`.
fn duration_text(d: Duration) -> String {
    const UNITS: [(&str, u128); 6] = [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let mut left = d.as_nanos();
    let mut text = String::new();
    for (unit, nanos) in UNITS {
        let n = left / nanos;
        if n > 0 {
            text.push_str(&format!("{n}{unit}"));
            left -= n * nanos;
        }
    }
    if text.is_empty() {
        text.push_str("0s");
    }
    text
}

impl Serialize for Settings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(n) = self.fail_max {
            map.serialize_entry("fail_max", &n)?;
        }
        if let Some(d) = self.reset_timeout {
            map.serialize_entry("reset_timeout", &duration_text(d))?;
        }
        if let Some(n) = self.success_threshold {
            map.serialize_entry("success_threshold", &n)?;
        }
        if let Some(on) = self.throw_new_error_on_trip {
            map.serialize_entry("throw_new_error_on_trip", &on)?;
        }
        map.end()
    }
}

/// A duration string, parsed with the attribute's grammar.
struct DurationText(Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(DurationText)
            .map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Settings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SettingsVisitor)
    }
}

struct SettingsVisitor;

/// The value of `key`, its error naming the key.
fn value<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    map: &mut A,
    key: &str,
    slot: &mut Option<T>,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::custom(format_args!("`{key}` is given twice")));
    }
    let value = map
        .next_value::<T>()
        .map_err(|e| de::Error::custom(format_args!("`{key}`: {e}")))?;
    *slot = Some(value);
    Ok(())
}

impl<'de> Visitor<'de> for SettingsVisitor {
    type Value = Settings;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a breaker's settings, with keys among {}",
            KEYS.join(", ")
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Settings, A::Error> {
        let mut s = Settings::default();
        let mut reset_timeout = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "fail_max" => value(&mut map, &key, &mut s.fail_max)?,
                "reset_timeout" => value::<DurationText, _>(&mut map, &key, &mut reset_timeout)?,
                "success_threshold" => value(&mut map, &key, &mut s.success_threshold)?,
                "throw_new_error_on_trip" => value(&mut map, &key, &mut s.throw_new_error_on_trip)?,
                other => {
                    return Err(de::Error::custom(format_args!(
                        "unknown setting `{other}`, expected one of: {}",
                        KEYS.join(", ")
                    )))
                }
            }
        }
        s.reset_timeout = reset_timeout.map(|d| d.0);
        Ok(s)
    }
}

/// `"closed"`, `"open"` or `"half-open"`, as `Display` and `FromStr`.
impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `"closed"`, `"open"` or `"half-open"`; anything else is an error listing
/// them.
impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_in_the_grammar_they_are_read_in() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(250),
            Duration::from_secs(60),
            Duration::from_secs(90),
            Duration::from_secs(7200),
            Duration::new(3723, 4_005_006),
        ] {
            let text = duration_text(d);
            assert_eq!(parse_duration(&text), Ok(d), "{text}");
        }
        assert_eq!(duration_text(Duration::from_secs(90)), "1m30s");
    }
}
