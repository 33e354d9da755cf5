//! The duration grammar of `reset_timeout = "1m30s"`: parsed at compile time
//! by the attribute, and at run time by [`parse_duration`] for configuration.

use std::fmt;
use std::time::Duration;

/// A duration string that does not follow the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    kind: DurationErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DurationErrorKind {
    Empty,
    MissingNumber(String),
    MissingUnit(String),
    UnknownUnit(String),
    UnitOrder(String),
    Overflow,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DurationErrorKind::Empty => f.write_str("empty duration"),
            DurationErrorKind::MissingNumber(at) => write!(f, "expected a number before `{at}`"),
            DurationErrorKind::MissingUnit(n) => {
                write!(f, "`{n}` has no unit: write e.g. `{n}s` or `{n}ms`")
            }
            DurationErrorKind::UnknownUnit(u) => write!(f, "unknown unit `{u}`"),
            DurationErrorKind::UnitOrder(u) => write!(
                f,
                "unit `{u}` is repeated or out of order (largest first, as in `1h30m`)"
            ),
            DurationErrorKind::Overflow => f.write_str("duration too large"),
        }?;
        f.write_str("; expected a duration like `250ms`, `60s`, `1m30s` or `2h` (units: h, m, s, ms, us, ns)")
    }
}

impl std::error::Error for DurationError {}

/// The units `parse_duration` reads, largest first, in nanoseconds.
pub(crate) const UNITS: [(&str, u64); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses a duration written as numbers with units, largest unit first:
/// `"250ms"`, `"60s"`, `"1m30s"`, `"2h"`, `"1h2m3s4ms"`.
///
/// Units: `h`, `m`, `s`, `ms`, `us`, `ns`; each at most once, largest first;
/// no spaces, signs or fractions.
///
/// ```
/// use breaker::parse_duration;
/// use std::time::Duration;
///
/// assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert!(parse_duration("60 parsecs").is_err());
/// ```
///
/// # Errors
/// A [`DurationError`] saying what is wrong: empty input, a number without a
/// unit, an unknown unit, units repeated or out of order, or a total that
/// does not fit in `u64` nanoseconds.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |kind| Err(DurationError { kind });
    if input.is_empty() {
        return err(DurationErrorKind::Empty);
    }
    let mut rest = input;
    let mut total: u64 = 0;
    let mut last_unit = usize::MAX; // index into UNITS of the previous unit
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return err(DurationErrorKind::MissingNumber(rest.to_owned()));
        }
        let (number, tail) = rest.split_at(digits);
        let letters = tail.bytes().take_while(|b| !b.is_ascii_digit()).count();
        let (unit, tail) = tail.split_at(letters);
        if unit.is_empty() {
            return err(DurationErrorKind::MissingUnit(number.to_owned()));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return err(DurationErrorKind::UnknownUnit(unit.to_owned()));
        };
        if last_unit != usize::MAX && index <= last_unit {
            return err(DurationErrorKind::UnitOrder(unit.to_owned()));
        }
        last_unit = index;
        let value: u64 = match number.parse() {
            Ok(v) => v,
            Err(_) => return err(DurationErrorKind::Overflow),
        };
        let nanos = value
            .checked_mul(UNITS[index].1)
            .and_then(|n| total.checked_add(n));
        match nanos {
            Some(n) => total = n,
            None => return err(DurationErrorKind::Overflow),
        }
        rest = tail;
    }
    Ok(Duration::from_nanos(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (text, expected) in [
            ("250ms", Duration::from_millis(250)),
            ("60s", Duration::from_secs(60)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7_200)),
            ("1h2m3s4ms5us6ns", Duration::new(3_723, 4_005_006)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_with_a_message_that_says_why() {
        for (text, says) in [
            ("", "empty duration"),
            ("60", "`60` has no unit"),
            ("60 parsecs", "unknown unit ` parsecs`"),
            ("s", "expected a number before `s`"),
            ("30s1m", "unit `m` is repeated or out of order"),
            ("1s1s", "unit `s` is repeated or out of order"),
            ("-1s", "expected a number before `-1s`"),
            ("1.5s", "unknown unit `.`"),
            ("99999999999999999999s", "duration too large"),
            ("6000000h", "duration too large"),
        ] {
            let message = parse_duration(text).unwrap_err().to_string();
            assert!(message.starts_with(says), "{text:?}: {message}");
        }
    }
}
