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
use crate::builder::{
    check_backoff, check_fail_max, check_half_open_calls, check_success_threshold,
    CircuitBreakerBuilder,
};
use crate::duration::parse_duration;
use crate::error::ConfigError;
use crate::inspect::{check_slow_call_duration, check_slow_call_rate};
use crate::rate::{check_failure_rate, check_min_calls, check_window};
use crate::state::{Backoff, State, WindowShape};

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
///
/// The trip policies too: several half-open trials, a backoff (`"constant"`
/// or `{ factor = 2.0, max = "10m" }`) and its `jitter`, a failure rate over
/// `window_calls` or `window_time` with `min_calls`, slow calls.
///
/// ```
/// use breaker::storage::WindowShape;
/// use breaker::{Backoff, Settings};
/// use std::time::Duration;
///
/// let s: Settings = toml::from_str(r#"
///     half_open_calls = 3
///     backoff = { factor = 2.0, max = "10m" }
///     jitter = 0.2
///     failure_rate = 0.5
///     window_time = "60s"
///     min_calls = 20
///     slow_call_duration = "2s"
///     slow_call_rate = 0.8
/// "#).unwrap();
/// assert_eq!(s.backoff, Some(Backoff::exponential(2.0, Duration::from_secs(600))));
/// assert_eq!(s.window, Some(WindowShape::Time(Duration::from_secs(60))));
///
/// let err = toml::from_str::<Settings>("window_calls = 10\nwindow_time = \"1m\"").unwrap_err();
/// assert!(err.to_string().contains("`window_time` and `window_calls` cannot both be given"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// [`half_open_calls`](CircuitBreakerBuilder::half_open_calls).
    pub half_open_calls: Option<u32>,
    /// [`backoff`](CircuitBreakerBuilder::backoff), without its jitter:
    /// written `"constant"` or `{ factor = 2.0, max = "10m" }`.
    pub backoff: Option<Backoff>,
    /// The backoff's [`jitter`](Backoff::jitter): on `backoff` if given,
    /// else on the breaker's own.
    pub jitter: Option<f64>,
    /// [`failure_rate`](CircuitBreakerBuilder::failure_rate).
    pub failure_rate: Option<f64>,
    /// [`window_calls`](CircuitBreakerBuilder::window_calls) or
    /// [`window_time`](CircuitBreakerBuilder::window_time), written as
    /// either key (not both).
    pub window: Option<WindowShape>,
    /// [`min_calls`](CircuitBreakerBuilder::min_calls).
    pub min_calls: Option<u32>,
    /// [`slow_call_duration`](CircuitBreakerBuilder::slow_call_duration),
    /// written `"2s"`.
    pub slow_call_duration: Option<Duration>,
    /// [`slow_call_rate`](CircuitBreakerBuilder::slow_call_rate).
    pub slow_call_rate: Option<f64>,
}

