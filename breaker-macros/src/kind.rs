//! What kind of function the attribute is on, from its signature alone.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{GenericArgument, PathArguments, ReturnType, Signature, Type, TypeParamBound};

/// How the function's calls are guarded.
pub(crate) enum Kind {
    /// `fn f() -> Result<T, E>`: the body runs as one call.
    Sync,
    /// `async fn f() -> Result<T, E>`: the body's future runs as one call.
    Async,
    /// `fn f() -> impl Iterator<Item = Result<T, E>>`: the whole iteration
    /// is one call. Holds the item type.
    Iter(Box<Type>),
    /// `fn f() -> Result<impl Iterator<Item = Result<T, E>>, E2>`: as `Iter`,
    /// and an outer `Err` fails the call. Holds the item type and `E2`.
    IterInResult(Box<Type>, Box<Type>),
    /// `fn f() -> impl Stream<Item = Result<T, E>>` (futures-core's
    /// `Stream`): the whole stream is one call, as `Iter`. Holds the item
    /// type.
    Stream(Box<Type>),
    /// `fn f() -> impl Future<Output = Result<T, E>>`: the future the body
    /// makes runs as one call, as an `async fn`'s. Holds the output type.
    FutureImpl(Box<Type>),
    /// `fn f() -> Pin<Box<dyn Future<Output = Result<T, E>> + ..>>` (what
    /// `#[async_trait]` makes of an `async fn`): as `FutureImpl`, boxed.
    FutureBoxed(Box<Type>),
}

const NEEDS: &str = "`#[circuit_breaker]` guards functions that return `Result<T, E>`, `impl Iterator<Item = Result<T, E>>`, `Result<impl Iterator<Item = Result<T, E>>, E>`, `impl Stream<Item = Result<T, E>>`, `impl Future<Output = Result<T, E>>` or `Pin<Box<dyn Future<Output = Result<T, E>>>>`";

/// Classifies `sig`, or says on the offending token why it cannot be guarded.
pub(crate) fn classify(sig: &Signature) -> syn::Result<Kind> {
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(
            constness.span(),
            "`#[circuit_breaker]` cannot guard a `const fn`: a breaker's state lives at run time",
        ));
    }
    let ty = match &sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new(
                sig.ident.span(),
                format!("{NEEDS}; `{}` returns `()`", sig.ident),
            ))
        }
        ReturnType::Type(_, ty) => &**ty,
    };
    let kind = if let Some(item) = iterator_item(ty) {
        Kind::Iter(Box::new(item))
    } else if let Some(item) = stream_item(ty) {
        Kind::Stream(Box::new(item))
    } else if let (Some(output), None) = (future_output(ty), &sig.asyncness) {
        match ty {
            Type::ImplTrait(_) => Kind::FutureImpl(Box::new(output)),
            _ => Kind::FutureBoxed(Box::new(output)),
        }
    } else if let Some(args) = result_args(ty) {
        match (args.first(), args.get(1)) {
            (Some(ok), Some(err)) if iterator_item(ok).is_some() => {
                let item = iterator_item(ok).expect("checked");
                Kind::IterInResult(Box::new(item), Box::new(err.clone()))
            }
            _ if contains_impl_trait(ty) => {
                return Err(syn::Error::new(
                    ty.span(),
                    format!(
                        "{NEEDS}; an `impl Trait` other than such an iterator cannot be guarded"
                    ),
                ))
            }
            _ => Kind::Sync,
        }
    } else {
        return Err(syn::Error::new(
            ty.span(),
            format!("{NEEDS} (a type alias of `Result` must have a name ending in `Result`)"),
        ));
    };
    match (&kind, &sig.asyncness) {
        (Kind::Sync, Some(_)) => Ok(Kind::Async),
        (Kind::Iter(_) | Kind::IterInResult(..), Some(asyncness)) => Err(syn::Error::new(
            asyncness.span(),
            "`#[circuit_breaker]` cannot guard an `async fn` that returns an iterator",
        )),
        (Kind::Stream(_), Some(asyncness)) => Err(syn::Error::new(
            asyncness.span(),
            "`#[circuit_breaker]` cannot guard an `async fn` that returns a stream: make it a \
             `fn` returning the stream (the whole stream is one call)",
        )),
        _ => Ok(kind),
    }
}

