//! Breakers declared with `#[circuit_breaker]`: the declarations generated
//! code makes, their merging by name, and the call site's handle.
//!
//! Each annotated function expands to a [`Declaration`] (its settings, made
//! at compile time), registered at link time as a [`Registration`], and a
//! [`Site`] static that resolves the declared breaker once. The registry
//! merges the declarations of each name when it starts ([`declare_all`]):
//! a name whose declarations cannot make a breaker (settings that disagree,
//! invalid settings, a storage or listener function that panics) is kept as
//! its error, so only that name fails, and only where it is used.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::breaker::CircuitBreaker;
use crate::builder::CircuitBreakerBuilder as Builder;
use crate::clock::ManualClock;
use crate::keyed::{Keyed, KeyedBreakers, ToKey};
use crate::state::WindowShape;

/// A setting given as code: the path as written (to compare declarations),
/// and how it configures a builder.
pub type Configure = (&'static str, fn(Builder) -> Builder);

/// The settings one `#[circuit_breaker]` gives; `None` where it gives none.
#[derive(Debug)]
pub struct Declaration {
    /// The breaker's name.
    pub name: &'static str,
    /// Whether `name` is the default (the function's path) rather than
    /// written: two functions with one default name are a mistake, not a
    /// shared breaker.
    pub default_name: bool,
    /// `module::path::function`, for messages.
    pub function: &'static str,
    /// `fail_max = ..`
    pub fail_max: Option<u32>,
    /// `reset_timeout = ".."`, parsed at compile time.
    pub reset_timeout: Option<Duration>,
    /// `success_threshold = ..`
    pub success_threshold: Option<u32>,
    /// `throw_new_error_on_trip = ..`
    pub throw_new_error_on_trip: Option<bool>,
    /// `storage = path`: the path as written, and how it configures a builder.
    pub storage: Option<Configure>,
    /// `listeners = [..]`: the paths as written, and how they configure a builder.
    pub listeners: Option<Configure>,
    /// `clock = path`: the function, shown, and the builder step it makes.
    pub clock: Option<Configure>,
    // Breakers per key (`keyed.rs`).
    /// `key = expr`: a keyed group rather than one breaker.
    pub keyed: bool,
    /// `max_keys = ..`
    pub max_keys: Option<usize>,
    /// `idle_timeout = ".."`, parsed at compile time.
    pub idle_timeout: Option<Duration>,
    /// `half_open_calls = ..`
    pub half_open_calls: Option<u32>,
    /// `backoff = exponential(..)` and `jitter = ..`, together.
    pub backoff: Option<crate::state::Backoff>,
    // Rate policies.
    /// `failure_rate = ..`
    pub failure_rate: Option<f64>,
    /// `window_calls = ..` or `window_time = ".."`.
    pub window: Option<WindowShape>,
    /// `min_calls = ..`
    pub min_calls: Option<u32>,
    // Slow calls.
    /// `slow_call_duration = ".."`, parsed at compile time.
    pub slow_call_duration: Option<Duration>,
    /// `slow_call_rate = ..`
    pub slow_call_rate: Option<f64>,
}

/// A declaration's entry in the link-time list.
#[derive(Debug)]
pub struct Registration(pub &'static Declaration);

inventory::collect!(Registration);

/// The breaker of one annotated function, resolved on first use.
#[derive(Debug)]
pub struct Site {
    declaration: &'static Declaration,
    /// A handle on the registry's breaker (the same shared state), held
    /// here rather than its `Arc`: one pointer less to follow per call.
    breaker: OnceLock<CircuitBreaker>,
}

impl Site {
    /// A site for `declaration`.
    pub const fn new(declaration: &'static Declaration) -> Self {
        Site {
            declaration,
            breaker: OnceLock::new(),
        }
    }

    /// The breaker: from the registry the first time, then from this static.
    ///
    /// # Panics
    /// When the declarations of this name cannot make a breaker (see
    /// [`super::declaration_errors`]); every call panics again, rather than
    /// running unguarded.
    #[inline(always)]
    pub fn get(&'static self) -> &'static CircuitBreaker {
        if super::isolate::active() {
            if let Some(cb) = super::isolate::declared(self.declaration.name) {
                return cb;
            }
        }
        match self.breaker.get() {
            Some(cb) => cb,
            None => self.resolve(),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&'static self) -> &'static CircuitBreaker {
        self.breaker.get_or_init(|| {
            let registered = super::declared(self.declaration);
            CircuitBreaker::from_shared(Arc::clone(&registered.shared))
        })
    }
}

/// Every declared name with its breaker, or the message saying why its
/// declarations cannot make one. Never panics.
pub(super) fn declare_all() -> BTreeMap<&'static str, Result<CircuitBreaker, String>> {
    let mut by_name: BTreeMap<&'static str, Vec<&'static Declaration>> = BTreeMap::new();
    for Registration(declaration) in inventory::iter::<Registration> {
        if declaration.keyed {
            continue; // a group: `keyed_all`
        }
        by_name
            .entry(declaration.name)
            .or_default()
            .push(declaration);
    }
    by_name
        .into_iter()
        .map(|(name, mut declarations)| {
            // Link order varies: messages name the functions in path order.
            declarations.sort_by_key(|d| d.function);
            (name, build(&declarations))
        })
        .collect()
}

/// Builds the breaker that `declarations` (all of one name) describe; a
/// panic in a `storage` or `listeners` function is reported as an error.
pub(super) fn build(declarations: &[&'static Declaration]) -> Result<CircuitBreaker, String> {
    build_on(declarations, None)
}

/// A fresh breaker from the declarations of `name` (`None` if nothing
/// declares it), on `clock` if one is given: for an isolated test.
pub(super) fn build_fresh(
    name: &str,
    clock: Option<&ManualClock>,
) -> Option<Result<CircuitBreaker, String>> {
    let mut declarations: Vec<&'static Declaration> = inventory::iter::<Registration>
        .into_iter()
        .map(|r| r.0)
        .filter(|d| d.name == name && !d.keyed)
        .collect();
    declarations.sort_by_key(|d| d.function);
    (!declarations.is_empty()).then(|| build_on(&declarations, clock))
}

fn build_on(
    declarations: &[&'static Declaration],
    clock: Option<&ManualClock>,
) -> Result<CircuitBreaker, String> {
    let first = declarations[0];
    catch_unwind(AssertUnwindSafe(|| merge(declarations, clock))).unwrap_or_else(|payload| {
        let reason = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        Err(format!(
            "circuit breaker '{}' declared on {}: building it panicked: {reason}",
            first.name, first.function
        ))
    })
}

/// Merges the settings of `declarations` into one breaker.
fn merge(
    declarations: &[&'static Declaration],
    clock: Option<&ManualClock>,
) -> Result<CircuitBreaker, String> {
    let first = declarations[0];
    let builder = configure(CircuitBreaker::builder(first.name), declarations, clock)?;
    builder.try_build().map_err(|e| {
        format!(
            "circuit breaker '{}' declared on {}: {e}",
            first.name, first.function
        )
    })
}

/// `builder` with the merged settings of `declarations`, or the conflict.
fn configure(
    mut builder: Builder,
    declarations: &[&'static Declaration],
    clock: Option<&ManualClock>,
) -> Result<Builder, String> {
    let first = declarations[0];
    let defaulted: Vec<_> = declarations.iter().filter(|d| d.default_name).collect();
    if let [one, _, ..] = defaulted[..] {
        return Err(format!(
            "circuit breaker '{}' is the default name of {} functions `{}` \
             (associated functions of different types in one module): give each its own \
             `name`, as in `#[circuit_breaker(name = \"..\")]`",
            first.name,
            defaulted.len(),
            one.function
        ));
    }
    macro_rules! merge {
        ($field:ident, $shown:expr, $apply:expr) => {{
            let mut chosen: Option<&'static Declaration> = None;
            for d in declarations {
                let Some(value) = &d.$field else { continue };
                match chosen {
                    None => chosen = Some(d),
                    Some(c) => {
                        let previous = c.$field.as_ref().expect("chosen has the field");
                        if $shown(previous) != $shown(value) {
                            return Err(conflict(
                                first.name,
                                stringify!($field),
                                c,
                                &$shown(previous),
                                d,
                                &$shown(value),
                            ));
                        }
                    }
                }
            }
            if let Some(value) = chosen.and_then(|c| c.$field.as_ref()) {
                builder = $apply(builder, value);
            }
        }};
    }
    merge!(fail_max, |v: &u32| v.to_string(), |b: Builder, v: &u32| b
        .fail_max(*v));
    merge!(
        reset_timeout,
        |v: &Duration| format!("{v:?}"),
        |b: Builder, v: &Duration| b.reset_timeout(*v)
    );
    merge!(
        success_threshold,
        |v: &u32| v.to_string(),
        |b: Builder, v: &u32| b.success_threshold(*v)
    );
    merge!(
        throw_new_error_on_trip,
        |v: &bool| v.to_string(),
        |b: Builder, v: &bool| b.throw_new_error_on_trip(*v)
    );
    merge!(
        storage,
        |v: &Configure| v.0.to_owned(),
        |b: Builder, v: &Configure| (v.1)(b)
    );
    merge!(
        listeners,
        |v: &Configure| v.0.to_owned(),
        |b: Builder, v: &Configure| (v.1)(b)
    );
    merge!(
        clock,
        |v: &Configure| v.0.to_owned(),
        |b: Builder, v: &Configure| (v.1)(b)
    );
    merge!(
        half_open_calls,
        |v: &u32| v.to_string(),
        |b: Builder, v: &u32| b.half_open_calls(*v)
    );
    merge!(
        backoff,
        |v: &crate::state::Backoff| format!("{v:?}"),
        |b: Builder, v: &crate::state::Backoff| b.backoff(*v)
    );
    merge!(
        failure_rate,
        |v: &f64| v.to_string(),
        |b: Builder, v: &f64| b.failure_rate(*v)
    );
    merge!(
        window,
        |v: &WindowShape| match v {
            WindowShape::Calls(n) => format!("window_calls = {n}"),
            WindowShape::Time(d) => format!("window_time = {d:?}"),
        },
        |b: Builder, v: &WindowShape| match *v {
            WindowShape::Calls(n) => b.window_calls(n),
            WindowShape::Time(d) => b.window_time(d),
        }
    );
    merge!(min_calls, |v: &u32| v.to_string(), |b: Builder, v: &u32| b
        .min_calls(*v));
    merge!(
        slow_call_duration,
        |v: &Duration| format!("{v:?}"),
        |b: Builder, v: &Duration| b.slow_call_duration(*v)
    );
    merge!(
        slow_call_rate,
        |v: &f64| v.to_string(),
        |b: Builder, v: &f64| b.slow_call_rate(*v)
    );
    if let Some(clock) = clock {
        builder = builder.clock(clock.clone());
    }
    Ok(builder)
}

fn conflict(
    name: &str,
    setting: &str,
    a: &Declaration,
    a_value: &str,
    b: &Declaration,
    b_value: &str,
) -> String {
    format!(
        "conflicting settings for circuit breaker '{name}': {setting} = {a_value} on {} but {setting} = {b_value} on {}",
        a.function, b.function
    )
}

/// The keyed group of one annotated function (`key = ..`), resolved on
/// first use.
#[derive(Debug)]
pub struct KeyedSite {
    declaration: &'static Declaration,
    group: OnceLock<KeyedBreakers<String>>,
}

impl KeyedSite {
    /// A site for `declaration`.
    pub const fn new(declaration: &'static Declaration) -> Self {
        KeyedSite {
            declaration,
            group: OnceLock::new(),
        }
    }

    /// The key's breaker, lent for a synchronous call.
    ///
    /// # Panics
    /// When the declarations of this name cannot make a group (see
    /// [`super::declaration_errors`]).
    #[inline]
    pub fn get<Q: ToKey + ?Sized>(&'static self, key: &Q) -> Keyed<'static> {
        let group = self.group();
        key.with_key(|text| group.get(text))
    }

    /// The key's breaker, owned: for an `async fn`, whose future must stay
    /// `Send`.
    ///
    /// # Panics
    /// As [`get`](Self::get).
    pub fn handle<Q: ToKey + ?Sized>(&'static self, key: &Q) -> Arc<CircuitBreaker> {
        let group = self.group();
        key.with_key(|text| group.handle(text))
    }

    #[inline(always)]
    fn group(&'static self) -> &'static KeyedBreakers<String> {
        if super::isolate::active() {
            if let Some(group) = super::isolate::declared_group(self.declaration.name) {
                return group;
            }
        }
        match self.group.get() {
            Some(group) => group,
            None => self.resolve(),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&'static self) -> &'static KeyedBreakers<String> {
        self.group.get_or_init(
            || match super::groups::declared_group(self.declaration.name) {
                Some(Ok(group)) => group,
                Some(Err(message)) => panic!("{message}"),
                None => unreachable!("a keyed site's declaration is registered"),
            },
        )
    }
}

/// Every name declared with `key`, with its group or the message saying
/// why its declarations cannot make one. Never panics.
pub(super) fn keyed_all() -> BTreeMap<&'static str, Result<KeyedBreakers<String>, String>> {
    let mut by_name: BTreeMap<&'static str, Vec<&'static Declaration>> = BTreeMap::new();
    let mut plain: BTreeMap<&'static str, &'static Declaration> = BTreeMap::new();
    for Registration(declaration) in inventory::iter::<Registration> {
        if declaration.keyed {
            by_name
                .entry(declaration.name)
                .or_default()
                .push(declaration);
        } else {
            plain.entry(declaration.name).or_insert(declaration);
        }
    }
    by_name
        .into_iter()
        .map(|(name, mut declarations)| {
            declarations.sort_by_key(|d| d.function);
            let group = match plain.get(name) {
                Some(other) => Err(format!(
                    "circuit breaker '{name}' is declared with `key` on {} but without on {}: \
                     a name is one breaker or one group of breakers per key",
                    declarations[0].function, other.function
                )),
                None => build_group(declarations),
            };
            (name, group)
        })
        .collect()
}

/// A fresh group from the declarations of `name` with `key` (`None` if
/// nothing declares it so), its breakers on `clock` if one is given: for an
/// isolated test.
pub(super) fn build_fresh_group(
    name: &str,
    clock: Option<&ManualClock>,
) -> Option<Result<KeyedBreakers<String>, String>> {
    let mut declarations: Vec<&'static Declaration> = inventory::iter::<Registration>
        .into_iter()
        .map(|r| r.0)
        .filter(|d| d.name == name && d.keyed)
        .collect();
    declarations.sort_by_key(|d| d.function);
    (!declarations.is_empty()).then(|| build_group_on(declarations, clock.cloned()))
}

fn build_group(declarations: Vec<&'static Declaration>) -> Result<KeyedBreakers<String>, String> {
    build_group_on(declarations, None)
}

fn build_group_on(
    declarations: Vec<&'static Declaration>,
    clock: Option<ManualClock>,
) -> Result<KeyedBreakers<String>, String> {
    let first = declarations[0];
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "circuit breaker '{}' declared on {}: {e}",
            first.name, first.function
        )
    };
    let max_keys = one_value(&declarations, |d| d.max_keys, "max_keys")?;
    let idle_timeout = one_value(&declarations, |d| d.idle_timeout, "idle_timeout")?;
    // Conflicts and invalid settings are found here, once: the same merge
    // then runs for every new key.
    catch_unwind(AssertUnwindSafe(|| {
        configure(
            CircuitBreaker::builder(first.name),
            &declarations,
            clock.as_ref(),
        )
        .map(drop)
    }))
    .map_err(|_| fail(&"building it panicked"))??;
    let mut builder = KeyedBreakers::<String>::builder(first.name, move |b| {
        configure(b, &declarations, clock.as_ref()).expect("checked when the group was declared")
    });
    if let Some(n) = max_keys {
        builder = builder.max_keys(n);
    }
    if let Some(d) = idle_timeout {
        builder = builder.idle_timeout(d);
    }
    catch_unwind(AssertUnwindSafe(|| builder.try_build()))
        .map_err(|_| fail(&"building it panicked"))?
        .map_err(|e| fail(&e))
}

/// The one value the declarations give for a group setting, or the conflict.
fn one_value<T: PartialEq + std::fmt::Debug + Copy>(
    declarations: &[&'static Declaration],
    value: impl Fn(&Declaration) -> Option<T>,
    setting: &str,
) -> Result<Option<T>, String> {
    let mut chosen: Option<(&Declaration, T)> = None;
    for d in declarations {
        let Some(v) = value(d) else { continue };
        match chosen {
            None => chosen = Some((d, v)),
            Some((c, previous)) if previous != v => {
                return Err(conflict(
                    d.name,
                    setting,
                    c,
                    &format!("{previous:?}"),
                    d,
                    &format!("{v:?}"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(chosen.map(|(_, v)| v))
}
