//! Parsing `#[circuit_breaker(key = value, ..)]`: each key once, each value
//! checked on its own span, all errors reported together.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{bracketed, Expr, ExprClosure, Ident, LitBool, LitInt, LitStr, Pat, Path, Token, Type};

/// The keys the attribute accepts, in the order the docs list them.
pub(crate) const KEYS: &[&str] = &[
    "name",
    "fail_max",
    "reset_timeout",
    "success_threshold",
    "throw_new_error_on_trip",
    "exclude",
    "storage",
    "listeners",
    "crate",
    // Calls: what runs instead of a rejected call; the clock, for tests.
    "fallback",
    "clock",
    // Breakers per key: one breaker per value of `key`.
    "key",
    "max_keys",
    "idle_timeout",
    // Trip policies: several half-open trials, a growing open period.
    "half_open_calls",
    "backoff",
    "jitter",
    // Rate policies: a failure rate over a window of calls or of time.
    "failure_rate",
    "window_calls",
    "window_time",
    "min_calls",
    // Slow calls: a call that took longer than a duration, and their rate.
    "slow_call_duration",
    "slow_call_rate",
    // Results that are failures: an `Ok` value the predicate accepts.
    "fail_if",
];

/// The parsed arguments; `None` where a key was not given.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) fail_max: Option<u32>,
    pub(crate) reset_timeout: Option<Duration>,
    pub(crate) success_threshold: Option<u32>,
    pub(crate) throw_new_error_on_trip: Option<bool>,
    pub(crate) exclude: Vec<Exclude>,
    pub(crate) storage: Option<Path>,
    pub(crate) listeners: Option<Vec<Path>>,
    pub(crate) krate: Option<Path>,
    // Calls: what runs instead of a rejected call.
    /// `fallback = path::to::fn`: called with the function's arguments when
    /// the breaker rejects the call.
    pub(crate) fallback: Option<Path>,
    /// `clock = path::to::fn`: a function returning the breaker's clock.
    pub(crate) clock: Option<Path>,
    // Breakers per key.
    /// `key = expr`: an expression over the arguments, evaluated per call
    /// before the body; its value (`ToKey`) picks the key's breaker.
    pub(crate) key: Option<Expr>,
    /// `max_keys = 10_000`
    pub(crate) max_keys: Option<(usize, Span)>,
    /// `idle_timeout = "10m"`
    pub(crate) idle_timeout: Option<(Duration, Span)>,
    // Trip policies.
    /// `half_open_calls = 3`
    pub(crate) half_open_calls: Option<u32>,
    /// `backoff = exponential(2.0, "10m")`: the factor and the cap; the
    /// cap's literal, to check it against `reset_timeout`.
    pub(crate) backoff: Option<(f64, Duration, LitStr)>,
    /// `jitter = 0.2`
    pub(crate) jitter: Option<f64>,
    // Rate policies.
    /// `failure_rate = 0.5`
    pub(crate) failure_rate: Option<f64>,
    /// `window_calls = 100` or `window_time = "60s"` (one of the two).
    pub(crate) window: Option<Window>,
    /// `min_calls = 20`
    pub(crate) min_calls: Option<u32>,
    // Slow calls.
    /// `slow_call_duration = "2s"`
    pub(crate) slow_call_duration: Option<Duration>,
    /// `slow_call_rate = 0.8`
    pub(crate) slow_call_rate: Option<f64>,
    /// `fail_if = |r: &T| predicate`: typed against the function's `Ok`
    /// type, judged at this call site.
    pub(crate) fail_if: Option<Expr>,
}

/// The window a rate is taken over.
#[derive(Clone, Copy)]
pub(crate) enum Window {
    /// `window_calls = 100`: the last 100 calls.
    Calls(u32),
    /// `window_time = "60s"`: the calls of the last 60 s.
    Time(Duration),
}

