//! The `#[circuit_breaker]` attribute of the [`breaker`](https://docs.rs/breaker)
//! crate. Implementation detail: depend on `breaker`, which re-exports it.

mod args;
mod expand;
mod kind;

use proc_macro::TokenStream;

/// Guards every call of a function with a named circuit breaker.
///
/// ```
/// use breaker::{circuit_breaker, registry, CircuitBreakerError, State};
///
/// #[derive(Debug, thiserror::Error)]
/// enum DbError {
///     #[error("connection refused")]
///     Down,
///     #[error("invalid customer")]
///     Validation,
///     #[error(transparent)]
///     Breaker(#[from] CircuitBreakerError), // what a rejected call returns
/// }
///
/// #[circuit_breaker(name = "db", fail_max = 2, reset_timeout = "60s", exclude = [DbError::Validation])]
/// fn update_customer(id: u64) -> Result<u64, DbError> {
///     if id == 0 {
///         return Err(DbError::Validation); // excluded: not a failure
///     }
///     Err(DbError::Down)
/// }
///
/// // Registered before the first call:
/// assert_eq!(registry::get("db").current_state(), State::Closed);
/// let _ = update_customer(1);
/// let _ = update_customer(1); // opens the circuit
/// assert!(matches!(update_customer(1), Err(DbError::Breaker(_)))); // rejected, did not run
/// registry::get("db").reset();
/// ```
///
/// # What it accepts
///
/// - `fn`s and `async fn`s returning `Result<T, E>` (or an alias whose name
///   ends in `Result`), free or in `impl` blocks and trait impls, generic or
///   not: the body runs as one call. `async fn`s are admitted when first
///   polled; a dropped future counts as neither success nor failure.
/// - `fn`s returning `impl Iterator<Item = Result<T, E>>` or
///   `Result<impl Iterator<Item = Result<T, E>>, E2>`: the breaker is checked
///   when the function is called and the whole iteration is one call: the
///   first `Err` item that is not excluded is its failure, reaching the end
///   its success, dropping the iterator early neither.
/// - `fn`s returning `impl Future<Output = Result<T, E>>` or
///   `Pin<Box<dyn Future<Output = Result<T, E>> + ..>>` (the shape
///   `#[async_trait]` gives an `async fn`, so the attribute works on the
///   methods of an `#[async_trait]` impl): the body runs when the function
///   is called, and the future it makes is one call, as an `async fn`'s.
///
/// The signature, generics, attributes and docs stay as written. `E` must
/// implement `From<CircuitBreakerError>`: a rejected call, and the call whose
/// failure opens the circuit (while `throw_new_error_on_trip` is on), return
/// `Err(E::from(..))`; every other call returns the function's own result.
///
/// # Keys
///
/// | key | value | default |
/// |---|---|---|
/// | `name` | `"db"` | a free function's module path and name; methods need one (see [Names](#names)) |
/// | `fail_max` | `5` (1 to 65,535) | 5 |
/// | `reset_timeout` | `"500ms"`, `"60s"`, `"1m30s"`, `"2h"` | `"60s"` |
/// | `success_threshold` | `1` (1 to 255) | 1 |
/// | `throw_new_error_on_trip` | `true` / `false` | `true` |
/// | `exclude` | `[Type, Enum::Variant(..), Enum::Variant(e) if guard, \|e: &T\| predicate, path::to::predicate]` | none |
/// | `storage` | `path::to::fn` returning a [`Storage`](https://docs.rs/breaker/latest/breaker/storage/trait.Storage.html) | memory |
/// | `listeners` | `[path::to::fn, ..]`, each returning a listener | none |
/// | `crate` | `"path"` to the `breaker` crate if renamed | `"::breaker"` |
/// | `fallback` | `path::to::fn` with the same parameters (and `&self`) and return type | none |
/// | `clock` | `path::to::fn` returning a [`Clock`](https://docs.rs/breaker/latest/breaker/clock/trait.Clock.html), such as a `ManualClock` in tests | the system clock |
/// | `half_open_calls` | `3` (1 to 255): trials admitted at once in half-open | `1` |
/// | `backoff` | `exponential(2.0, "10m")`: each re-opening stays open `factor` times longer, up to the cap | constant |
/// | `jitter` | `0.2` (0 up to 1): spreads each open period within ± that share | `0` |
/// | `failure_rate` | `0.5` (above 0, at most 1): open when failures / calls in the window reach it | none (the consecutive `fail_max` alone) |
/// | `window_calls` | `100` (1 to 32,768): the rate over the last calls | `100` |
/// | `window_time` | `"60s"` (at least `"10ms"`): the rate over the last span, instead of `window_calls` | none |
/// | `min_calls` | `20` (at least 1): calls the window must hold before a rate is decided | `10` |
/// | `slow_call_duration` | `"2s"` (above zero): a call that took longer is slow, success or failure | none |
/// | `slow_call_rate` | `0.8` (above 0, at most 1): open when slow calls / calls in the window reach it (needs `slow_call_duration`) | none |
/// | `fail_if` | `\|r: &T\| predicate` on the `Ok` type (`fn` and `async fn`): an `Ok` value it accepts is recorded as a failure, and still returned | none |
///
/// The rate keys are the builder's
/// ([`failure_rate`](https://docs.rs/breaker/latest/breaker/struct.CircuitBreakerBuilder.html#method.failure_rate)):
/// with `failure_rate` and no `fail_max`, the consecutive condition is off;
/// with both, the circuit opens when either holds. The call whose failure
/// makes the rate hold opens the circuit.
///
/// ```
/// use breaker::{circuit_breaker, registry, CircuitBreakerError, State};
///
/// #[derive(Debug)]
/// struct ApiError;
///
/// impl From<CircuitBreakerError> for ApiError {
///     fn from(_: CircuitBreakerError) -> Self {
///         ApiError
///     }
/// }
///
/// #[circuit_breaker(name = "api", failure_rate = 0.5, window_calls = 10, min_calls = 4)]
/// fn get(fail: bool) -> Result<u32, ApiError> {
///     if fail { Err(ApiError) } else { Ok(1) }
/// }
///
/// for fail in [false, true, false, true] {
///     let _ = get(fail); // never two failures in a row
/// }
/// assert_eq!(registry::get("api").current_state(), State::Open); // 2 of 4
/// ```
///
/// `fallback`: when the breaker rejects a call, the fallback is called with
/// the function's arguments instead of the body (awaited, for an `async
/// fn`), and its result returned; nothing is recorded. A fallback whose
/// signature does not fit is a compile error on the `fallback` value.
///
/// ```
/// use breaker::{circuit_breaker, CircuitBreakerError};
///
/// #[derive(Debug)]
/// struct PriceError;
///
/// impl From<CircuitBreakerError> for PriceError {
///     fn from(_: CircuitBreakerError) -> Self {
///         PriceError
///     }
/// }
///
/// fn cached_price(item: &str) -> Result<u32, PriceError> {
///     Ok(item.len() as u32)
/// }
///
/// #[circuit_breaker(name = "prices", fail_max = 1, fallback = cached_price)]
/// fn price(item: &str) -> Result<u32, PriceError> {
///     Err(PriceError) // the pricing service is down
/// }
///
/// assert!(price("tea").is_err()); // opens the circuit
/// assert_eq!(price("tea").unwrap(), 3); // rejected: the cached price
/// ```
///
/// `exclude` entries: a type matches the error itself, a boxed error's
/// content and anything in the `source()` chain; a variant pattern matches
/// the function's error, and with a guard (`FetchError::Http(e) if
/// e.status() >= 400`) when the guard holds too; a closure (`|e: &T| ..`)
/// or a named function (`path::to::is_client_error`, a `fn(&T) -> bool`)
/// receives the first `T` found as a type is and excludes the error when it
/// returns `true`.
///
/// A pattern on the function's own error type is the first thing to reach
/// for: it sees the variant the function returned, with no chain to search.
/// An `#[error(transparent)]` variant's `source()` skips the error it wraps,
/// so a type or closure on that inner error cannot find it; exclude the
/// variant (`FetchError::Http(..)`, or with a guard) instead. In debug
/// builds, the first failure that shows this mistake gives a
/// [hint](https://docs.rs/breaker/latest/breaker/hint/) naming the fix. Exclusions apply to
/// this function's calls; settings apply to the named breaker.
///
/// The chain is searched from the function's error type when it implements
/// `Error`, from `as_ref()` when it is a report type
/// (`AsRef<dyn Error + Send + Sync>`: `anyhow::Error`, `eyre::Report`,
/// `Box<dyn Error + Send + Sync>`), with no cargo feature.
///
/// # Names
///
/// Every declared breaker is in the [`registry`](https://docs.rs/breaker/latest/breaker/registry/)
/// from start-up, under a `&'static str` fixed at compile time.
///
/// - Without `name`, a free function's breaker is named after its module
///   path and name (`app::db::update_customer`). Two free functions cannot
///   collide: Rust forbids two of one name in a module, and functions in
///   different `mod`s have different paths.
/// - A method (a `self` receiver) or an associated function whose signature
///   mentions `Self` must be given a `name`, else it is a compile error on
///   that token: the default would be the same for `Payments::fetch` and
///   `Inventory::fetch` in one module, and a static name cannot include the
///   type (`type_name` is not `const`). An associated function that shows
///   neither and shares its default name with another function is reported
///   at run time: calling either panics saying so.
/// - A generic function has one breaker for all its instantiations:
///   `fetch::<Payments>` and `fetch::<Inventory>` fail together. So do the
///   implementors of a trait's default method. Give them separate functions
///   (or names) if they must fail separately.
///
/// Attributes naming the same breaker share it, and their settings merge.
/// Two attributes giving one setting different values fail that name alone,
/// where it is used: calling either function, or `registry::get` of the
/// name, panics naming both functions; `registry::declaration_errors` lists
/// it; every other breaker keeps working.
///
/// ```
/// use breaker::{circuit_breaker, CircuitBreakerError};
///
/// #[derive(Debug)]
/// struct DbError;
///
/// impl From<CircuitBreakerError> for DbError {
///     fn from(_: CircuitBreakerError) -> Self {
///         DbError
///     }
/// }
///
/// struct Payments;
/// struct Inventory;
///
/// impl Payments {
///     #[circuit_breaker(name = "payments.fetch")]
///     fn fetch(&self) -> Result<u64, DbError> {
///         Ok(1)
///     }
/// }
///
/// impl Inventory {
///     #[circuit_breaker(name = "inventory.fetch")] // without it: a compile error
///     fn fetch(&self) -> Result<u64, DbError> {
///         Ok(2)
///     }
/// }
/// # assert_eq!(Payments.fetch().unwrap() + Inventory.fetch().unwrap(), 3);
/// ```
///
/// # Compile errors
///
/// Misuse (an unknown or repeated key, a value of the wrong type, a bad
/// duration, `fail_max = 0`, a return type it cannot guard, a `const fn`, a
/// method without `name`) is a compile error pointing at the offending
/// token. Two are checks on types, each one error on the return type: an
/// error type that cannot carry the breaker's error (see
/// [`FromBreakerError`](https://docs.rs/breaker/latest/breaker/trait.FromBreakerError.html)),
/// and a return type whose name ends in `Result` but that is not a `Result`
/// (see [`GuardedResult`](https://docs.rs/breaker/latest/breaker/trait.GuardedResult.html)).
#[proc_macro_attribute]
pub fn circuit_breaker(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(args.into(), item.into()).into()
}
