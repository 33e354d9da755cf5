//! Pieces shared by the root test binaries.

// Each test binary compiles this module on its own (`mod common;`) and uses
// only a subset of it: what one binary leaves unused is not dead code.
#![allow(dead_code)]

pub mod breakers;
pub mod errors;
pub mod panics;
pub mod recorder;

use std::sync::Mutex;

use breaker::storage::{step, Applied, Limits, Op, Snapshot, Storage};
use breaker::{CircuitBreakerBuilder, MemoryStorage};

/// The whole state under a mutex, changed only by `step`: the contract of
/// `Storage` in its plainest form, to run the breaker's generic-storage
/// path beside the lock-free memory storage.
#[derive(Default)]
pub struct LockedStorage(Mutex<Snapshot>);

impl Storage for LockedStorage {
    fn load(&self) -> Snapshot {
        *self.0.lock().unwrap()
    }

    fn apply(&self, op: Op, limits: &Limits) -> Applied {
        let mut current = self.0.lock().unwrap();
        let before = *current;
        let (after, outcome) = step(&before, op, limits);
        *current = after;
        Applied {
            before,
            after,
            outcome,
        }
    }
}

/// Which storage a breaker runs on: the default lock-free memory storage or
/// a [`LockedStorage`].
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Locked,
}

/// Both backends, for a test that runs on each.
pub const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Locked];

impl Backend {
    /// `builder` with a fresh storage of this kind.
    pub fn storage(self, builder: CircuitBreakerBuilder) -> CircuitBreakerBuilder {
        match self {
            Backend::Memory => builder.storage(MemoryStorage::new()),
            Backend::Locked => builder.storage(LockedStorage::default()),
        }
    }
}
