//! The `#[circuit_breaker]` attribute of the [`breaker`](https://docs.rs/breaker)
//! crate. Implementation detail: depend on `breaker`, which re-exports it.
//!
//! The attribute keeps the function's signature and runs its body through
//! the breaker it names, reached through a static (no lookup per call) and
//! registered at start-up. See `breaker`'s documentation for the keys.

mod args;
mod expand;
mod kind;

use proc_macro::TokenStream;

/// Guards every call of a function with a named circuit breaker.
///
/// ```ignore
/// #[circuit_breaker(name = "db", fail_max = 5, reset_timeout = "60s", exclude = [ValidationError])]
/// fn update_customer(c: &Customer) -> Result<Customer, DbError> { /* ... */ }
/// ```
///
/// See the `breaker` crate for the keys and their meaning.
#[proc_macro_attribute]
pub fn circuit_breaker(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(args.into(), item.into()).into()
}