/// One entry of `exclude = [..]`.
pub(crate) enum Exclude {
    /// `ValidationError`: the type itself or in the `source()` chain.
    Type(Type),
    /// `DbError::Validation(..)`: the function's error matches the pattern.
    Pattern(Pat),
    /// `|e: &T| predicate`: a `T` found as for a type, and the predicate holds.
    Closure(Type, ExprClosure),
    /// `DbError::Http(e) if e.status >= 400`: the function's error matches
    /// the pattern and the guard holds.
    Guarded(Pat, Box<Expr>),
    /// `path::to::predicate`: a named function `fn(&T) -> bool`, used as a
    /// closure would be.
    Function(Path),
}

/// Collects errors so one build reports all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

impl Args {
    /// Parses the attribute's tokens, reporting every problem found.
    pub(crate) fn parse(tokens: TokenStream) -> Result<Args, syn::Error> {
        let entries = Punctuated::<Entry, Token![,]>::parse_terminated.parse2(tokens)?;
        let mut args = Args::default();
        let mut seen: Vec<String> = Vec::new();
        let mut errors = Errors::default();
        for entry in entries {
            let key = entry.key.unraw().to_string();
            if !KEYS.contains(&key.as_str()) {
                errors.push(syn::Error::new(
                    entry.key.span(),
                    format!(
                        "unknown argument `{key}`; expected one of: {}",
                        KEYS.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            }
            if seen.contains(&key) {
                errors.push(syn::Error::new(
                    entry.key.span(),
                    format!("duplicate `{key}` argument"),
                ));
                continue;
            }
            let other_window = match key.as_str() {
                "window_calls" => Some("window_time"),
                "window_time" => Some("window_calls"),
                _ => None,
            };
            if let Some(other) = other_window.filter(|o| seen.iter().any(|k| k == o)) {
                errors.push(syn::Error::new(
                    entry.key.span(),
                    format!("`{key}` and `{other}` cannot both be given: a rate is taken over a window of calls or of time"),
                ));
                continue;
            }
            seen.push(key.clone());
            if let Err(e) = args.set(&key, entry.value) {
                errors.push(e);
            }
        }
        if let (Some((_, max, lit)), Some(reset)) = (&args.backoff, args.reset_timeout) {
            if *max < reset {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!(
                        "the `backoff` cap must be at least `reset_timeout` ({reset:?}), got {max:?}"
                    ),
                ));
            }
        }
        errors.finish().map(|()| args)
    }

    fn set(&mut self, key: &str, value: TokenStream) -> syn::Result<()> {
        match key {
            "name" => {
                let lit = parse_value::<LitStr>(value, "a string, as in `name = \"db\"`")?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(lit.span(), "`name` must not be empty"));
                }
                self.name = Some(lit);
            }
            "fail_max" => {
                self.fail_max = Some(count(
                    value,
                    "fail_max",
                    breaker_core::storage::MAX_FAIL_MAX,
                )?)
            }
            "success_threshold" => {
                self.success_threshold = Some(count(
                    value,
                    "success_threshold",
                    breaker_core::storage::MAX_SUCCESS_THRESHOLD,
                )?)
            }
            "reset_timeout" => {
                let lit = parse_value::<LitStr>(
                    value,
                    "a duration string, as in `reset_timeout = \"60s\"`",
                )?;
                let parsed = breaker_core::parse_duration(&lit.value()).map_err(|e| {
                    syn::Error::new(lit.span(), format!("invalid `reset_timeout`: {e}"))
                })?;
                self.reset_timeout = Some(parsed);
            }
            "throw_new_error_on_trip" => {
                let lit = parse_value::<LitBool>(value, "`true` or `false`")?;
                self.throw_new_error_on_trip = Some(lit.value);
            }
            "exclude" => {
                let list = parse_list::<ExcludeList>(
                    value,
                    "a list, as in `exclude = [ValidationError, DbError::NotFound(..), |e: &HttpError| e.status < 500]`",
                )?;
                self.exclude = list.0;
            }
            "storage" => {
                self.storage = Some(parse_value::<Path>(
                    value,
                    "a path to a function that returns the storage, as in `storage = make_storage`",
                )?)
            }
            "listeners" => {
                let list = parse_list::<PathList>(
                    value,
                    "a list of paths to functions that return listeners, as in `listeners = [log_listener]`",
                )?;
                self.listeners = Some(list.0);
            }
            "crate" => {
                let lit = parse_value::<LitStr>(
                    value,
                    "a path in a string, as in `crate = \"::my_breaker\"`",
                )?;
                self.krate = Some(lit.parse::<Path>().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        "expected a path in a string, as in `crate = \"::my_breaker\"`",
                    )
                })?);
            }
            // Calls: what runs instead of a rejected call.
            "fallback" => {
                self.fallback = Some(parse_value::<Path>(
                    value,
                    "a path to a function with the same parameters and return type, as in `fallback = cached_prices`",
                )?)
            }
            "clock" => {
                self.clock = Some(parse_value::<Path>(
                    value,
                    "a path to a function that returns the clock, as in `clock = test_clock`",
                )?)
            }
            // Breakers per key.
            "key" => {
                self.key = Some(parse_value::<Expr>(
                    value,
                    "an expression over the function's arguments, as in `key = url.host_str()`",
                )?)
            }
            "max_keys" => {
                let lit = parse_value::<LitInt>(value, "an integer, as in `max_keys = 10_000`")?;
                let n: usize = lit.base10_parse().map_err(|_| {
                    syn::Error::new(lit.span(), "`max_keys` must be an integer from 1 up")
                })?;
                if n == 0 {
                    return Err(syn::Error::new(lit.span(), "`max_keys` must be at least 1"));
                }
                self.max_keys = Some((n, lit.span()));
            }
            "idle_timeout" => {
                let lit = parse_value::<LitStr>(
                    value,
                    "a duration string, as in `idle_timeout = \"10m\"`",
                )?;
                let parsed = breaker_core::parse_duration(&lit.value()).map_err(|e| {
                    syn::Error::new(lit.span(), format!("invalid `idle_timeout`: {e}"))
                })?;
                self.idle_timeout = Some((parsed, lit.span()));
            }
            // Trip policies.
            "half_open_calls" => {
                self.half_open_calls = Some(count(
                    value,
                    "half_open_calls",
                    breaker_core::storage::MAX_HALF_OPEN_CALLS,
                )?)
            }
            // Parsed whole, so that a bad factor or cap is reported on itself.
            "backoff" => self.backoff = Some(syn::parse2::<BackoffValue>(value)?.0),
            "jitter" => {
                let lit = parse_value::<Number>(value, "a number, as in `jitter = 0.2`")?;
                if !(0.0..1.0).contains(&lit.value) {
                    return Err(syn::Error::new(
                        lit.span,
                        format!("`jitter` must be at least 0 and below 1, got {}", lit.value),
                    ));
                }
                self.jitter = Some(lit.value);
            }
            // Rate policies.
            "failure_rate" => self.failure_rate = Some(rate(value, "failure_rate")?),
            "window_calls" => {
                self.window = Some(Window::Calls(count(
                    value,
                    "window_calls",
                    breaker_core::window::Window::MAX_CALLS,
                )?))
            }
            "window_time" => {
                let (span, lit) = duration(value, "window_time", "60s")?;
                let min = breaker_core::window::Window::MIN_SPAN;
                if span < min {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("`window_time` must be at least {min:?}, got {span:?}"),
                    ));
                }
                self.window = Some(Window::Time(span));
            }
            "min_calls" => self.min_calls = Some(count(value, "min_calls", u32::MAX)?),
            // Slow calls.
            "slow_call_duration" => {
                self.slow_call_duration = Some(duration(value, "slow_call_duration", "2s")?.0)
            }
            "slow_call_rate" => self.slow_call_rate = Some(rate(value, "slow_call_rate")?),
            "fail_if" => {
                self.fail_if = Some(parse_value::<Expr>(
                    value,
                    "a closure over the `Ok` value, as in `fail_if = |r: &Response| r.status >= 500`",
                )?)
            }
            _ => unreachable!("keys are checked against KEYS first"),
        }
        Ok(())
    }
}