/// The keys, as written in a file.
const KEYS: &[&str] = &[
    "fail_max",
    "reset_timeout",
    "success_threshold",
    "throw_new_error_on_trip",
    "half_open_calls",
    "backoff",
    "jitter",
    "failure_rate",
    "window_calls",
    "window_time",
    "min_calls",
    "slow_call_duration",
    "slow_call_rate",
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
        let backoff = cb.backoff();
        Settings {
            fail_max: Some(cb.fail_max()),
            reset_timeout: Some(cb.reset_timeout()),
            success_threshold: Some(cb.success_threshold()),
            throw_new_error_on_trip: Some(cb.throw_new_error_on_trip()),
            half_open_calls: Some(cb.half_open_calls()),
            backoff: Some(backoff.jitter(0.0)),
            jitter: Some(backoff.jitter_fraction()),
            failure_rate: cb.failure_rate(),
            window: Some(cb.window_shape()),
            min_calls: Some(cb.min_calls()),
            slow_call_duration: cb.slow_call_duration(),
            slow_call_rate: cb.slow_call_rate(),
        }
    }

    /// The backoff these settings give on top of `current`: `backoff` with
    /// `jitter`, or `current` with `jitter`; `None` when they give neither.
    fn backoff_over(&self, current: Backoff) -> Option<Backoff> {
        match (self.backoff, self.jitter) {
            (None, None) => None,
            (Some(b), None) => Some(b),
            (b, Some(j)) => Some(b.unwrap_or(current).jitter(j)),
        }
    }

    /// Every value out of range, with the breaker's own `reset_timeout` and
    /// `slow_call_duration` where these settings give none (`None`: not
    /// checked against them).
    fn check_over(
        &self,
        reset_timeout: Option<Duration>,
        slow_call_duration: Option<Option<Duration>>,
        current_backoff: Backoff,
    ) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut keep = |result: Result<(), ConfigError>| {
            if let Err(e) = result {
                errors.push(e);
            }
        };
        if let Some(n) = self.fail_max {
            keep(check_fail_max(n).map(drop));
        }
        if let Some(n) = self.success_threshold {
            keep(check_success_threshold(n).map(drop));
        }
        if let Some(n) = self.half_open_calls {
            keep(check_half_open_calls(n).map(drop));
        }
        if let Some(backoff) = self.backoff_over(current_backoff) {
            let reset = self
                .reset_timeout
                .or(reset_timeout)
                .unwrap_or(Duration::ZERO);
            keep(check_backoff(backoff, reset).map(drop));
        }
        if let Some(rate) = self.failure_rate {
            keep(check_failure_rate(rate).map(drop));
        }
        if let Some(window) = self.window {
            keep(check_window(window).map(drop));
        }
        if let Some(n) = self.min_calls {
            keep(check_min_calls(n).map(drop));
        }
        if let Some(d) = self.slow_call_duration {
            keep(check_slow_call_duration(d).map(drop));
        }
        if let Some(rate) = self.slow_call_rate {
            // Without the breaker, a duration given elsewhere is assumed.
            let duration = match slow_call_duration {
                Some(of_breaker) => self.slow_call_duration.or(of_breaker),
                None => Some(self.slow_call_duration.unwrap_or(Duration::MAX)),
            };
            keep(check_slow_call_rate(rate, duration).map(drop));
        }
        errors
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
        self.check_over(None, None, Backoff::constant())
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
        if let Some(n) = self.half_open_calls {
            builder = builder.half_open_calls(n);
        }
        if let Some(backoff) = self.backoff_over(Backoff::constant()) {
            builder = builder.backoff(backoff);
        }
        if let Some(rate) = self.failure_rate {
            builder = builder.failure_rate(rate);
        }
        builder = match self.window {
            Some(WindowShape::Calls(n)) => builder.window_calls(n),
            Some(WindowShape::Time(d)) => builder.window_time(d),
            None => builder,
        };
        if let Some(n) = self.min_calls {
            builder = builder.min_calls(n);
        }
        if let Some(d) = self.slow_call_duration {
            builder = builder.slow_call_duration(d);
        }
        if let Some(rate) = self.slow_call_rate {
            builder = builder.slow_call_rate(rate);
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
        let backoff = self.backoff_over(cb.backoff());
        let errors = self.check_over(
            Some(cb.reset_timeout()),
            Some(cb.slow_call_duration()),
            cb.backoff(),
        );
        if !errors.is_empty() {
            return Err(ConfigError::Settings {
                breaker: cb.name().to_owned(),
                errors,
            });
        }
        // The trip policy first: a storage that cannot apply one (Redis)
        // refuses the first of them, before anything else has changed.
        if let Some(n) = self.half_open_calls {
            cb.set_half_open_calls(n)?;
        }
        if let Some(d) = self.reset_timeout {
            cb.set_reset_timeout(d);
        }
        if let Some(backoff) = backoff {
            cb.set_backoff(backoff)?;
        }
        if let Some(d) = self.slow_call_duration {
            cb.set_slow_call_duration(d)?;
        }
        if let Some(rate) = self.slow_call_rate {
            cb.set_slow_call_rate(rate)?;
        }
        if let Some(rate) = self.failure_rate {
            cb.set_failure_rate(rate)?;
        }
        match self.window {
            Some(WindowShape::Calls(n)) => cb.set_window_calls(n)?,
            Some(WindowShape::Time(d)) => cb.set_window_time(d)?,
            None => {}
        }
        if let Some(n) = self.min_calls {
            cb.set_min_calls(n)?;
        }
        if let Some(n) = self.fail_max {
            cb.set_fail_max(n)?;
        }
        if let Some(n) = self.success_threshold {
            cb.set_success_threshold(n)?;
        }
        if let Some(on) = self.throw_new_error_on_trip {
            cb.set_throw_new_error_on_trip(on);
        }
        Ok(())
    }
}

