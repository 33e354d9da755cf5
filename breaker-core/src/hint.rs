//! Hints: run-time notices of a setup that compiles but cannot do what it
//! says, such as an exclusion that can never match the errors a breaker
//! sees, or a `fail_if` on another type than a call's value. Given in
//! debug builds only, once per breaker, error type and excluded type (or
//! value type and judged type), to the hook set with [`set_hook`] (by default, printed to
//! standard error; with the `tracing` feature, a WARN event of target
//! `breaker` when a subscriber listens).
//!
//! ```
//! use breaker::hint::{self, Hint};
//! use breaker::CircuitBreaker;
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("invalid input")]
//! struct Invalid;
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("query failed")]
//! struct QueryError(#[source] Invalid);
//!
//! let heard = Arc::new(Mutex::new(Vec::new()));
//! let keep = heard.clone();
//! hint::set_hook(move |h: &Hint| keep.lock().unwrap().push(h.message().to_owned()));
//!
//! let cb = CircuitBreaker::builder("db").exclude::<Invalid>().build();
//! // `call` sees a concrete error as itself only: `Invalid` cannot be found.
//! let _ = cb.call(|| Err::<(), _>(QueryError(Invalid)));
//! # if cfg!(debug_assertions) {
//! assert!(heard.lock().unwrap()[0].contains("call_with_view"));
//! # }
//! ```

use std::any::TypeId;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Mutex, RwLock};

/// One hint: which breaker, and what to change.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Hint {
    breaker: &'static str,
    message: String,
}

impl Hint {
    /// The name of the breaker the hint is about.
    ///
    /// ```
    /// # let _ = breaker::hint::Hint::breaker;
    /// ```
    pub fn breaker(&self) -> &str {
        self.breaker
    }

