//! Code generation: the user's function, signature untouched, with its body
//! run through the declared breaker.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_quote, ItemFn, Path, Type};

use crate::args::{Args, Errors, Exclude, Window};
use crate::kind::{check_default_name, classify, result_args, Kind};

/// The whole attribute: parse, check, expand; on any error, the function
/// unchanged plus every error, so call sites see no follow-on errors.
pub(crate) fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new(
                item.span(),
                "`#[circuit_breaker]` goes on a function with a body",
            );
            return fallback(item, error);
        }
    };
    let mut errors = Errors::default();
    let args = Args::parse(args).map_err(|e| errors.push(e)).ok();
    if args.as_ref().is_some_and(|args| args.name.is_none()) {
        let _ = check_default_name(&func.sig).map_err(|e| errors.push(e));
    }
    let kind = classify(&func.sig).map_err(|e| errors.push(e)).ok();
    if let (Some(args), Some(kind)) = (&args, &kind) {
        if let Some(path) = &args.fallback {
            let _ = check_fallback(path, &func.sig, kind).map_err(|e| errors.push(e));
        }
        let _ = check_key(args, kind).map_err(|e| errors.push(e));
        if let (Some(predicate), false) = (&args.fail_if, matches!(kind, Kind::Sync | Kind::Async))
        {
            errors.push(syn::Error::new(
                predicate.span(),
                "`fail_if` works on `fn` and `async fn` returning `Result<T, E>`",
            ));
        }
    }
    match (args, kind, errors.finish()) {
        (Some(args), Some(kind), Ok(())) => expand(args, func, kind),
        (_, _, Err(error)) => fallback(func.into_token_stream(), error),
        _ => unreachable!("an argument or kind error is recorded"),
    }
}