/// A duration as the attribute writes it: `"1m30s"`, `"250ms"`, `"0s"`.
fn duration_text(d: Duration) -> String {
    let mut left = d.as_nanos();
    let mut text = String::new();
    for (unit, nanos) in crate::duration::UNITS {
        let nanos = u128::from(nanos);
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
        if let Some(n) = self.half_open_calls {
            map.serialize_entry("half_open_calls", &n)?;
        }
        if let Some(backoff) = self.backoff {
            map.serialize_entry("backoff", &BackoffText(backoff))?;
        }
        if let Some(j) = self.jitter {
            map.serialize_entry("jitter", &j)?;
        }
        if let Some(rate) = self.failure_rate {
            map.serialize_entry("failure_rate", &rate)?;
        }
        match self.window {
            Some(WindowShape::Calls(n)) => map.serialize_entry("window_calls", &n)?,
            Some(WindowShape::Time(d)) => map.serialize_entry("window_time", &duration_text(d))?,
            None => {}
        }
        if let Some(n) = self.min_calls {
            map.serialize_entry("min_calls", &n)?;
        }
        if let Some(d) = self.slow_call_duration {
            map.serialize_entry("slow_call_duration", &duration_text(d))?;
        }
        if let Some(rate) = self.slow_call_rate {
            map.serialize_entry("slow_call_rate", &rate)?;
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

/// A backoff as a file writes it: `"constant"`, or
/// `{ factor = 2.0, max = "10m" }` (exponential), its jitter apart.
struct BackoffText(Backoff);

impl Serialize for BackoffText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.max() {
            None => serializer.serialize_str("constant"),
            Some(max) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("factor", &self.0.factor())?;
                map.serialize_entry("max", &duration_text(max))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for BackoffText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BackoffVisitor)
    }
}

struct BackoffVisitor;

impl<'de> Visitor<'de> for BackoffVisitor {
    type Value = BackoffText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"constant\" or { factor = 2.0, max = \"10m\" }")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<BackoffText, E> {
        match text {
            "constant" => Ok(BackoffText(Backoff::constant())),
            other => Err(E::custom(format_args!(
                "unknown backoff `{other}`, expected \"constant\" or {{ factor = 2.0, max = \"10m\" }}"
            ))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BackoffText, A::Error> {
        let (mut factor, mut max) = (None::<f64>, None::<DurationText>);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "factor" => value(&mut map, "factor", &mut factor)?,
                "max" => value(&mut map, "max", &mut max)?,
                other => {
                    return Err(de::Error::custom(format_args!(
                        "unknown backoff setting `{other}`, expected `factor` and `max`"
                    )))
                }
            }
        }
        match (factor, max) {
            (Some(factor), Some(max)) => Ok(BackoffText(Backoff::exponential(factor, max.0))),
            _ => Err(de::Error::custom(
                "an exponential backoff needs both `factor` and `max`",
            )),
        }
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
        let (mut backoff, mut window_calls, mut window_time, mut slow_call_duration) = (
            None::<BackoffText>,
            None,
            None::<DurationText>,
            None::<DurationText>,
        );
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "fail_max" => value(&mut map, &key, &mut s.fail_max)?,
                "reset_timeout" => value::<DurationText, _>(&mut map, &key, &mut reset_timeout)?,
                "success_threshold" => value(&mut map, &key, &mut s.success_threshold)?,
                "throw_new_error_on_trip" => value(&mut map, &key, &mut s.throw_new_error_on_trip)?,
                "half_open_calls" => value(&mut map, &key, &mut s.half_open_calls)?,
                "backoff" => value(&mut map, &key, &mut backoff)?,
                "jitter" => value(&mut map, &key, &mut s.jitter)?,
                "failure_rate" => value(&mut map, &key, &mut s.failure_rate)?,
                "window_calls" => value(&mut map, &key, &mut window_calls)?,
                "window_time" => value(&mut map, &key, &mut window_time)?,
                "min_calls" => value(&mut map, &key, &mut s.min_calls)?,
                "slow_call_duration" => value(&mut map, &key, &mut slow_call_duration)?,
                "slow_call_rate" => value(&mut map, &key, &mut s.slow_call_rate)?,
                other => {
                    return Err(de::Error::custom(format_args!(
                        "unknown setting `{other}`, expected one of: {}",
                        KEYS.join(", ")
                    )))
                }
            }
        }
        s.reset_timeout = reset_timeout.map(|d| d.0);
        s.backoff = backoff.map(|b| b.0);
        s.slow_call_duration = slow_call_duration.map(|d| d.0);
        s.window = match (window_calls, window_time) {
            (Some(_), Some(_)) => {
                return Err(de::Error::custom(
                    "`window_time` and `window_calls` cannot both be given: a rate is taken over a window of calls or of time",
                ))
            }
            (Some(n), None) => Some(WindowShape::Calls(n)),
            (None, Some(d)) => Some(WindowShape::Time(d.0)),
            (None, None) => None,
        };
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
