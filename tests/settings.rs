//! `Settings` (feature `serde`): read from TOML, errors naming the key and
//! the breaker, applied all or none by `registry::configure`, to declared
//! breakers too; serde for `State`.
#![cfg(feature = "serde")]

use std::collections::BTreeMap;
use std::time::Duration;

use breaker::storage::WindowShape;
use breaker::{
    circuit_breaker, registry, Backoff, CircuitBreaker, CircuitBreakerError, ConfigError, Number,
    Settings, State,
};

fn parse(text: &str) -> Result<Settings, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn every_setting_reads_from_toml() {
    let s = parse(
        r#"
        fail_max = 3
        reset_timeout = "1m30s"
        success_threshold = 2
        throw_new_error_on_trip = false
        "#,
    )
    .unwrap();
    assert_eq!(s.fail_max, Some(3));
    assert_eq!(s.reset_timeout, Some(Duration::from_secs(90)));
    assert_eq!(s.success_threshold, Some(2));
    assert_eq!(s.throw_new_error_on_trip, Some(false));
    assert_eq!(parse("").unwrap(), Settings::new());
}

#[test]
fn unknown_keys_and_bad_values_are_errors_naming_the_key() {
    let unknown = parse("fail_maxx = 3").unwrap_err();
    assert!(unknown.contains("unknown setting `fail_maxx`"), "{unknown}");
    assert!(unknown.contains("fail_max, reset_timeout"), "{unknown}");

    let no_unit = parse("reset_timeout = \"60\"").unwrap_err();
    assert!(
        no_unit.contains("`reset_timeout`: `60` has no unit"),
        "{no_unit}"
    );
    let not_text = parse("reset_timeout = 60").unwrap_err();
    assert!(not_text.contains("`reset_timeout`"), "{not_text}");
    let negative = parse("fail_max = -1").unwrap_err();
    assert!(negative.contains("`fail_max`"), "{negative}");
    let wrong_type = parse("throw_new_error_on_trip = \"yes\"").unwrap_err();
    assert!(
        wrong_type.contains("`throw_new_error_on_trip`"),
        "{wrong_type}"
    );
}

#[test]
fn settings_written_out_read_back_the_same() {
    let cb = CircuitBreaker::builder("settings-roundtrip")
        .fail_max(4)
        .reset_timeout(Duration::from_millis(1500))
        .success_threshold(3)
        .throw_new_error_on_trip(false)
        .build();
    let s = Settings::of(&cb);
    let text = toml::to_string(&s).unwrap();
    assert!(text.contains("reset_timeout = \"1s500ms\""), "{text}");
    assert_eq!(parse(&text).unwrap(), s);
}

#[test]
fn values_out_of_range_are_all_reported_and_nothing_is_applied() {
    let cb = registry::register(CircuitBreaker::new("settings-range")).unwrap();
    let s = parse("fail_max = 0\nsuccess_threshold = 300\nreset_timeout = \"5s\"").unwrap();
    let err = registry::configure("settings-range", &s).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Settings {
            breaker: "settings-range".into(),
            errors: vec![
                ConfigError::FailMax { value: 0 },
                ConfigError::SuccessThreshold { value: 300 },
            ],
        }
    );
    let message = err.to_string();
    assert!(
        message.starts_with("settings of breaker 'settings-range': fail_max must be"),
        "{message}"
    );
    assert!(
        message.contains("success_threshold must be between 1 and 255, got 300"),
        "{message}"
    );
    assert_eq!(cb.reset_timeout(), Duration::from_secs(60), "all or none");
}

#[test]
fn an_unknown_breaker_is_an_error_listing_the_known_ones() {
    registry::register(CircuitBreaker::new("settings-known")).unwrap();
    let err = registry::configure("settings-unknown", &Settings::new()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("'settings-unknown'"), "{message}");
    assert!(message.contains("settings-known"), "{message}");
}

#[derive(Debug)]
struct Down;

impl From<CircuitBreakerError> for Down {
    fn from(_: CircuitBreakerError) -> Self {
        Down
    }
}

#[circuit_breaker(name = "settings-declared", fail_max = 5)]
fn declared() -> Result<(), Down> {
    Err(Down)
}

#[test]
fn a_file_configures_declared_breakers_before_their_first_call() {
    let file: BTreeMap<String, Settings> = toml::from_str(
        r#"
        [settings-declared]
        fail_max = 2
        reset_timeout = "10s"
        "#,
    )
    .unwrap();
    for (name, settings) in &file {
        registry::configure(name, settings).unwrap();
    }
    let _ = declared();
    let _ = declared();
    let cb = registry::get("settings-declared");
    assert_eq!(cb.current_state(), State::Open, "fail_max 2, from the file");
    assert_eq!(cb.reset_timeout(), Duration::from_secs(10));
}

#[test]
fn states_read_and_write_as_their_names() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Doc {
        state: State,
    }
    for state in [State::Closed, State::Open, State::HalfOpen] {
        let text = toml::to_string(&Doc { state }).unwrap();
        assert_eq!(text.trim(), format!("state = \"{state}\""));
        assert_eq!(toml::from_str::<Doc>(&text).unwrap().state, state);
    }
    let err = toml::from_str::<Doc>("state = \"ajar\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown state 'ajar', valid states: closed, open, half-open"),
        "{err}"
    );
}

