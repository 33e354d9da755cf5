//! `GET /metrics`: the metrics of the `metrics` feature in Prometheus text
//! format, rendered from what the admin's own listener counted and what
//! each breaker reports, so no global recorder is needed. A keyed group's
//! breakers are series of their own, labelled `breaker="http",key="host-a"`:
//! one series per live key, so `max_keys` bounds what a group adds (see the
//! cardinality note of `breaker::metrics`).
//!
//! `breaker_calls_total` has every outcome. Successes are counted on
//! per-thread stripes (`events.rs`), summed here.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::events::{hub, index, Counters, STATES};
use super::rows::name_of;
use crate::breaker::CircuitBreaker;
use crate::registry;
use crate::state::State;

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

/// One breaker's series: its labels and what is known of it.
struct Series {
    /// `breaker="http",key="host-a"` (escaped), or `breaker="db"`.
    labels: String,
    counters: Option<Arc<Counters>>,
    state: State,
}

impl Series {
    fn of(cb: &CircuitBreaker) -> Series {
        let mut labels = format!("breaker=\"{}\"", label(cb.name()));
        if let Some(key) = cb.key() {
            let _ = write!(labels, ",key=\"{}\"", label(key));
        }
        Series {
            labels,
            counters: hub().counters(&name_of(cb)),
            state: cb.current_state(),
        }
    }
}

/// The exposition of every registered breaker, and of every breaker of the
/// registered keyed groups: a key's series carry `key` beside `breaker`
/// (the group's name); a group's overflow breaker has the group's name and
/// no `key`.
pub(crate) fn render() -> String {
    let mut breakers: Vec<Series> = registry::names()
        .into_iter()
        .filter_map(|name| registry::try_get(&name))
        .map(|cb| Series::of(&cb))
        .collect();
    registry::visit_groups(&mut |_, cb| breakers.push(Series::of(cb)));
    let mut out = String::new();
    out.push_str(
        "# HELP breaker_calls_total Calls through the breaker by outcome, since the admin router started listening to it.\n\
         # TYPE breaker_calls_total counter\n",
    );
    for b in &breakers {
        let Some(c) = &b.counters else {
            continue;
        };
        for (outcome, n) in [
            ("success", c.success.total()),
            ("failure", c.failure.load(Ordering::Relaxed)),
            ("excluded", c.excluded.load(Ordering::Relaxed)),
            ("rejected", c.rejected.load(Ordering::Relaxed)),
            ("cancelled", c.cancelled.load(Ordering::Relaxed)),
        ] {
            let _ = writeln!(
                out,
                "breaker_calls_total{{{},outcome=\"{outcome}\"}} {n}",
                b.labels,
            );
        }
    }
    out.push_str(
        "# HELP breaker_transitions_total State transitions, counted since the admin router started listening to the breaker.\n\
         # TYPE breaker_transitions_total counter\n",
    );
    for b in &breakers {
        let Some(c) = &b.counters else {
            continue;
        };
        for from in STATES {
            for to in STATES.into_iter().filter(|&to| to != from) {
                let _ = writeln!(
                    out,
                    "breaker_transitions_total{{{},from=\"{from}\",to=\"{to}\"}} {}",
                    b.labels,
                    c.transitions[index(from)][index(to)].load(Ordering::Relaxed)
                );
            }
        }
    }
    out.push_str(
        "# HELP breaker_state 1 for the breaker's current state, 0 for the other two.\n\
         # TYPE breaker_state gauge\n",
    );
    for b in &breakers {
        for state in STATES {
            let _ = writeln!(
                out,
                "breaker_state{{{},state=\"{state}\"}} {}",
                b.labels,
                u8::from(state == b.state)
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