/// `key = value`, with the value kept as tokens to parse by key.
struct Entry {
    key: Ident,
    value: TokenStream,
}

impl Parse for Entry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = Ident::parse_any(input)?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!("expected `{key} = ...`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let mut value = TokenStream::new();
        while !input.is_empty() && !input.peek(Token![,]) {
            value.extend(std::iter::once(input.parse::<proc_macro2::TokenTree>()?));
        }
        if value.is_empty() {
            return Err(input.error(format!("expected a value for `{key}`")));
        }
        Ok(Entry { key, value })
    }
}

/// Parses a whole value as `T`, or fails on its first token with `expected`.
fn parse_value<T: Parse>(value: TokenStream, expected: &str) -> syn::Result<T> {
    let span = value
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span());
    let whole = span_of(&value).unwrap_or(span);
    syn::parse2::<T>(value).map_err(|_| syn::Error::new(whole, format!("expected {expected}")))
}

/// Parses a `[..]` list, keeping the errors of its entries.
fn parse_list<T: Parse>(value: TokenStream, expected: &str) -> syn::Result<T> {
    match value.clone().into_iter().next() {
        Some(proc_macro2::TokenTree::Group(g))
            if g.delimiter() == proc_macro2::Delimiter::Bracket =>
        {
            syn::parse2::<T>(value)
        }
        _ => parse_value::<T>(value, expected),
    }
}