const POLICY: &str = r#"
    half_open_calls = 3
    backoff = { factor = 2.0, max = "10m" }
    jitter = 0.2
    failure_rate = 0.5
    window_time = "1m"
    min_calls = 20
    slow_call_duration = "2s"
    slow_call_rate = 0.8
"#;

#[test]
fn every_policy_setting_reads_from_toml() {
    let s = parse(POLICY).unwrap();
    assert_eq!(s.half_open_calls, Some(3));
    assert_eq!(
        s.backoff,
        Some(Backoff::exponential(2.0, Duration::from_secs(600)))
    );
    assert_eq!(s.jitter, Some(0.2));
    assert_eq!(s.failure_rate, Some(0.5));
    assert_eq!(s.window, Some(WindowShape::Time(Duration::from_secs(60))));
    assert_eq!(s.min_calls, Some(20));
    assert_eq!(s.slow_call_duration, Some(Duration::from_secs(2)));
    assert_eq!(s.slow_call_rate, Some(0.8));
    assert_eq!(
        parse("window_calls = 50").unwrap().window,
        Some(WindowShape::Calls(50))
    );
    assert_eq!(
        parse("backoff = \"constant\"").unwrap().backoff,
        Some(Backoff::constant())
    );
    for (text, says) in [
        (
            "window_calls = 10\nwindow_time = \"1m\"",
            "cannot both be given",
        ),
        ("backoff = \"linear\"", "unknown backoff `linear`"),
        (
            "backoff = { factor = 2.0 }",
            "needs both `factor` and `max`",
        ),
        (
            "backoff = { factor = 2.0, max = \"10\" }",
            "`max`: `10` has no unit",
        ),
        ("failure_rate = \"half\"", "`failure_rate`"),
        ("slow_call_duration = 2", "`slow_call_duration`"),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.contains(says), "{text}: {err}");
    }
}

#[test]
fn policy_settings_apply_to_a_breaker_and_read_back_the_same() {
    let cb = CircuitBreaker::new("settings-policy");
    parse(POLICY).unwrap().apply(&cb).unwrap();
    assert_eq!(cb.half_open_calls(), 3);
    assert_eq!(
        cb.backoff(),
        Backoff::exponential(2.0, Duration::from_secs(600)).jitter(0.2)
    );
    assert_eq!(cb.failure_rate(), Some(0.5));
    assert_eq!(
        cb.window_shape(),
        WindowShape::Time(Duration::from_secs(60))
    );
    assert_eq!(cb.min_calls(), 20);
    assert_eq!(cb.slow_call_duration(), Some(Duration::from_secs(2)));
    assert_eq!(cb.slow_call_rate(), Some(0.8));
    // Written out and read back, the same; applied to a fresh breaker, the
    // same breaker settings.
    let s = Settings::of(&cb);
    let text = toml::to_string(&s).unwrap();
    assert!(text.contains("window_time = \"1m\""), "{text}");
    assert_eq!(parse(&text).unwrap(), s);
    let other = s
        .apply_to(CircuitBreaker::builder("settings-policy-2"))
        .build();
    assert_eq!(Settings::of(&other), s);
    // A jitter alone changes the breaker's own backoff.
    parse("jitter = 0.5").unwrap().apply(&cb).unwrap();
    assert_eq!(
        cb.backoff(),
        Backoff::exponential(2.0, Duration::from_secs(600)).jitter(0.5)
    );
}

#[test]
fn policy_values_out_of_range_are_all_reported_naming_the_breaker() {
    let cb = registry::register(CircuitBreaker::new("settings-policy-range")).unwrap();
    let s = parse(
        r#"
        half_open_calls = 0
        backoff = { factor = 0.5, max = "10m" }
        failure_rate = 1.5
        window_calls = 0
        min_calls = 0
        slow_call_duration = "0s"
        slow_call_rate = 0.0
        reset_timeout = "5s"
        "#,
    )
    .unwrap();
    let err = registry::configure("settings-policy-range", &s).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Settings {
            breaker: "settings-policy-range".into(),
            errors: vec![
                ConfigError::HalfOpenCalls { value: 0 },
                ConfigError::BackoffFactor {
                    value: Number::from(0.5)
                },
                ConfigError::FailureRate {
                    value: Number::from(1.5)
                },
                ConfigError::WindowCalls { value: 0 },
                ConfigError::MinCalls { value: 0 },
                ConfigError::SlowCallDuration {
                    value: Duration::ZERO
                },
                ConfigError::SlowCallRate {
                    value: Number::from(0.0)
                },
            ],
        }
    );
    assert!(
        err.to_string()
            .starts_with("settings of breaker 'settings-policy-range': "),
        "{err}"
    );
    assert_eq!(cb.reset_timeout(), Duration::from_secs(60), "all or none");
    assert_eq!(cb.half_open_calls(), 1, "all or none");
    // Checked against the breaker: a cap below its reset timeout, a slow
    // rate without a slow duration.
    let err = parse("backoff = { factor = 2.0, max = \"30s\" }\nslow_call_rate = 0.5")
        .unwrap()
        .apply(&cb)
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::Settings {
            breaker: "settings-policy-range".into(),
            errors: vec![
                ConfigError::BackoffMax {
                    max: Duration::from_secs(30),
                    reset_timeout: Duration::from_secs(60)
                },
                ConfigError::SlowCallRateWithoutDuration,
            ],
        }
    );
}
