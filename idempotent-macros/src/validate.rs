//! Checks that need more than one token: options against each other, and the handler's signature.
//!
//! Everything here could also fail later in rustc, but with a message about generated code (`expected fn
//! pointer, found ...` inside the expansion). Checking first lets the error name the rule and sit on the token
//! that breaks it.

use syn::spanned::Spanned as _;
use syn::{FnArg, Safety};

use crate::args::Args;
use crate::duration::format_seconds;
use crate::errors::Errors;
use crate::handler::HandlerFn;

/// Cross-option checks. Options that failed to parse are absent and simply not compared.
pub(crate) fn check_args(args: &Args, errors: &mut Errors) {
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

/// Checks that the function can be wrapped as an actix-web handler; every violation is reported.
pub(crate) fn check_fn(handler: &HandlerFn, errors: &mut Errors) {
    let sig = &handler.sig;

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
        if let FnArg::Receiver(receiver) = input {
            errors.push(syn::Error::new(
                receiver.span(),
                "#[idempotent] cannot be used on a method: a handler is a free `async fn` without `self`",
            ));
        }
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
                async fn f<'a>(t: &'a str) {}
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