fn fallback(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote!(#item #errors)
}

fn expand(args: Args, func: ItemFn, kind: Kind) -> TokenStream {
    let krate: Path = args
        .krate
        .clone()
        .unwrap_or_else(|| parse_quote!(::breaker));
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func;
    // With a fallback, the arguments go to the body or to the fallback: the
    // body binds them again with the signature's own patterns (`mut` too).
    let fallback_args = args.fallback.as_ref().map(|_| fallback_args(&mut sig));
    let fn_name = sig.ident.to_string();
    let declaration = declaration(&args, &krate, &fn_name);
    let view = view(&krate);
    let excluded_all = excluded(&krate, &args.exclude, true);
    // Breakers per key: the key is evaluated here, before the body (which
    // may move the arguments it reads); a sync call borrows the key's
    // breaker; an `async fn` (whose future must stay `Send`) and an
    // iterator or stream (which outlives the call) own a handle.
    let (site, key_prelude) = match &args.key {
        None => (quote!(__BREAKER_SITE.get()), TokenStream::new()),
        Some(key) => {
            let owned = !matches!(kind, Kind::Sync);
            // Spanned at the key: a key of the wrong type is reported there.
            let lookup = match owned {
                true => quote_spanned!(key.span()=> handle),
                false => quote_spanned!(key.span()=> get),
            };
            let prelude = quote_spanned! {key.span()=>
                let __breaker_keyed = __BREAKER_KEYED_SITE.#lookup(&(#key));
            };
            let site = match kind {
                Kind::Iter(_) | Kind::IterInResult(..) | Kind::Stream(_) => quote!(__breaker_keyed),
                _ => quote!(&*__breaker_keyed),
            };
            (site, prelude)
        }
    };
    let ret = match &sig.output {
        syn::ReturnType::Type(_, ty) => ty.clone(),
        syn::ReturnType::Default => unreachable!("classify rejects functions returning ()"),
    };
    // Bounds on the error type (`From<CircuitBreakerError>`) are reported on
    // the callee: give it the span of the error type in the signature.
    let error_span = match &kind {
        Kind::Sync | Kind::Async => error_type_span(&ret),
        Kind::Iter(item)
        | Kind::IterInResult(item, _)
        | Kind::Stream(item)
        | Kind::FutureImpl(item)
        | Kind::FutureBoxed(item) => error_type_span(item),
    };
    let private = respan(quote!(#krate::__private), error_span);
    // The breaker's error as the function's: spanned at the error type, so
    // an error type without `From<CircuitBreakerError>` is reported there,
    // once, naming the public `FromBreakerError`.
    let convert = conversion(&krate, error_span);
    // `<R as GuardedResult>`, at the return type.
    let (first, guarded) = guarded_at(&krate, &ret);
    // `fail_if`: the predicate typed against the `Ok` type here, so one on
    // another type is an error on the closure; the shims' judge otherwise
    // accepts nothing.
    let (judged, judge_prelude) = match &args.fail_if {
        None => (quote!(, #private::Unjudged), TokenStream::new()),
        Some(predicate) => {
            let prelude = quote_spanned! {predicate.span()=>
                #[allow(clippy::type_complexity)]
                let __breaker_judge: &(dyn ::core::ops::Fn(&#guarded::Ok) -> bool + ::core::marker::Sync) = &(#predicate);
            };
            (quote!(, #private::fail_if(__breaker_judge)), prelude)
        }
    };
    if let (Some(path), Some((names, pats))) = (&args.fallback, &fallback_args) {
        let receiver = sig.receiver().map(|_| quote!(self,));
        let asyncness = sig.asyncness.map(|_| quote!(.await));
        let take = quote!(#krate::__private::take);
        // The arguments carry the `fallback` value's span: a parameter that
        // does not fit is reported there.
        let passed = names
            .iter()
            .map(|n| syn::Ident::new(&n.to_string(), path.span()));
        let fallback = quote_spanned! {path.span()=>
            let __breaker_fallback: #ret = #path(#receiver #(#passed),*) #asyncness;
            __breaker_fallback
        };
        let body = match &kind {
            Kind::Async => quote_spanned! {first=>
                #private::run_async(
                    #site,
                    #private::map_output(
                        (async move || -> #ret {
                            let (#(#pats,)*) = #take(__breaker_slot);
                            #block
                        })(),
                        |__breaker_result| #guarded::into_result(__breaker_result),
                    ),
                    #view,
                    #excluded_all,
                    #convert #judged,
                ).await
            },
            _ => quote_spanned! {first=>
                #private::run(
                    #site,
                    move || #guarded::into_result((move || -> #ret {
                        let (#(#pats,)*) = #take(__breaker_slot);
                        #block
                    })()),
                    #view,
                    #excluded_all,
                    #convert #judged,
                )
            },
        };
        return quote! {
            #(#attrs)*
            #vis #sig {
                #declaration
                #key_prelude
                #judge_prelude
                let mut __breaker_args = ::core::option::Option::Some((#(#names,)*));
                let __breaker_slot = &mut __breaker_args;
                #[allow(clippy::needless_return, clippy::redundant_closure, clippy::redundant_closure_call, clippy::unit_arg)]
                match #body {
                    ::core::result::Result::Ok(__breaker_result) => #guarded::from_result(__breaker_result),
                    ::core::result::Result::Err(_) => {
                        let (#(#names,)*) = #take(&mut __breaker_args);
                        #fallback
                    }
                }
            }
        };
    }
    let call = match kind {
        // The body is typed by the declared return type alone, and passes
        // through `GuardedResult`: a return type that only looks like a
        // `Result` (`NotResult<T, E>`) is one error, on the return type.
        Kind::Sync => quote_spanned! {first=>
            {
                let __breaker_result = #private::call(
                    #site,
                    move || #guarded::into_result((move || -> #ret #block)()),
                    #view,
                    #excluded_all,
                    #convert #judged,
                );
                #guarded::from_result(__breaker_result)
            }
        },
        Kind::Async => quote_spanned! {first=>
            {
                let __breaker_result = #private::call_async(
                    #site,
                    #private::map_output(
                        (async move || -> #ret #block)(),
                        |__breaker_result| #guarded::into_result(__breaker_result),
                    ),
                    #view,
                    #excluded_all,
                    #convert #judged,
                ).await;
                #guarded::from_result(__breaker_result)
            }
        },
        // The output type is named first, so the view and the exclusions
        // see the error type (the body's future alone may not fix it); the
        // output passes through `GuardedResult` both ways, as above.
        Kind::FutureImpl(output) => {
            let (at, guarded) = guarded_at(&krate, &output);
            quote_spanned! {at=>
                {
                    let __breaker_result = #private::call_async(
                        #site,
                        #private::map_output(
                            #private::future_of::<#output, _>((move || #block)()),
                            |__breaker_result| #guarded::into_result(__breaker_result),
                        ),
                        #view,
                        #excluded_all,
                        #convert #judged,
                    );
                    #private::map_output(__breaker_result, |__breaker_result| #guarded::from_result(__breaker_result))
                }
            }
        }
        Kind::FutureBoxed(output) => {
            let (at, guarded) = guarded_at(&krate, &output);
            quote_spanned! {at=>
                {
                    let __breaker_result = #private::call_async(
                        #site,
                        #private::map_output(
                            #private::future_of::<#output, _>((move || #block)()),
                            |__breaker_result| #guarded::into_result(__breaker_result),
                        ),
                        #view,
                        #excluded_all,
                        #convert #judged,
                    );
                    let __breaker_boxed: #ret = #private::pin_box(
                        #private::map_output(__breaker_result, |__breaker_result| #guarded::from_result(__breaker_result)),
                    );
                    __breaker_boxed
                }
            }
        }
        // Items pass through `GuardedResult` both ways, as above.
        Kind::Iter(item) => {
            let (at, guarded) = guarded_at(&krate, &item);
            quote_spanned! {at=>
                {
                    let __breaker_items = #private::iter(
                        #site,
                        ::core::marker::PhantomData::<::core::result::Result<#guarded::Ok, #guarded::Err>>,
                        move || ::core::iter::Iterator::map(
                            ::core::iter::IntoIterator::into_iter((move || #block)()),
                            |__breaker_item| #guarded::into_result(__breaker_item),
                        ),
                        #view,
                        #excluded_all,
                        #convert,
                    );
                    ::core::iter::Iterator::map(__breaker_items, |__breaker_item| #guarded::from_result(__breaker_item))
                }
            }
        }
        Kind::Stream(item) => {
            let (at, guarded) = guarded_at(&krate, &item);
            quote_spanned! {at=>
                {
                    let __breaker_items = #private::stream(
                        #site,
                        ::core::marker::PhantomData::<::core::result::Result<#guarded::Ok, #guarded::Err>>,
                        move || #private::map_items(
                            (move || #block)(),
                            |__breaker_item| #guarded::into_result(__breaker_item),
                        ),
                        #view,
                        #excluded_all,
                        #convert,
                    );
                    #private::map_items(__breaker_items, |__breaker_item| #guarded::from_result(__breaker_item))
                }
            }
        }
        Kind::IterInResult(item, outer) => {
            let outer_excluded = excluded(&krate, &args.exclude, false);
            let outer_convert = conversion(&krate, outer.span());
            quote_spanned! {ret.span()=>
                #private::iter_in_result(
                    #site,
                    ::core::marker::PhantomData::<#item>,
                    move || -> ::core::result::Result<_, #outer> #block,
                    #view,
                    #excluded_all,
                    #convert,
                    #view,
                    #outer_excluded,
                    #outer_convert,
                )
            }
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #declaration
            #key_prelude
            #judge_prelude
            #[allow(clippy::needless_return, clippy::redundant_closure, clippy::redundant_closure_call, clippy::unit_arg)]
            #call
        }
    }
}

