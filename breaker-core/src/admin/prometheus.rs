//! `GET /metrics`: the metrics of the `metrics` feature in Prometheus text
//! format, rendered from what the admin's own listener counted and what
//! each breaker reports, so no global recorder is needed.
//!
//! `breaker_calls_total` has every outcome but `success`: counting
//! successes would put every registry breaker's closed-state success on
//! the listener path once a router exists (the `metrics` feature's
//! `MetricsListener` counts them, for the breakers that opt in).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::events::{hub, index, STATES};
use crate::registry;

/// A label value, escaped as the text format wants (`\`, `"`, newline).
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The exposition of every registered breaker.
pub(crate) fn render() -> String {
    let hub = hub();
    let breakers: Vec<_> = registry::names()
        .into_iter()
        .filter_map(|name| registry::try_get(&name))
        .collect();
    let mut out = String::new();
    out.push_str(
        "# HELP breaker_calls_total Calls through the breaker by outcome (all but success, which the router does not count), since the admin router started listening to it.\n\
         # TYPE breaker_calls_total counter\n",
    );
    for cb in &breakers {
        let Some(c) = hub.counters(cb.name()) else {
            continue;
        };
        let name = label(cb.name());
        for (outcome, n) in [
            ("failure", &c.failure),
            ("excluded", &c.excluded),
            ("rejected", &c.rejected),
            ("cancelled", &c.cancelled),
        ] {
            let _ = writeln!(
                out,
                "breaker_calls_total{{breaker=\"{name}\",outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
    out.push_str(
        "# HELP breaker_transitions_total State transitions, counted since the admin router started listening to the breaker.\n\
         # TYPE breaker_transitions_total counter\n",
    );
    for cb in &breakers {
        let Some(c) = hub.counters(cb.name()) else {
            continue;
        };
        let name = label(cb.name());
        for from in STATES {
            for to in STATES.into_iter().filter(|&to| to != from) {
                let _ = writeln!(
                    out,
                    "breaker_transitions_total{{breaker=\"{name}\",from=\"{from}\",to=\"{to}\"}} {}",
                    c.transitions[index(from)][index(to)].load(Ordering::Relaxed)
                );
            }
        }
    }
    out.push_str(
        "# HELP breaker_state 1 for the breaker's current state, 0 for the other two.\n\
         # TYPE breaker_state gauge\n",
    );
    for cb in &breakers {
        let name = label(cb.name());
        let now = cb.current_state();
        for state in STATES {
            let _ = writeln!(
                out,
                "breaker_state{{breaker=\"{name}\",state=\"{state}\"}} {}",
                u8::from(state == now)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_cannot_break_a_line() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