/// The span covering all of `tokens`, where the compiler can join spans.
fn span_of(tokens: &TokenStream) -> Option<Span> {
    let mut iter = tokens.clone().into_iter();
    let first = iter.next()?.span();
    Some(
        iter.last()
            .and_then(|last| first.join(last.span()))
            .unwrap_or(first),
    )
}

fn count(value: TokenStream, key: &str, max: u32) -> syn::Result<u32> {
    let lit = parse_value::<LitInt>(value, &format!("an integer, as in `{key} = 5`"))?;
    let n: u64 = lit.base10_parse().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("`{key}` must be an integer from 1 to {max}"),
        )
    })?;
    if n == 0 || n > u64::from(max) {
        let range = match max {
            u32::MAX => "at least 1".to_owned(),
            max => format!("between 1 and {max}"),
        };
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be {range}, got {n}"),
        ));
    }
    Ok(n as u32)
}

/// A rate in `(0, 1]`, checked on its literal.
fn rate(value: TokenStream, key: &str) -> syn::Result<f64> {
    let lit = parse_value::<Number>(value, &format!("a number, as in `{key} = 0.5`"))?;
    if !(lit.value > 0.0 && lit.value <= 1.0) {
        return Err(syn::Error::new(
            lit.span,
            format!("`{key}` must be above 0 and at most 1, got {}", lit.value),
        ));
    }
    Ok(lit.value)
}

/// A duration string, not zero, and its literal.
fn duration(value: TokenStream, key: &str, example: &str) -> syn::Result<(Duration, LitStr)> {
    let lit = parse_value::<LitStr>(
        value,
        &format!("a duration string, as in `{key} = \"{example}\"`"),
    )?;
    let parsed = breaker_core::parse_duration(&lit.value())
        .map_err(|e| syn::Error::new(lit.span(), format!("invalid `{key}`: {e}")))?;
    if parsed.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must not be zero"),
        ));
    }
    Ok((parsed, lit))
}

/// What `backoff = ..` takes.
const BACKOFF: &str = "`exponential(factor, \"max\")`, as in `backoff = exponential(2.0, \"10m\")`";

/// `exponential(2.0, "10m")`: the factor (at least 1) and the cap.
struct BackoffValue((f64, Duration, LitStr));

impl Parse for BackoffValue {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let kind: Ident = input.parse()?;
        if kind != "exponential" {
            return Err(syn::Error::new(kind.span(), format!("expected {BACKOFF}")));
        }
        let content;
        syn::parenthesized!(content in input);
        let factor: Number = content.parse()?;
        if !(factor.value >= 1.0 && factor.value.is_finite()) {
            return Err(syn::Error::new(
                factor.span,
                format!(
                    "the `backoff` factor must be at least 1, got {}",
                    factor.value
                ),
            ));
        }
        content.parse::<Token![,]>()?;
        let max: LitStr = content.parse()?;
        let parsed = breaker_core::parse_duration(&max.value())
            .map_err(|e| syn::Error::new(max.span(), format!("invalid `backoff` cap: {e}")))?;
        if !content.is_empty() {
            return Err(content.error(format!("expected {BACKOFF}")));
        }
        Ok(BackoffValue((factor.value, parsed, max)))
    }
}