/// What a `fallback` needs: a function returning `Result` (not an
/// iterator), a `&self` receiver if any (the body and the fallback both
/// need it), and parameters bound to names.
fn check_fallback(path: &Path, sig: &syn::Signature, kind: &Kind) -> syn::Result<()> {
    if !matches!(kind, Kind::Sync | Kind::Async) {
        return Err(syn::Error::new_spanned(
            path,
            "`fallback` is for `fn`s and `async fn`s returning `Result`",
        ));
    }
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(r) if r.reference.is_none() || r.mutability.is_some() => {
                return Err(syn::Error::new(
                    r.self_token.span,
                    "a method with a `fallback` takes `&self`: the body and the fallback both need the receiver",
                ));
            }
            syn::FnArg::Receiver(_) | syn::FnArg::Typed(_) => {}
        }
    }
    Ok(())
}

/// The parameters' names and their patterns (with `mut`); `mut` leaves the
/// signature, where the arguments are only moved to the body or fallback.
fn fallback_args(sig: &mut syn::Signature) -> (Vec<syn::Ident>, Vec<syn::Pat>) {
    let mut names = Vec::new();
    let mut pats = Vec::new();
    for (i, input) in sig.inputs.iter_mut().enumerate() {
        let syn::FnArg::Typed(typed) = input else {
            continue;
        };
        match &mut *typed.pat {
            syn::Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                names.push(ident.ident.clone());
                pats.push(syn::Pat::Ident(ident.clone()));
                ident.mutability = None;
            }
            // A pattern (`(a, b): (u32, u32)`, `_: u64`, `ref x`): the
            // parameter gets a name of its own, passed whole to the
            // fallback; the body binds the pattern from it.
            other => {
                let name = syn::Ident::new(&format!("__breaker_arg{i}"), other.span());
                pats.push(other.clone());
                names.push(name.clone());
                *other = syn::Pat::Ident(syn::PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: name,
                    subpat: None,
                });
            }
        }
    }
    (names, pats)
}