    /// What is wrong and the fix, in one line.
    ///
    /// ```
    /// # let _ = breaker::hint::Hint::message;
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

type Hook = Box<dyn Fn(&Hint) + Send + Sync>;

static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

/// Sends hints to `hook` instead of standard error, for the whole process
/// (a log, a test that captures them). Hints are given in debug builds only.
///
/// ```
/// breaker::hint::set_hook(|h| eprintln!("[breaker {}] {h}", h.breaker()));
/// ```
pub fn set_hook(hook: impl Fn(&Hint) + Send + Sync + 'static) {
    *HOOK.write().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
}

fn give(hint: Hint) {
    match &*HOOK.read().unwrap_or_else(|p| p.into_inner()) {
        Some(hook) => hook(&hint),
        #[cfg(feature = "tracing")]
        None if crate::tracing::hint(&hint) => {}
        None => eprintln!("warning: {hint}"),
    }
}

/// (breaker, error type, excluded type), or (breaker, value type, type
/// `fail_if` judges), already told.
static TOLD: Mutex<Vec<(&'static str, TypeId, TypeId)>> = Mutex::new(Vec::new());

/// An exclusion of a type (by type or predicate) whose type was not found
/// in a failing error: tells why when that can be told.
///
/// `seen` is whether the error could be searched as `dyn Error`; `excluded`
/// names the excluded type as the user wrote it.
#[cold]
pub(crate) fn missed<E: fmt::Debug + 'static>(
    breaker: &'static str,
    error: &E,
    seen: Option<&(dyn StdError + 'static)>,
    excluded: &str,
    excluded_id: TypeId,
) {
    if !cfg!(debug_assertions) {
        return;
    }
    let key = (breaker, TypeId::of::<E>(), excluded_id);
    if key.1 == key.2 || told(key) {
        return;
    }
    let error_type = short(std::any::type_name::<E>());
    let excluded = short(excluded);
    let message = match seen {
        None if error_type == "anyhow::Error" => format!(
            "breaker '{breaker}' excludes `{excluded}` but `call` and `call_async` cannot search an `anyhow::Error` without the `anyhow` feature of `breaker`: enable it, or call through `#[circuit_breaker]`, which needs no feature"
        ),
        None => format!(
            "breaker '{breaker}' excludes `{excluded}` but `call` and `call_async` cannot search a `{error_type}`'s `source()` chain (they see boxed errors and `io::Error` only): call `call_with_view(f, |e| Some(e))` (or `call_async_with_view`), or exclude with `exclude_if(|e: &{error_type}| ..)`"
        ),
        Some(_) => {
            let shown = format!("{error:?}");
            if !mentions(&shown, &excluded) {
                return;
            }
            match variant(&shown, &error_type) {
                Some(v) => format!(
                    "breaker '{breaker}' excludes `{excluded}` but `{error_type}::{v}` holds it outside its `source()` chain (as `#[error(transparent)]` does: its `source()` skips the error it wraps); exclude `{error_type}::{v}(..)` instead, or `{error_type}::{v}(e) if ..` to keep a condition"
                ),
                None => format!(
                    "breaker '{breaker}' excludes `{excluded}` but a `{error_type}` holds it outside its `source()` chain (as `#[error(transparent)]` or a field without `#[source]` does); exclude with a predicate on `{error_type}` instead: `exclude_if(|e: &{error_type}| ..)`, or `exclude = [|e: &{error_type}| ..]` in the attribute"
                ),
            }
        }
    };
    if !remember(key) {
        return;
    }
    give(Hint { breaker, message });
}

/// A value of a type `fail_if`'s predicate does not take: it is never
/// judged, which a hint tells once per breaker and type.
#[cold]
pub(crate) fn not_judged(
    breaker: &'static str,
    (value_id, value_type): (TypeId, &'static str),
    (judged_id, judged_type): (TypeId, &'static str),
) {
    if !cfg!(debug_assertions) || told((breaker, value_id, judged_id)) {
        return;
    }
    if !remember((breaker, value_id, judged_id)) {
        return;
    }
    let (value_type, judged_type) = (short(value_type), short(judged_type));
    let message = format!(
        "breaker '{breaker}' has `fail_if` for `{judged_type}` values but a call returned a `{value_type}`, which it never judges: give `fail_if` a predicate on `{value_type}`, or use a breaker per result type"
    );
    give(Hint { breaker, message });
}

fn told(key: (&'static str, TypeId, TypeId)) -> bool {
    TOLD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&key)
}

/// Records `key`; false if another thread told it first.
fn remember(key: (&'static str, TypeId, TypeId)) -> bool {
    let mut told = TOLD.lock().unwrap_or_else(|p| p.into_inner());
    if told.contains(&key) {
        return false;
    }
    told.push(key);
    true
}

/// A type name as users write it: `exclusions::FetchError` becomes
/// `FetchError`, `reqwest::error::Error` becomes `reqwest::Error`, in every
/// path of the name (generic arguments too).
pub(crate) fn short(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut path = String::new();
    let flush = |path: &mut String, out: &mut String| {
        if !path.is_empty() {
            out.push_str(&short_path(path));
            path.clear();
        }
    };
    for c in type_name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            path.push(c);
        } else {
            flush(&mut path, &mut out);
            out.push(c);
        }
    }
    flush(&mut path, &mut out);
    out
}

fn short_path(path: &str) -> String {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., owner, "error", "Error"] | [.., owner, "Error"] => format!("{owner}::Error"),
        [.., last] => (*last).to_owned(),
        [] => path.to_owned(),
    }
}

/// Whether `debug` (an error's `Debug` output) shows a value of the type
/// named `excluded`: its last path segment as a whole word, and for a type
/// named just `Error`, with the module that owns it (`reqwest::Error`).
fn mentions(debug: &str, excluded: &str) -> bool {
    let excluded = excluded.split('<').next().unwrap_or(excluded);
    let short = short_path(excluded.trim());
    let word = match short.rsplit_once("::") {
        Some((_, "Error")) => short.as_str(),
        Some((_, last)) => last,
        None => short.as_str(),
    };
    debug.match_indices(word).any(|(at, _)| {
        let before = debug[..at].chars().next_back();
        let after = debug[at + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// The variant of an enum error, from its derived `Debug` (`Http(..)`,
/// `Http { .. }`): `None` for a struct (whose `Debug` starts with its name).
fn variant<'a>(debug: &'a str, error_type: &str) -> Option<&'a str> {
    let end = debug
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    let name = &debug[..end];
    let rest = &debug[end..];
    let own = error_type.rsplit("::").next().unwrap_or(error_type);
    let own = own.split('<').next().unwrap_or(own);
    (!name.is_empty()
        && name != own
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && (rest.starts_with('(') || rest.starts_with(" {")))
    .then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_the_ones_users_write() {
        assert_eq!(short("app::errors::FetchError"), "FetchError");
        assert_eq!(short("reqwest::error::Error"), "reqwest::Error");
        assert_eq!(short("std::io::error::Error"), "io::Error");
        assert_eq!(short("anyhow::Error"), "anyhow::Error");
        assert_eq!(
            short("alloc::boxed::Box<dyn core::error::Error + Send>"),
            "Box<dyn core::Error + Send>"
        );
    }

    #[test]
    fn a_mention_is_a_whole_word_with_its_owner_for_error() {
        assert!(mentions("Http(HttpError { status: 404 })", "HttpError"));
        assert!(mentions(
            "Http(HttpError { status: 404 })",
            "app::HttpError"
        ));
        assert!(!mentions("Http(HttpErrors(1))", "HttpError"));
        assert!(mentions(
            "Http(reqwest::Error { kind: Status(404) })",
            "reqwest::Error"
        ));
        assert!(!mentions("Db(sqlx::Error(..))", "reqwest::Error"));
        assert!(!mentions("Db(PgDatabaseError)", "reqwest::Error"));
    }

    #[test]
    fn a_variant_is_read_from_a_derived_debug() {
        assert_eq!(variant("Http(HttpError)", "app::FetchError"), Some("Http"));
        assert_eq!(variant("Http { inner: 1 }", "FetchError"), Some("Http"));
        assert_eq!(variant("FetchError(HttpError)", "app::FetchError"), None);
        assert_eq!(variant("Unit", "FetchError"), None);
    }
}