/// Without `name = ..`, a breaker is named after the function's module path
/// and name, which only free functions make unique: methods and associated
/// functions of different types in one module (and a trait's default
/// method across its implementors) would share one breaker. A static name
/// cannot include the type (`Self` is out of reach of the static that holds
/// it, and `type_name` is not `const`), so such functions must be named:
/// one with a `self` receiver, or whose signature mentions `Self`, is an
/// error on that token. (An associated function that shows neither is
/// caught when the registry starts, as two functions with one default name.)
pub(crate) fn check_default_name(sig: &Signature) -> syn::Result<()> {
    let (span, what) = match sig.receiver() {
        Some(receiver) => (receiver.self_token.span, "a method"),
        None => match self_type_token(sig.to_token_stream()) {
            Some(span) => (span, "an associated function"),
            None => return Ok(()),
        },
    };
    let name = &sig.ident;
    Err(syn::Error::new(
        span,
        format!(
            "{what} needs its own `name`: by default every type in this module with a \
             `{name}` would share one breaker, named after the module and `{name}`; write one, \
             as in `#[circuit_breaker(name = \"payments.{name}\")]`"
        ),
    ))
}

/// The span of the first `Self` in `tokens`.
fn self_type_token(tokens: TokenStream) -> Option<Span> {
    tokens.into_iter().find_map(|tree| match tree {
        TokenTree::Ident(ident) if ident == "Self" => Some(ident.span()),
        TokenTree::Group(group) => self_type_token(group.stream()),
        _ => None,
    })
}

/// The generic arguments of `Result<..>`-like types: a path whose last
/// segment is `Result` or ends in `Result` (`io::Result`, `DbResult`).
pub(crate) fn result_args(ty: &Type) -> Option<Vec<Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if !last.ident.to_string().ends_with("Result") {
        return None;
    }
    let mut types = Vec::new();
    if let PathArguments::AngleBracketed(args) = &last.arguments {
        for arg in &args.args {
            if let GenericArgument::Type(t) = arg {
                types.push(t.clone());
            }
        }
    }
    Some(types)
}

/// The output type of `impl Future<Output = Result<..>>` or of
/// `Pin<Box<dyn Future<Output = Result<..>> + ..>>`.
fn future_output(ty: &Type) -> Option<Type> {
    let bounds = match ty {
        Type::ImplTrait(imp) => &imp.bounds,
        Type::Path(path) => {
            let pin = path.path.segments.last().filter(|s| s.ident == "Pin")?;
            let boxed = match single_type_arg(&pin.arguments)? {
                Type::Path(p) => p.path.segments.last().filter(|s| s.ident == "Box")?,
                _ => return None,
            };
            match single_type_arg(&boxed.arguments)? {
                Type::TraitObject(object) => &object.bounds,
                _ => return None,
            }
        }
        _ => return None,
    };
    bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(tr) = bound else {
            return None;
        };
        let last = tr.path.segments.last().filter(|s| s.ident == "Future")?;
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc)
                if assoc.ident == "Output" && result_args(&assoc.ty).is_some() =>
            {
                Some(assoc.ty.clone())
            }
            _ => None,
        })
    })
}

fn single_type_arg(arguments: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) if args.args.len() == 1 => Some(t),
        _ => None,
    }
}

/// The item type of `impl Iterator<Item = Result<..>>` (with any extra bounds).
fn iterator_item(ty: &Type) -> Option<Type> {
    impl_item(ty, "Iterator")
}

/// The item type of `impl Stream<Item = Result<..>>` (with any extra bounds).
fn stream_item(ty: &Type) -> Option<Type> {
    impl_item(ty, "Stream")
}

/// The `Item` of `impl Trait<Item = Result<..>>`, `Trait` named `trait_name`.
fn impl_item(ty: &Type, trait_name: &str) -> Option<Type> {
    let Type::ImplTrait(imp) = ty else {
        return None;
    };
    imp.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(tr) = bound else {
            return None;
        };
        let last = tr.path.segments.last()?;
        if last.ident != trait_name {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc)
                if assoc.ident == "Item" && result_args(&assoc.ty).is_some() =>
            {
                Some(assoc.ty.clone())
            }
            _ => None,
        })
    })
}

fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Path(p) => p.path.segments.iter().any(|s| match &s.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().any(|arg| match arg {
                GenericArgument::Type(t) => contains_impl_trait(t),
                _ => false,
            }),
            _ => false,
        }),
        Type::Reference(r) => contains_impl_trait(&r.elem),
        Type::Tuple(t) => t.elems.iter().any(contains_impl_trait),
        Type::Paren(p) => contains_impl_trait(&p.elem),
        Type::Group(g) => contains_impl_trait(&g.elem),
        Type::Slice(s) => contains_impl_trait(&s.elem),
        Type::Array(a) => contains_impl_trait(&a.elem),
        _ => false,
    }
}