/// The `Declaration` static, its link-time registration, and the `Site`.
fn declaration(args: &Args, krate: &Path, fn_name: &str) -> TokenStream {
    let some = |t: TokenStream| quote!(::core::option::Option::Some(#t));
    let none = quote!(::core::option::Option::None);
    let name = match &args.name {
        Some(lit) => lit.to_token_stream(),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let default_name = args.name.is_none();
    let fail_max = args.fail_max.map_or(none.clone(), |n| some(quote!(#n)));
    let success_threshold = args
        .success_threshold
        .map_or(none.clone(), |n| some(quote!(#n)));
    let throw = args
        .throw_new_error_on_trip
        .map_or(none.clone(), |b| some(quote!(#b)));
    let reset_timeout = args.reset_timeout.map_or(none.clone(), |d| {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        some(quote!(::core::time::Duration::from_nanos(#nanos)))
    });
    // Trip policies.
    let half_open_calls = args
        .half_open_calls
        .map_or(none.clone(), |n| some(quote!(#n)));
    let backoff = match (&args.backoff, args.jitter) {
        (None, None) => none.clone(),
        (backoff, jitter) => {
            let base = match backoff {
                Some((factor, max, _)) => {
                    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
                    quote!(#krate::__private::Backoff::exponential(#factor, ::core::time::Duration::from_nanos(#nanos)))
                }
                None => quote!(#krate::__private::Backoff::constant()),
            };
            let jitter = jitter.unwrap_or(0.0);
            some(quote!(#base.jitter(#jitter)))
        }
    };
    // Rate policies.
    let failure_rate = args.failure_rate.map_or(none.clone(), |r| some(quote!(#r)));
    let window = args.window.map_or(none.clone(), |w| match w {
        Window::Calls(n) => some(quote!(#krate::__private::WindowShape::Calls(#n))),
        Window::Time(d) => {
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            some(quote!(#krate::__private::WindowShape::Time(::core::time::Duration::from_nanos(#nanos))))
        }
    });
    let min_calls = args.min_calls.map_or(none.clone(), |n| some(quote!(#n)));
    let slow_call_duration = args.slow_call_duration.map_or(none.clone(), |d| {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        some(quote!(::core::time::Duration::from_nanos(#nanos)))
    });
    let slow_call_rate = args
        .slow_call_rate
        .map_or(none.clone(), |r| some(quote!(#r)));
    let mut helpers = TokenStream::new();
    let storage = match &args.storage {
        Some(path) => {
            let shown = path_string(path);
            // Spanned at the path: a function of the wrong type is reported there.
            let storage_call = quote_spanned!(path.span()=> builder.storage(#path()));
            helpers.extend(quote! {
                fn __breaker_storage(builder: #krate::__private::Builder) -> #krate::__private::Builder {
                    #storage_call
                }
            });
            some(quote!((#shown, __breaker_storage)))
        }
        None => none.clone(),
    };
    let listeners = match &args.listeners {
        Some(paths) => {
            let shown = paths.iter().map(path_string).collect::<Vec<_>>().join(", ");
            let listener_calls = paths
                .iter()
                .map(|path| quote_spanned!(path.span()=> .listener(#path())));
            helpers.extend(quote! {
                fn __breaker_listeners(builder: #krate::__private::Builder) -> #krate::__private::Builder {
                    builder #(#listener_calls)*
                }
            });
            some(quote!((#shown, __breaker_listeners)))
        }
        None => none.clone(),
    };
    let clock = match &args.clock {
        Some(path) => {
            let shown = path_string(path);
            let clock_call = quote_spanned!(path.span()=> builder.clock(#path()));
            helpers.extend(quote! {
                fn __breaker_clock(builder: #krate::__private::Builder) -> #krate::__private::Builder {
                    #clock_call
                }
            });
            some(quote!((#shown, __breaker_clock)))
        }
        None => none,
    };
    let (keyed_fields, site) = keyed_declaration(args, krate);
    quote! {
        #helpers
        static __BREAKER_DECLARATION: #krate::__private::Declaration = #krate::__private::Declaration {
            name: #name,
            default_name: #default_name,
            function: ::core::concat!(::core::module_path!(), "::", #fn_name),
            fail_max: #fail_max,
            reset_timeout: #reset_timeout,
            success_threshold: #success_threshold,
            throw_new_error_on_trip: #throw,
            storage: #storage,
            listeners: #listeners,
            clock: #clock,
            half_open_calls: #half_open_calls,
            backoff: #backoff,
            failure_rate: #failure_rate,
            window: #window,
            min_calls: #min_calls,
            slow_call_duration: #slow_call_duration,
            slow_call_rate: #slow_call_rate,
            #keyed_fields
        };
        #krate::__private::inventory::submit! {
            #krate::__private::Registration(&__BREAKER_DECLARATION)
        }
        #site
    }
}

/// Breakers per key: the declaration's fields, and the site's static.
fn keyed_declaration(args: &Args, krate: &Path) -> (TokenStream, TokenStream) {
    let keyed = args.key.is_some();
    let max_keys = match args.max_keys {
        Some((n, _)) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let idle_timeout = match args.idle_timeout {
        Some((d, _)) => {
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            quote!(::core::option::Option::Some(::core::time::Duration::from_nanos(#nanos)))
        }
        None => quote!(::core::option::Option::None),
    };
    let fields = quote!(keyed: #keyed, max_keys: #max_keys, idle_timeout: #idle_timeout,);
    let site = if keyed {
        quote!(static __BREAKER_KEYED_SITE: #krate::__private::KeyedSite = #krate::__private::KeyedSite::new(&__BREAKER_DECLARATION);)
    } else {
        quote!(static __BREAKER_SITE: #krate::__private::Site = #krate::__private::Site::new(&__BREAKER_DECLARATION);)
    };
    (fields, site)
}

/// `key` works on `fn` and `async fn` and on functions returning iterators
/// or streams (which own the key's breaker), not on functions returning a
/// future by hand (whose future would borrow it); `max_keys` and
/// `idle_timeout` need `key`.
fn check_key(args: &Args, kind: &Kind) -> syn::Result<()> {
    if let Some(key) = &args.key {
        if matches!(kind, Kind::FutureImpl(_) | Kind::FutureBoxed(_)) {
            return Err(syn::Error::new(
                key.span(),
                "`key` works on `fn` and `async fn`, and on functions returning iterators or streams, not on functions returning futures: write it as an `async fn`",
            ));
        }
        return Ok(());
    }
    let unkeyed = [
        args.max_keys.map(|(_, span)| ("max_keys", span)),
        args.idle_timeout.map(|(_, span)| ("idle_timeout", span)),
    ];
    match unkeyed.into_iter().flatten().next() {
        Some((setting, span)) => Err(syn::Error::new(
            span,
            format!("`{setting}` applies to breakers per key: add `key = ..`"),
        )),
        None => Ok(()),
    }
}

/// The span of `E` in `Result<T, E>`, or of the whole type.
fn error_type_span(ty: &Type) -> proc_macro2::Span {
    result_args(ty)
        .and_then(|args| args.get(1).map(Spanned::span))
        .unwrap_or_else(|| ty.span())
}

/// `<ty as GuardedResult>`, every token at the span of `ty`'s first token
/// (returned too): its uses all fail as one error there when `ty` is not a
/// `Result`.
fn guarded_at(krate: &Path, ty: &Type) -> (proc_macro2::Span, TokenStream) {
    let first = ty
        .to_token_stream()
        .into_iter()
        .next()
        .map_or_else(|| ty.span(), |t| t.span());
    (first, respan(quote!(<#ty as #krate::GuardedResult>), first))
}

/// A closure turning the breaker's error into the function's, through the
/// public `FromBreakerError`, every token at `span`.
fn conversion(krate: &Path, span: proc_macro2::Span) -> TokenStream {
    respan(
        quote! {
            |__breaker_rejected| <_ as #krate::FromBreakerError>::from_breaker_error(__breaker_rejected)
        },
        span,
    )
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(g) = &tree {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tree = group.into();
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

fn path_string(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// How the call site sees its error as `dyn Error` (autoref specialisation).
fn view(krate: &Path) -> TokenStream {
    quote! {
        |__breaker_error| {
            #[allow(unused_imports)]
            use #krate::__private::{ViewAny as _, ViewAsRef as _, ViewError as _};
            (&&&#krate::__private::Wrap(__breaker_error)).breaker_view()
        }
    }
}

/// The call site's exclusions; with `all` false, only the by-type entries
/// (for the outer error of `Result<impl Iterator, E2>`).
fn excluded(krate: &Path, entries: &[Exclude], all: bool) -> TokenStream {
    let site = quote!(__BREAKER_SITE.get());
    let error = format_ident!("__breaker_error");
    let chain = format_ident!("__breaker_chain");
    let probe = |ty: &Type| {
        quote_spanned! {ty.span()=>
            (&&#krate::__private::Probe::<#ty>::NEW)
                .breaker_find(#krate::__private::as_any(#error), #chain)
        }
    };
    // An entry whose type can never match the function's error is refused
    // (checked against the item's error where there are two error types).
    let checks = entries.iter().filter_map(|entry| match entry {
        Exclude::Type(ty) | Exclude::Closure(ty, _) if all => Some(quote_spanned! {ty.span()=>
            (&&#krate::__private::Check::<#ty, _>::of(#error)).breaker_check();
        }),
        _ => None,
    });
    let tests = entries.iter().filter_map(|entry| match entry {
        Exclude::Type(ty) => {
            let found = probe(ty);
            Some(quote!(#found.is_some()))
        }
        Exclude::Pattern(pat) if all => Some(quote!(::core::matches!(#error, #pat))),
        Exclude::Closure(ty, closure) if all => {
            let found = probe(ty);
            Some(quote!(#found.is_some_and(#krate::__private::predicate::<#ty, _>(#closure))))
        }
        Exclude::Guarded(pat, guard) if all => Some(quote! {
            match #error {
                #pat if #guard => true,
                _ => false,
            }
        }),
        Exclude::Function(path) if all => Some(quote_spanned! {path.span()=>
            {
                let __breaker_predicate = #path;
                (&&#krate::__private::Probe::of(&__breaker_predicate))
                    .breaker_find(#krate::__private::as_any(#error), #chain)
                    .is_some_and(__breaker_predicate)
            }
        }),
        _ => None,
    });
    // In debug builds, an entry whose type is not in a failing error says
    // why when it can (`#[error(transparent)]`): see `breaker::hint`.
    let hints = entries.iter().filter_map(|entry| match entry {
        Exclude::Type(ty) | Exclude::Closure(ty, _) if all || matches!(entry, Exclude::Type(_)) => {
            let found = probe(ty);
            let shown = ty.to_token_stream().to_string().replace(' ', "");
            Some(quote! {
                if #found.is_none() {
                    #krate::__private::exclusion_missed::<_, #ty>(#site, #error, #chain, #shown);
                }
            })
        }
        _ => None,
    });
    quote! {
        |#error, #chain| {
            #[allow(unused_imports)]
            use #krate::__private::{ProbeAny as _, ProbeError as _};
            #[allow(unused_imports)]
            use #krate::__private::{CheckAny as _, CheckError as _, CheckSame as _};
            let _ = (&#error, &#chain);
            #(#checks)*
            let __breaker_excluded = false #(|| #tests)*;
            if #krate::__private::HINTS && !__breaker_excluded {
                #(#hints)*
            }
            __breaker_excluded
        }
    }
}
