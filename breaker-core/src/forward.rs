//! One macro declares a trait and its forwarding impls, so that a method
//! added to the trait is forwarded by every impl: written out by hand, the
//! impls drift (`impl Clock for Arc<C>` once forwarded only `now`, and the
//! coarse readings silently fell back to the precise clock).

/// Declares `pub trait $name` with the given methods (each with or without
/// a default body), and impls of it for `&'static T`, `Box<T>` and
/// `Arc<T>` that forward every method to `T`.
macro_rules! trait_with_forwarding {
    (
        $(#[$attr:meta])*
        pub trait $name:ident: $first:ident $(+ $bound:ident)* $(+ $lt:lifetime)? {
            $(
                $(#[$fattr:meta])*
                fn $f:ident(&$self:ident $(, $arg:ident: $argty:ty)* $(,)?) $(-> $ret:ty)?
                $(; $($semi:lifetime)?)? $($default:block)?
            )*
        }
    ) => {
        $(#[$attr])*
        pub trait $name: $first $(+ $bound)* $(+ $lt)? {
            $(
                $(#[$fattr])*
                fn $f(&$self $(, $arg: $argty)*) $(-> $ret)? $(; $($semi)?)? $($default)?
            )*
        }

        impl<T: $name + ?Sized> $name for &'static T {
            $(
                #[inline]
                fn $f(&$self $(, $arg: $argty)*) $(-> $ret)? {
                    (**$self).$f($($arg),*)
                }
            )*
        }

        impl<T: $name + ?Sized> $name for ::std::boxed::Box<T> {
            $(
                #[inline]
                fn $f(&$self $(, $arg: $argty)*) $(-> $ret)? {
                    (**$self).$f($($arg),*)
                }
            )*
        }

        impl<T: $name + ?Sized> $name for ::std::sync::Arc<T> {
            $(
                #[inline]
                fn $f(&$self $(, $arg: $argty)*) $(-> $ret)? {
                    (**$self).$f($($arg),*)
                }
            )*
        }
    };
}

pub(crate) use trait_with_forwarding;
