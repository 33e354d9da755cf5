//! Autoref specialisation for the attribute's generated code: stable Rust
//! has no specialisation, so whether an error type implements `Error` (and
//! can be searched along its `source()` chain) is decided by method
//! resolution on `&&Wrap(e)`, `&Wrap(e)` and `Wrap(e)`, `&Probe<T>` versus
//! `Probe<T>`. The more specific impl is on the reference, which method
//! lookup tries first.

use std::any::Any;
use std::error::Error as StdError;
use std::marker::PhantomData;

use crate::exclude::{chain_find, container_view, is_container};

/// Autoref specialisation: `(&&&Wrap(e)).breaker_view()` sees `e` as
/// `dyn Error` when its type implements `Error`, through `as_ref()` when it
/// is a report type such as `anyhow::Error` or `eyre::Report` (no cargo
/// feature needed), and looks through boxed errors otherwise.
pub struct Wrap<'a, E>(pub &'a E);

/// The most specific case of [`Wrap`]: `E: Error`.
pub trait ViewError<'a> {
    /// `e` as `dyn Error`.
    fn breaker_view(&self) -> Option<&'a (dyn StdError + 'static)>;
}

impl<'a, E: StdError + 'static> ViewError<'a> for &&Wrap<'a, E> {
    fn breaker_view(&self) -> Option<&'a (dyn StdError + 'static)> {
        Some(self.0)
    }
}

/// The middle case of [`Wrap`]: `E: AsRef<dyn Error + Send + Sync>`, as
/// `anyhow::Error`, `eyre::Report` and `Box<dyn Error + Send + Sync>` are.
pub trait ViewAsRef<'a> {
    /// `e.as_ref()`.
    fn breaker_view(&self) -> Option<&'a (dyn StdError + 'static)>;
}

impl<'a, E> ViewAsRef<'a> for &Wrap<'a, E>
where
    E: AsRef<dyn StdError + Send + Sync + 'static> + 'static,
{
    fn breaker_view(&self) -> Option<&'a (dyn StdError + 'static)> {
        let e: &'a (dyn StdError + Send + Sync + 'static) = self.0.as_ref();
        Some(e)
    }
}

/// The general case of [`Wrap`].
pub trait ViewAny<'a> {
    /// `e` as `dyn Error` if it is a known container of one.
    fn breaker_view(&self) -> Option<&'a (dyn StdError + 'static)>;
}

impl<'a, E: 'static> ViewAny<'a> for Wrap<'a, E> {
    #[inline(always)]
    fn breaker_view(&self) -> Option<&'a (dyn StdError + 'static)> {
        match is_container::<E>() {
            true => container_view(self.0),
            false => None,
        }
    }
}

/// Autoref specialisation for `exclude = [T]`: finds a `T` as the error
/// itself and, when `T: Error`, along the error's `source()` chain.
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    /// The probe.
    pub const NEW: Self = Probe(PhantomData);

    /// The probe for the argument type of a predicate function
    /// (`exclude = [path::to::predicate]`).
    #[inline(always)]
    pub fn of<F: Fn(&T) -> bool>(_: &F) -> Self {
        Probe(PhantomData)
    }
}

/// The specific case of [`Probe`]: `T: Error`.
pub trait ProbeError<T> {
    /// The first `T` in `error` or its chain.
    fn breaker_find<'a>(
        &self,
        error: &'a dyn Any,
        chain: Option<&'a (dyn StdError + 'static)>,
    ) -> Option<&'a T>;
}

impl<T: StdError + 'static> ProbeError<T> for &Probe<T> {
    fn breaker_find<'a>(
        &self,
        error: &'a dyn Any,
        chain: Option<&'a (dyn StdError + 'static)>,
    ) -> Option<&'a T> {
        error
            .downcast_ref::<T>()
            .or_else(|| chain.and_then(|e| chain_find(e, |e| e.downcast_ref::<T>())))
    }
}

/// The general case of [`Probe`].
pub trait ProbeAny<T> {
    /// `error` as a `T`, if it is one.
    fn breaker_find<'a>(
        &self,
        error: &'a dyn Any,
        chain: Option<&'a (dyn StdError + 'static)>,
    ) -> Option<&'a T>;
}

impl<T: 'static> ProbeAny<T> for Probe<T> {
    fn breaker_find<'a>(
        &self,
        error: &'a dyn Any,
        _: Option<&'a (dyn StdError + 'static)>,
    ) -> Option<&'a T> {
        error.downcast_ref::<T>()
    }
}

/// Autoref specialisation for the check that an `exclude` entry's type `T`
/// can ever match the function's error `E`: `T` is `E`, or an `Error` that
/// a search of `E` could find. Anything else is refused at compile time.
pub struct Check<T, E>(PhantomData<fn() -> (T, E)>);

impl<T, E> Check<T, E> {
    /// The check, with `E` taken from the error.
    #[inline(always)]
    pub fn of(_: &E) -> Self {
        Check(PhantomData)
    }
}

/// `T: Error`: it may be in the chain.
pub trait CheckError {
    /// Passes.
    #[inline(always)]
    fn breaker_check(&self) {}
}

impl<T: StdError, E> CheckError for &&Check<T, E> {}

/// `T` is `E` itself.
pub trait CheckSame {
    /// Passes.
    #[inline(always)]
    fn breaker_check(&self) {}
}

impl<E> CheckSame for &Check<E, E> {}

/// Anything else: a compile error naming the entry.
pub trait CheckAny<T, E> {
    /// Fails to compile.
    #[inline(always)]
    fn breaker_check(&self)
    where
        T: Excludable<E>,
    {
    }
}

impl<T, E> CheckAny<T, E> for Check<T, E> {}

/// Implemented by no type: the error of [`CheckAny`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` can never be excluded from a `{E}`",
    label = "not the function's error type, and not an `Error` to find in its `source()` chain",
    note = "an `exclude` type is the function's error type or an error type found along its `source()` chain; for a variant of the error, write a pattern (`MyError::Variant(..)`)"
)]
pub trait Excludable<E> {}

/// The error as `&dyn Any`, for [`Probe`].
#[inline(always)]
pub fn as_any<E: 'static>(e: &E) -> &dyn Any {
    e
}

/// Typed identity for the closures in `exclude = [|e: &T| ..]`, so their
/// argument type is checked where the user wrote it.
#[inline(always)]
pub fn predicate<T, P: Fn(&T) -> bool>(p: P) -> P {
    p
}