/// A number literal, integer or float, and where it is.
struct Number {
    value: f64,
    span: Span,
}

impl Parse for Number {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let minus = input.parse::<Option<Token![-]>>()?;
        let lit: syn::Lit = input.parse()?;
        let sign = if minus.is_some() { -1.0 } else { 1.0 };
        let span = match &minus {
            Some(m) => m.span.join(lit.span()).unwrap_or(m.span),
            None => lit.span(),
        };
        let value = sign
            * match &lit {
                syn::Lit::Float(f) => f.base10_parse::<f64>()?,
                syn::Lit::Int(i) => i.base10_parse::<f64>()?,
                other => return Err(syn::Error::new(other.span(), "expected a number")),
            };
        Ok(Number { value, span })
    }
}

struct ExcludeList(Vec<Exclude>);

impl Parse for ExcludeList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        bracketed!(content in input);
        let mut entries = Vec::new();
        while !content.is_empty() {
            if content.peek(Token![,]) {
                return Err(content.error(format!("an empty entry; {EXCLUDE_LIST}")));
            }
            entries.push(content.parse::<ExcludeEntry>()?.0);
            if content.is_empty() {
                break;
            }
            if content.peek(Token![|]) {
                return Err(content.error(format!(
                    "an entry cannot be a choice of two; {EXCLUDE_LIST}: write `A, B` to exclude either"
                )));
            }
            if !content.peek(Token![,]) {
                return Err(content.error(format!("expected `,` after an entry; {EXCLUDE_LIST}")));
            }
            content.parse::<Token![,]>()?;
        }
        Ok(ExcludeList(entries))
    }
}

/// What `exclude = [..]` holds, for the errors about its shape.
const EXCLUDE_LIST: &str = "an `exclude` list holds error types, variant patterns (with an optional `if` guard), closures and predicate functions, separated by commas";

struct ExcludeEntry(Exclude);

const EXCLUDE_EXPECTED: &str = "expected an error type (`ValidationError`), an enum variant pattern (`DbError::NotFound(..)`, `DbError::Timeout { .. }`, `DbError::Http(e) if e.status >= 400`), a closure (`|e: &HttpError| e.status < 500`) or a predicate function (`errors::is_client_error`)";

impl Parse for ExcludeEntry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(Token![|]) || input.peek(Token![move]) {
            let closure: ExprClosure = input.parse()?;
            let ty = closure_arg_type(&closure)?;
            return Ok(ExcludeEntry(Exclude::Closure(ty, closure)));
        }
        let fork = input.fork();
        if let Ok(pat) = Pat::parse_single(&fork) {
            let variant = match &pat {
                Pat::TupleStruct(_) | Pat::Struct(_) => true,
                Pat::Path(p) => p.qself.is_none() && is_unit_variant(&p.path),
                _ => false,
            };
            if variant && fork.peek(Token![if]) {
                let pat = Pat::parse_single(input)?;
                input.parse::<Token![if]>()?;
                let guard: Expr = input.parse()?;
                return Ok(ExcludeEntry(Exclude::Guarded(pat, Box::new(guard))));
            }
            if matches!(pat, Pat::TupleStruct(_) | Pat::Struct(_))
                && (fork.is_empty() || fork.peek(Token![,]) || fork.peek(Token![|]))
            {
                let pat = Pat::parse_single(input)?;
                return Ok(ExcludeEntry(Exclude::Pattern(pat)));
            }
        }
        let start = input.span();
        let ty: Type = input
            .parse()
            .map_err(|_| syn::Error::new(start, EXCLUDE_EXPECTED))?;
        match &ty {
            Type::Path(p) if p.qself.is_none() && is_unit_variant(&p.path) => {
                Ok(ExcludeEntry(Exclude::Pattern(Pat::Path(syn::PatPath {
                    attrs: Vec::new(),
                    qself: None,
                    path: p.path.clone(),
                }))))
            }
            Type::Path(p) if p.qself.is_none() && is_function(&p.path) => {
                Ok(ExcludeEntry(Exclude::Function(p.path.clone())))
            }
            Type::Path(_) => Ok(ExcludeEntry(Exclude::Type(ty))),
            other => Err(syn::Error::new(other.span(), EXCLUDE_EXPECTED)),
        }
    }
}

