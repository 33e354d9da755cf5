//! `parse_duration`, the grammar of `reset_timeout = "1m30s"`, against a
//! reference written here from its documentation: numbers with units, largest
//! unit first, each unit at most once, no spaces, signs or fractions, the
//! total in `u64` nanoseconds. Any input: never a panic, and the same answer
//! as the reference.
#![no_main]

use std::time::Duration;

use breaker_core::parse_duration;
use libfuzzer_sys::fuzz_target;

const UNITS: [(&str, u128); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// The documented grammar, in nanoseconds; `None` for anything it rejects.
fn reference(input: &str) -> Option<u64> {
    let bytes = input.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let (mut i, mut total, mut previous) = (0, 0u128, None::<usize>);
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &input[start..i];
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_lowercase() {
            i += 1;
        }
        let unit = &input[unit_start..i];
        if digits.is_empty() {
            return None;
        }
        let index = UNITS.iter().position(|(name, _)| *name == unit)?;
        if previous.is_some_and(|p| index <= p) {
            return None;
        }
        previous = Some(index);
        // Leading zeros are fine; a value past u64 is an overflow.
        let value: u128 = digits.trim_start_matches('0').parse().unwrap_or(0);
        if digits.trim_start_matches('0').len() > 20 || value > u128::from(u64::MAX) {
            return None;
        }
        total += value * UNITS[index].1;
        if total > u128::from(u64::MAX) {
            return None;
        }
    }
    Some(total as u64)
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_duration(input);
    match (&parsed, reference(input)) {
        (Ok(d), Some(nanos)) => assert_eq!(*d, Duration::from_nanos(nanos), "{input:?}"),
        (Err(e), None) => {
            // Every error says what is expected.
            let message = e.to_string();
            assert!(
                message.contains("expected a duration like"),
                "{input:?}: {message}"
            );
        }
        (got, want) => panic!("{input:?}: parse_duration gave {got:?}, the grammar says {want:?}"),
    }
});
