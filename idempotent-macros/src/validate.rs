//! Checks that need more than one token: options against each other, and the handler's signature.
//!
//! Everything here could also fail later in rustc, but with a message about generated code (`expected fn
//! pointer, found ...` inside the expansion). Checking first lets the error name the rule and sit on the token
//! that breaks it.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens as _;
use syn::spanned::Spanned;
use syn::{FnArg, PatType, Safety, Type};

use crate::args::{Args, Key, OnConflict, Scope};

/// The longest `ttl`, `lease` or `wait` accepted: 10 years. Longer ones overflow deadlines and mean "forever".
const MAX_DURATION_SECS: u64 = 10 * 365 * 24 * 60 * 60;
use crate::duration::format_seconds;
use crate::errors::Errors;
use crate::handler::HandlerFn;

/// Cross-option checks. Options that failed to parse are absent and simply not compared.
pub(crate) fn check_args(args: &Args, errors: &mut Errors) {
    for setting in [&args.ttl, &args.lease, &args.wait].into_iter().flatten() {
        if setting.value > MAX_DURATION_SECS {
            errors.push(syn::Error::new(
                setting.value_span,
                format!(r#"`{}` is longer than 10 years; use at most "3650d""#, setting.keyword),
            ));
        }
    }
    if let (Some(key), Some(Scope::Global)) = (&args.key, args.scope.as_ref().map(|scope| &scope.value))
        && key.value == Key::Derived
    {
        errors.push(syn::Error::new(
            key.value_span,
            r#"`key = "derived"` with `scope = "global"` would let two callers sending the same request share one response: scope it by "user", a header or a function"#,
        ));
    }
    if let (Some(key), Some(required)) = (&args.key, &args.required)
        && key.value == Key::Derived
    {
        errors.push(syn::Error::new(
            required.keyword.span(),
            r#"`required` has no effect with `key = "derived"`: every request has a derived key; remove it"#,
        ));
    }
    if args.issued_only.as_ref().is_some_and(|issued_only| issued_only.value) {
        if let Some(key) = args.key.as_ref().filter(|key| key.value == Key::Derived) {
            errors.push(syn::Error::new(
                key.value_span,
                r#"`issued_only = true` needs keys from the client, and `key = "derived"` makes them from the request: use `key = "header"` (the default), or remove `issued_only`"#,
            ));
        }
        if let Some(required) = args.required.as_ref().filter(|required| !required.value) {
            errors.push(syn::Error::new(
                required.value_span,
                "`issued_only = true` with `required = false` would run requests without a key unprotected, so the \
                 server would not know every operation a client started: remove `required = false`",
            ));
        }
    }
    match (&args.on_conflict, &args.wait) {
        (Some(policy), None) if policy.value == OnConflict::Wait && !args.wrote("wait") => {
            errors.push(syn::Error::new(
                policy.value_span,
                r#"`on_conflict = "wait"` needs to know how long: add `wait = "5s"` (or another duration)"#,
            ))
        }
        (Some(policy), Some(wait)) if policy.value == OnConflict::Reject => errors.push(syn::Error::new(
            wait.keyword.span(),
            r#"`wait` has no effect with `on_conflict = "reject"`: remove it, or write `on_conflict = "wait"`"#,
        )),
        (None, Some(wait)) if !args.wrote("on_conflict") => errors.push(syn::Error::new(
            wait.keyword.span(),
            r#"`wait` only applies to `on_conflict = "wait"`: add it, as in `on_conflict = "wait", wait = "5s"`"#,
        )),
        _ => {}
    }
    if let (Some(_), Some(headers)) = (&args.fingerprint, &args.fingerprint_headers) {
        errors.push(syn::Error::new(
            headers.keyword.span(),
            "`fingerprint_headers` has no effect with a `fingerprint` function: the function reads the headers it \
             needs from the request; remove one of the two",
        ));
    }
    if let (Some(_), Some(old)) = (&args.store_responses, &args.store_server_errors) {
        errors.push(syn::Error::new(
            old.keyword.span(),
            "`store_server_errors` is replaced by `store_responses`: remove it (`store_server_errors = true` is \
             `store_responses = \"all\"`)",
        ));
    }
    if let (Some(ttl), Some(lease)) = (&args.ttl, &args.lease)
        && lease.value >= ttl.value
    {
        errors.push(syn::Error::new(
            lease.value_span,
            format!(
                "`lease` ({}) must be shorter than `ttl` ({}): the lease protects a request while it runs, \
                 the ttl keeps its response afterwards",
                format_seconds(lease.value),
                format_seconds(ttl.value),
            ),
        ));
    }
}

/// Checks of options against the handler.
pub(crate) fn check_args_with_fn(args: &Args, handler: &HandlerFn, errors: &mut Errors) {
    if let Some(fail_open) = &args.fail_open
        && fail_open.value
        && handler.transaction_types().next().is_some()
    {
        errors.push(syn::Error::new(
            fail_open.keyword.span(),
            "`fail_open = true` cannot apply to a transactional route: its handler's `Tx` is a transaction of the \
             store, which is what is unavailable; remove `fail_open` or the `Tx` parameter",
        ));
    }
}

/// Checks that the function can be wrapped as an actix-web handler; every violation is reported.
pub(crate) fn check_fn(handler: &HandlerFn, errors: &mut Errors) {
    let sig = &handler.sig;

    for extra in handler.transaction_types().skip(1) {
        errors.push(syn::Error::new_spanned(
            extra,
            "a handler takes at most one `Tx`: the claim, the handler's writes and the stored response share one \
             transaction; remove this parameter and use the first `Tx`",
        ));
    }

    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("#[idempotent] requires an async fn: write `async fn {}(...)`", sig.ident),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(constness.span, "#[idempotent] handlers cannot be `const`"));
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        errors.push(syn::Error::new(
            unsafety.span,
            "#[idempotent] handlers cannot be `unsafe`: actix-web calls handlers as safe functions",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(abi, "#[idempotent] handlers cannot declare an ABI (`extern`)"));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "#[idempotent] handlers cannot have generic parameters (type, const or lifetime): \
             actix-web needs one concrete function per route",
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "#[idempotent] handlers cannot have a `where` clause: actix-web needs one concrete function per route",
        ));
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new(
                receiver.span(),
                "#[idempotent] cannot be used on a method: a handler is a free `async fn` without `self`",
            )),
            FnArg::Typed(argument) => check_argument(argument, errors),
        }
    }
    if sig.inputs.len() > MAX_ARGUMENTS {
        let extra = sig.inputs.iter().nth(MAX_ARGUMENTS).map_or_else(|| sig.ident.span(), Spanned::span);
        errors.push(syn::Error::new(
            extra,
            format!(
                "#[idempotent] handlers take at most {MAX_ARGUMENTS} arguments, as actix-web handlers do: \
                 group extractors in a tuple, as in `(a, b): (web::Path<u32>, web::Query<Q>)`"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(variadic.dots.spans[0], "#[idempotent] handlers cannot be variadic"));
    }

    // A second `#[idempotent]` below this one would wrap the generated handler again.
    for attr in &handler.attrs {
        if attr.path().segments.last().is_some_and(|segment| segment.ident == "idempotent") {
            errors.push(syn::Error::new_spanned(attr, "#[idempotent] is applied more than once; keep one"));
        }
    }
}

/// The most arguments an actix-web handler takes (its `Handler` trait is implemented for up to 16).
const MAX_ARGUMENTS: usize = 16;

/// Checks one argument: its type must be nameable (each is forwarded as `extracted::<Type>`), and it must be
/// there in every configuration.
fn check_argument(argument: &PatType, errors: &mut Errors) {
    if let Type::Reference(reference) = &*argument.ty {
        let inner = reference.elem.to_token_stream().to_string().replace(' ', "");
        errors.push(syn::Error::new_spanned(
            reference,
            format!(
                "#[idempotent] handlers take their extractors by value, as actix-web handlers do: \
                 write `{inner}`, not `&{inner}`"
            ),
        ));
        return;
    }
    if let Some(impl_token) = find_impl(argument.ty.to_token_stream()) {
        errors.push(syn::Error::new(
            impl_token,
            "#[idempotent] handlers cannot take `impl Trait` arguments: name the extractor's type, \
             as in `body: web::Json<Payment>`",
        ));
    }
    for attr in &argument.attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            errors.push(syn::Error::new_spanned(
                attr,
                "#[idempotent] handlers cannot have conditional arguments: put the `#[cfg]` on the whole handler, \
                 or make the argument an `Option<T>` extractor",
            ));
        }
    }
}

