//! Which errors are not failures: exclusion by type and by predicate, and how
//! an error is searched (itself, inside a box, along its `source()` chain).

use std::any::{Any, TypeId};
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A guarded function's error, type-erased: printable and downcastable.
pub(crate) trait ErasedError: fmt::Debug + Any {
    fn as_any(&self) -> &dyn Any;
}

impl<T: fmt::Debug + Any> ErasedError for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Whether `E` is one of the containers [`container_view`] looks into:
/// decided at compile time, so that for any other type the view costs
/// nothing on a failure's path.
#[inline(always)]
pub(crate) fn is_container<E: 'static>() -> bool {
    let id = TypeId::of::<E>();
    #[cfg(feature = "anyhow")]
    if id == TypeId::of::<anyhow::Error>() {
        return true;
    }
    id == TypeId::of::<Box<dyn StdError + Send + Sync>>()
        || id == TypeId::of::<Box<dyn StdError + Send>>()
        || id == TypeId::of::<Box<dyn StdError>>()
        || id == TypeId::of::<Arc<dyn StdError + Send + Sync>>()
        || id == TypeId::of::<std::io::Error>()
}

/// Sees the error as `dyn Error` when it is a known container of one.
///
/// A concrete `E: Error` cannot be recognised here (no specialisation on
/// stable Rust); the attribute passes such a view itself.
pub(crate) fn container_view(any: &dyn Any) -> Option<&(dyn StdError + 'static)> {
    if let Some(b) = any.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
        return Some(&**b);
    }
    if let Some(b) = any.downcast_ref::<Box<dyn StdError + Send>>() {
        return Some(&**b);
    }
    if let Some(b) = any.downcast_ref::<Box<dyn StdError>>() {
        return Some(&**b);
    }
    if let Some(b) = any.downcast_ref::<Arc<dyn StdError + Send + Sync>>() {
        return Some(&**b);
    }
    // std's own error container: `io::Error::new(kind, e)` holds a boxed `e`.
    if let Some(e) = any.downcast_ref::<std::io::Error>() {
        return Some(e);
    }
    #[cfg(feature = "anyhow")]
    if let Some(e) = any.downcast_ref::<anyhow::Error>() {
        let e: &(dyn StdError + Send + Sync + 'static) = e.as_ref();
        return Some(e);
    }
    None
}

/// The first `Some` that `f` gives along `e`'s chain: `e`, then its sources.
/// An `io::Error` made with `io::Error::new` hides the error it wraps from
/// `source()` (it returns that error's source); the walk goes into it instead.
pub(crate) fn chain_find<'a, T>(
    e: &'a (dyn StdError + 'static),
    mut f: impl FnMut(&'a (dyn StdError + 'static)) -> Option<T>,
) -> Option<T> {
    let mut current = Some(e);
    let mut depth = 0;
    while let Some(e) = current {
        if let Some(found) = f(e) {
            return Some(found);
        }
        depth += 1;
        if depth > 64 {
            // A cyclic or absurdly deep chain: stop rather than loop forever.
            return None;
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

type Matcher = dyn Fn(&dyn Any, Option<&(dyn StdError + 'static)>) -> bool + Send + Sync;

/// Whether the excluded type is in an error (as itself or in its chain).
type Finder = fn(&dyn Any, Option<&(dyn StdError + 'static)>) -> bool;

/// One exclusion rule.
#[derive(Clone)]
pub(crate) struct Exclusion {
    type_id: TypeId,
    type_name: &'static str,
    by_type: bool,
    matcher: Arc<Matcher>,
    finder: Finder,
}

impl Exclusion {
    pub(crate) fn by_type<T: StdError + 'static>() -> Self {
        Exclusion {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            finder: |any, as_error| find::<T>(any, as_error).is_some(),
            by_type: true,
            matcher: Arc::new(|any, as_error| find::<T>(any, as_error).is_some()),
        }
    }

    pub(crate) fn predicate<T, F>(predicate: F) -> Self
    where
        T: StdError + 'static,
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        Exclusion {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            finder: |any, as_error| find::<T>(any, as_error).is_some(),
            by_type: false,
            matcher: Arc::new(move |any, as_error| {
                find::<T>(any, as_error).is_some_and(&predicate)
            }),
        }
    }

    pub(crate) fn is_type<T: 'static>(&self) -> bool {
        self.by_type && self.type_id == TypeId::of::<T>()
    }

    /// Gives a hint (debug builds) when `error`, a failure, does not hold
    /// this exclusion's type where it can be found.
    pub(crate) fn hint_if_missed<E: fmt::Debug + 'static>(
        &self,
        breaker: &'static str,
        error: &E,
        as_error: Option<&(dyn StdError + 'static)>,
    ) {
        if !(self.finder)(error, as_error) {
            crate::hint::missed(breaker, error, as_error, self.type_name, self.type_id);
        }
    }

    pub(crate) fn matches(
        &self,
        any: &dyn Any,
        as_error: Option<&(dyn StdError + 'static)>,
    ) -> bool {
        (self.matcher)(any, as_error)
    }
}

/// The first `T` among the error itself and the chain of its `dyn Error` view.
pub(crate) fn find<'a, T: StdError + 'static>(
    any: &'a dyn Any,
    as_error: Option<&'a (dyn StdError + 'static)>,
) -> Option<&'a T> {
    any.downcast_ref::<T>()
        .or_else(|| as_error.and_then(|e| chain_find(e, |e| e.downcast_ref::<T>())))
}

impl fmt::Debug for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exclusion")
            .field("type_id", &self.type_id)
            .field("by_type", &self.by_type)
            .finish_non_exhaustive()
    }
}
