//! `State::from_str`: exactly `closed`, `open` and `half-open` parse, each to
//! the state whose `Display` is that text; anything else is an error that
//! quotes the input and lists the valid states. Never a panic.
#![no_main]

use breaker_core::State;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match input.parse::<State>() {
        Ok(state) => {
            assert!(State::ALL.contains(&state));
            assert_eq!(state.to_string(), input);
            assert_eq!(state.as_str(), input);
        }
        Err(e) => {
            assert!(!State::ALL.iter().any(|s| s.as_str() == input), "{input:?}");
            assert_eq!(e.input(), input);
            assert_eq!(
                e.to_string(),
                format!("unknown state '{input}', valid states: closed, open, half-open")
            );
        }
    }
});
