//! A process's admin endpoint (`breaker::admin::router`): plain HTTP, JSON,
//! server-sent events.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use ureq::Agent;

use crate::row::{Row, Transition};
use crate::{Action, Source};

pub struct Admin {
    base: String,
    token: Option<String>,
    agent: Agent,
    /// For the event stream, which stays open.
    watcher: Agent,
}

impl Admin {
    pub fn new(url: &str, token: Option<String>) -> Admin {
        let agent = |timeout| {
            Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(timeout)
                .build()
                .new_agent()
        };
        Admin {
            base: url.trim_end_matches('/').to_owned(),
            token,
            agent: agent(Some(Duration::from_secs(5))),
            watcher: agent(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, e: ureq::Error) -> String {
        format!("cannot reach the admin endpoint {}: {e}", self.base)
    }

    /// The body of a successful answer, or the error it stands for.
    fn answer(
        &self,
        what: &str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<String, String> {
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        let said = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| body.trim().chars().take(200).collect());
        match status {
            200..=299 => Ok(body),
            401 => Err(format!(
                "{what}: unauthorised: give the admin token with --token"
            )),
            403 => Err(format!(
                "{what}: refused: the endpoint has no token configured, so it allows no changes"
            )),
            404 => Err(format!("{what}: not found ({said})")),
            _ => Err(format!("{what}: the endpoint answered {status} ({said})")),
        }
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let response = self
            .agent
            .get(&self.url(path))
            .call()
            .map_err(|e| self.unreachable(e))?;
        let body = self.answer(&format!("GET {path}"), response)?;
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: unexpected answer: {e}"))
    }
}

/// `name` as one path segment.
fn segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Source for Admin {
    fn list(&self) -> Result<Vec<Row>, String> {
        self.get_json("/breakers")
    }

    fn get(&self, name: &str) -> Result<Row, String> {
        self.get_json(&format!("/breakers/{}", segment(name)))
    }

    fn apply(&self, name: &str, action: Action) -> Result<Row, String> {
        let path = format!("/breakers/{}/{}", segment(name), action.path());
        let mut request = self.agent.post(&self.url(&path));
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let response = request.send_empty().map_err(|e| self.unreachable(e))?;
        self.answer(&format!("POST {path}"), response)?;
        self.get(name)
    }

    fn watch(&self, each: &mut dyn FnMut(Transition) -> bool) -> Result<(), String> {
        let response = self
            .watcher
            .get(&self.url("/events"))
            .header("Accept", "text/event-stream")
            .call()
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return self.answer("GET /events", response).map(drop);
        }
        let reader = BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| format!("the event stream broke: {e}"))?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let Ok(t) = serde_json::from_str::<Transition>(data.trim()) else {
                continue;
            };
            if !each(t) {
                return Ok(());
            }
        }
        Err(format!(
            "the admin endpoint {} closed the event stream",
            self.base
        ))
    }
}
