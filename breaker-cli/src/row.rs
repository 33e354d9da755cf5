//! What the command prints: a breaker's row (the admin endpoint's JSON
//! shape), tables for people, JSON for scripts.

use serde::{Deserialize, Serialize};

/// One breaker, in the admin endpoint's JSON shape (`GET /breakers`), plus
/// the number of processes that use it when read from Redis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub state: String,
    pub fail_counter: u32,
    pub fail_max: Option<u32>,
    pub success_counter: u32,
    pub success_threshold: Option<u32>,
    pub reset_timeout_ms: Option<u64>,
    pub retry_after_ms: Option<u64>,
    pub opened_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    #[serde(default)]
    pub window: Option<serde_json::Value>,
}

/// A transition, in the admin endpoint's event shape (`GET /events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub name: String,
    pub from: String,
    pub to: String,
    pub at_ms: u64,
}

pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("rows serialise")
}

/// Open first, then half-open, then closed; by name within each.
pub fn sort(rows: &mut [Row]) {
    let rank = |state: &str| match state {
        "open" => 0,
        "half-open" => 1,
        "closed" => 2,
        _ => 3,
    };
    rows.sort_by(|a, b| {
        rank(&a.state)
            .cmp(&rank(&b.state))
            .then_with(|| a.name.cmp(&b.name))
    });
}

fn failures(row: &Row) -> String {
    match row.fail_max {
        Some(max) => format!("{}/{max}", row.fail_counter),
        None => row.fail_counter.to_string(),
    }
}

fn seconds(ms: Option<u64>) -> String {
    match ms {
        Some(ms) if ms >= 10_000 => format!("{}s", ms.div_ceil(1_000)),
        Some(ms) => format!("{:.1}s", ms as f64 / 1_000.0),
        None => "-".to_owned(),
    }
}

/// A table for people.
pub fn table(rows: &[Row]) -> String {
    let with_processes = rows.iter().any(|r| r.processes.is_some());
    let mut lines = vec![{
        let mut head = vec!["NAME", "STATE", "FAILURES", "RETRY AFTER"];
        if with_processes {
            head.push("PROCESSES");
        }
        head.into_iter().map(str::to_owned).collect::<Vec<_>>()
    }];
    for r in rows {
        let mut line = vec![
            r.name.clone(),
            r.state.clone(),
            failures(r),
            seconds(r.retry_after_ms),
        ];
        if with_processes {
            line.push(r.processes.map_or("-".to_owned(), |p| p.to_string()));
        }
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no breakers)\n");
    }
    out
}

/// One breaker for people, a field per line.
pub fn details(r: &Row) -> String {
    let mut out = format!(
        "name:              {}\nstate:             {}\n",
        r.name, r.state
    );
    out += &format!("failures:          {}\n", failures(r));
    if let Some(t) = r.success_threshold {
        out += &format!("trial successes:   {}/{t}\n", r.success_counter);
    }
    if let Some(ms) = r.reset_timeout_ms {
        out += &format!("reset timeout:     {}\n", seconds(Some(ms)));
    }
    if let Some(at) = r.opened_at_ms {
        out += &format!("opened at:         {}\n", utc(at));
    }
    if r.retry_after_ms.is_some() {
        out += &format!("retry after:       {}\n", seconds(r.retry_after_ms));
    }
    if let Some(p) = r.processes {
        out += &format!("processes:         {p}\n");
    }
    out
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time, to the millisecond.
pub fn utc(ms: u64) -> String {
    let (secs, milli) = (ms / 1_000, ms % 1_000);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: &str) -> Row {
        Row {
            name: name.into(),
            state: state.into(),
            fail_counter: 2,
            fail_max: Some(5),
            success_counter: 0,
            success_threshold: Some(1),
            reset_timeout_ms: Some(60_000),
            retry_after_ms: None,
            opened_at_ms: None,
            processes: None,
            window: None,
        }
    }

    #[test]
    fn open_breakers_come_first() {
        let mut rows = vec![row("b", "closed"), row("z", "open"), row("a", "half-open")];
        sort(&mut rows);
        let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "b"]);
    }

    #[test]
    fn a_table_aligns_its_columns() {
        let mut open = row("payments", "open");
        open.retry_after_ms = Some(41_200);
        let t = table(&[open, row("db", "closed")]);
        assert_eq!(
            t,
            "NAME      STATE   FAILURES  RETRY AFTER\n\
             payments  open    2/5       42s\n\
             db        closed  2/5       -\n"
        );
        assert_eq!(
            table(&[]),
            "NAME  STATE  FAILURES  RETRY AFTER\n(no breakers)\n"
        );
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_795_960_547_871), "2026-11-29T13:55:47.871Z");
    }
}
