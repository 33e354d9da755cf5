//! The fleet's breakers in Redis, through `RedisStorage::fleet`.

use std::time::{Duration, UNIX_EPOCH};

use breaker::redis::{FleetBreaker, RedisStorageError};
use breaker::RedisStorage;

use crate::row::{Row, Transition};
use crate::{Action, Source};

pub struct Redis {
    storage: RedisStorage,
    url: String,
    namespace: String,
}

impl Redis {
    pub fn connect(url: &str, namespace: &str) -> Result<Redis, String> {
        let storage = RedisStorage::builder(url)
            .namespace(namespace)
            .connect_timeout(Duration::from_secs(2))
            .command_timeout(Duration::from_secs(2))
            .subscribe(false)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Redis {
            storage,
            url: url.to_owned(),
            namespace: namespace.to_owned(),
        })
    }

    fn error(&self, e: RedisStorageError) -> String {
        format!("cannot use Redis at {}: {e}", self.url)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn row(b: FleetBreaker) -> Row {
    Row {
        state: b.state_text(),
        fail_counter: b.fail_counter,
        fail_max: b.settings.map(|s| s.fail_max),
        success_counter: b.success_counter,
        success_threshold: b.settings.map(|s| s.success_threshold),
        reset_timeout_ms: b.settings.map(|s| ms(s.reset_timeout)),
        retry_after_ms: b.retry_after.map(ms),
        opened_at_ms: b
            .opened_at
            .map(|at| ms(at.duration_since(UNIX_EPOCH).unwrap_or_default())),
        processes: Some(b.processes),
        window: None,
        name: b.name,
    }
}

impl Source for Redis {
    fn list(&self) -> Result<Vec<Row>, String> {
        let list = self.storage.fleet().list().map_err(|e| self.error(e))?;
        Ok(list.into_iter().map(row).collect())
    }

    fn get(&self, name: &str) -> Result<Row, String> {
        let b = self.storage.fleet().get(name).map_err(|e| self.error(e))?;
        // A name no live process registered, whose state is a missing key.
        let unknown = b.processes == 0
            && b.settings.is_none()
            && b.fail_counter == 0
            && b.state == Some(breaker::State::Closed);
        if unknown {
            return Err(format!(
                "no breaker named '{name}' in namespace '{}' (no live process uses it)",
                self.namespace
            ));
        }
        Ok(row(b))
    }

    fn apply(&self, name: &str, action: Action) -> Result<Row, String> {
        let fleet = self.storage.fleet();
        match action {
            Action::Open => fleet.open(name),
            Action::Close => fleet.close(name),
            Action::HalfOpen => fleet.half_open(name),
            Action::Reset => fleet.reset(name),
        }
        .map_err(|e| self.error(e))?;
        let b = fleet.get(name).map_err(|e| self.error(e))?;
        Ok(row(b))
    }

    fn watch(&self, each: &mut dyn FnMut(Transition) -> bool) -> Result<(), String> {
        let events = self.storage.fleet().watch().map_err(|e| self.error(e))?;
        for t in events {
            let at_ms = ms(t.at.duration_since(UNIX_EPOCH).unwrap_or_default());
            let t = Transition {
                name: t.name,
                from: t.from.to_string(),
                to: t.to.to_string(),
                at_ms,
            };
            if !each(t) {
                return Ok(());
            }
        }
        Err(format!("lost the subscription to Redis at {}", self.url))
    }
}