/// `Enum::Variant`: a path whose last two segments are capitalised and carry
/// no generic arguments reads as a unit variant (`io::Error`, a type, has a
/// lowercase module before it).
fn is_unit_variant(path: &Path) -> bool {
    let n = path.segments.len();
    n >= 2
        && path.segments.iter().skip(n - 2).all(|s| {
            s.arguments.is_none()
                && s.ident
                    .to_string()
                    .starts_with(|c: char| c.is_ascii_uppercase())
        })
}

/// `errors::is_client_error`: a path whose last segment is lowercase and
/// not a primitive type names a function (Rust's naming conventions).
fn is_function(path: &Path) -> bool {
    const PRIMITIVES: &[&str] = &[
        "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32",
        "i64", "i128", "isize", "f32", "f64",
    ];
    let last = match path.segments.last() {
        Some(last) => last,
        None => return false,
    };
    let name = last.ident.unraw().to_string();
    last.arguments.is_none()
        && name.starts_with(|c: char| c.is_lowercase() || c == '_')
        && !(path.segments.len() == 1 && PRIMITIVES.contains(&name.as_str()))
}

/// The `T` of a closure `|e: &T| ..`.
fn closure_arg_type(closure: &ExprClosure) -> syn::Result<Type> {
    let wrong = || {
        syn::Error::new(
            closure.or1_token.span(),
            "an `exclude` closure takes one argument with its type written out, as in `|e: &HttpError| e.status < 500`",
        )
    };
    if closure.inputs.len() != 1 {
        return Err(wrong());
    }
    match &closure.inputs[0] {
        Pat::Type(typed) => match &*typed.ty {
            Type::Reference(r) if r.mutability.is_none() => Ok((*r.elem).clone()),
            other => Err(syn::Error::new(
                other.span(),
                "the argument of an `exclude` closure is a shared reference, as in `|e: &HttpError| ...`",
            )),
        },
        _ => Err(wrong()),
    }
}

struct PathList(Vec<Path>);

impl Parse for PathList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        bracketed!(content in input);
        let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
        Ok(PathList(paths.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn entries(tokens: TokenStream) -> Vec<Exclude> {
        syn::parse2::<ExcludeList>(tokens)
            .map(|l| l.0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn exclude_entries_are_told_apart() {
        let parsed = entries(quote!([
            io::Error,
            ValidationError,
            DbError::Unit,
            DbError::Tuple(..),
            DbError::Named { .. },
            |e: &T| true,
            DbError::Tuple(e) if e.0 > 1,
            DbError::Unit if true,
            errors::is_client_error,
            u32
        ]));
        let kinds: Vec<&str> = parsed
            .iter()
            .map(|e| match e {
                Exclude::Type(_) => "type",
                Exclude::Pattern(_) => "pattern",
                Exclude::Closure(..) => "closure",
                Exclude::Guarded(..) => "guarded",
                Exclude::Function(_) => "function",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "type", "type", "pattern", "pattern", "pattern", "closure", "guarded", "guarded",
                "function", "type"
            ]
        );
    }

    #[test]
    fn a_list_of_the_wrong_shape_says_what_it_holds() {
        for (tokens, says) in [
            (quote!([A | B]), "write `A, B` to exclude either"),
            (quote!([A,, B]), "an empty entry"),
            (quote!([, A]), "an empty entry"),
            (quote!([A B]), "expected `,` after an entry"),
        ] {
            let error = syn::parse2::<ExcludeList>(tokens).err().expect("an error");
            assert!(error.to_string().contains(says), "{error}");
        }
    }
}
