//! Breaker names: `'static` strings, so errors carry them for free.

/// A breaker's name, `'static` so that building a [`CircuitBreakerError`]
/// never allocates nor touches a shared reference count: string literals as
/// they are, other names interned once per distinct name for the life of the
/// process (a program makes a bounded set of breaker names).
#[derive(Clone, Copy)]
pub(crate) struct Name(&'static str);

impl Name {
    pub(crate) fn as_str(&self) -> &'static str {
        self.0
    }
}

impl From<std::borrow::Cow<'static, str>> for Name {
    fn from(name: std::borrow::Cow<'static, str>) -> Self {
        match name {
            std::borrow::Cow::Borrowed(s) => Name(s),
            std::borrow::Cow::Owned(s) => Name(intern(s)),
        }
    }
}

fn intern(name: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match names.get(name.as_str()) {
        Some(interned) => interned,
        None => {
            let interned: &'static str = Box::leak(name.into_boxed_str());
            names.insert(interned);
            interned
        }
    }
}
