//! `Settings` (feature `serde`): read from TOML, errors naming the key and
//! the breaker, applied all or none by `registry::configure`, to declared
//! breakers too; serde for `State`.
#![cfg(feature = "serde")]

use std::collections::BTreeMap;
use std::time::Duration;

use breaker::{
    circuit_breaker, registry, CircuitBreaker, CircuitBreakerError, ConfigError, Settings, State,
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