/// The span of the first `impl` keyword in a type, at any depth.
fn find_impl(tokens: TokenStream) -> Option<Span> {
    tokens.into_iter().find_map(|token| match token {
        TokenTree::Ident(ident) if ident == "impl" => Some(ident.span()),
        TokenTree::Group(group) => find_impl(group.stream()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::{check_args, check_fn};
    use crate::errors::Errors;
    use proc_macro2::TokenStream;
    use quote::quote;

    fn fn_errors(item: TokenStream) -> Vec<String> {
        let handler = syn::parse2(item).expect("parses");
        let mut errors = Errors::default();
        check_fn(&handler, &mut errors);
        match errors.finish(Ok(())) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn args_errors(attr: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let args = crate::args::parse(attr, &mut errors);
        check_args(&args, &mut errors);
        match errors.finish(Ok(())) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_plain_async_handler_passes() {
        assert!(
            fn_errors(quote!(
                pub async fn f(web::Json(body): web::Json<T>, _: u8, mut x: u8) {}
            ))
            .is_empty()
        );
    }

    #[test]
    fn not_async() {
        assert_eq!(
            fn_errors(quote!(
                fn create() {}
            )),
            ["#[idempotent] requires an async fn: write `async fn create(...)`"]
        );
    }

    #[test]
    fn receivers() {
        for item in [
            quote!(
                async fn f(self) {}
            ),
            quote!(
                async fn f(&self) {}
            ),
            quote!(
                async fn f(&mut self, a: u8) {}
            ),
            quote!(
                async fn f(self: Box<Self>) {}
            ),
        ] {
            let errors = fn_errors(item);
            assert_eq!(errors.len(), 1);
            assert!(errors[0].starts_with("#[idempotent] cannot be used on a method"));
        }
    }

    #[test]
    fn generics() {
        for item in [
            quote!(
                async fn f<T>(t: T) {}
            ),
            quote!(
                async fn f<'a>(t: Cow<'a, str>) {}
            ),
            quote!(
                async fn f<const N: usize>() {}
            ),
        ] {
            let errors = fn_errors(item);
            assert_eq!(errors.len(), 1);
            assert!(errors[0].contains("cannot have generic parameters"));
        }
        assert_eq!(
            fn_errors(quote!(
                async fn f<T>()
                where
                    T: Send,
                {
                }
            ))
            .len(),
            2
        );
    }

    #[test]
    fn everything_wrong_at_once() {
        let errors = fn_errors(quote!(
            #[idempotent]
            const unsafe extern "C" fn f<T>(&self, ...) {}
        ));
        assert_eq!(errors.len(), 8, "{errors:?}");
    }

    #[test]
    fn arguments_that_cannot_be_forwarded() {
        assert_eq!(
            fn_errors(quote!(
                async fn f(a: impl FromRequest, b: Vec<impl Sized>) {}
            )),
            ["#[idempotent] handlers cannot take `impl Trait` arguments: name the extractor's type, \
                 as in `body: web::Json<Payment>`"; 2]
        );
        assert_eq!(
            fn_errors(quote!(
                async fn f(#[cfg(feature = "x")] a: A, #[allow(unused)] b: B) {}
            )),
            ["#[idempotent] handlers cannot have conditional arguments: put the `#[cfg]` on the whole handler, \
                 or make the argument an `Option<T>` extractor"]
        );
    }

    #[test]
    fn reference_arguments() {
        assert_eq!(
            fn_errors(quote!(
                async fn f(request: &HttpRequest, b: &'static web::Bytes) {}
            )),
            [
                "#[idempotent] handlers take their extractors by value, as actix-web handlers do: \
                 write `HttpRequest`, not `&HttpRequest`",
                "#[idempotent] handlers take their extractors by value, as actix-web handlers do: \
                 write `web::Bytes`, not `&web::Bytes`",
            ]
        );
    }

    #[test]
    fn at_most_sixteen_arguments() {
        let arguments = (0..17).map(|index| quote::format_ident!("a{index}"));
        let errors = fn_errors(quote!(async fn f(#(#arguments: u8),*) {}));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("#[idempotent] handlers take at most 16 arguments"), "{errors:?}");
        let arguments = (0..16).map(|index| quote::format_ident!("a{index}"));
        assert!(fn_errors(quote!(async fn f(#(#arguments: u8),*) {})).is_empty());
    }

    #[test]
    fn lease_shorter_than_ttl() {
        assert!(args_errors(quote!(ttl = "1h", lease = "30s")).is_empty());
        assert_eq!(
            args_errors(quote!(ttl = "1m", lease = "90s")),
            ["`lease` (1m30s) must be shorter than `ttl` (1m): the lease protects a request while it runs, \
              the ttl keeps its response afterwards"]
        );
        assert_eq!(args_errors(quote!(lease = "1h", ttl = "60m")).len(), 1, "equal is refused");
        // Only one given: the runtime defaults are not known here.
        assert!(args_errors(quote!(lease = "30d")).is_empty());
    }

    #[test]
    fn cross_check_still_runs_beside_other_errors() {
        assert_eq!(args_errors(quote!(ttl = "1m", lease = "2m", scope = "nobody")).len(), 2);
    }
}
