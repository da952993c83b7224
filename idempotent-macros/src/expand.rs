//! Code generation: the handler is wrapped, not rewritten.
//!
//! The user's function goes, unchanged, inside a generated function of the same name, visibility and outer
//! attributes. The generated function takes the raw request and payload, and makes one call into the runtime,
//! which claims the key, buffers and fingerprints the body, and then runs the user's function with its own
//! extractors. Keeping the body intact means its errors, spans and borrow-checking are exactly as written; keeping
//! the generated part to one constant and one call means there is little to go wrong in it.
//!
//! Nothing is emitted beside the function: actix-web's route macros (`#[post]`) may sit above this attribute and
//! move the whole item into a generated service, taking along only what is inside it.

use proc_macro2::{Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens as _, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Attribute, FnArg, LitStr, Meta, PatType, ReturnType, Signature, Type};

use crate::args::{self, Args, Key, OnConflict, Scope, Setting, StoreResponses};
use crate::errors::Errors;
use crate::handler::HandlerFn;
use crate::validate;

/// The macro on `proc_macro2` tokens: parse, validate, emit. On any error, the original item is returned
/// unchanged followed by every error, so the rest of the crate still sees the handler (fewer knock-on errors,
/// working IDE completion).
pub(crate) fn idempotent(attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_idempotent(attr, item.clone()) {
        Ok(expanded) => expanded,
        Err(error) => {
            let mut out = item;
            out.extend(error.into_compile_error());
            out
        }
    }
}

/// Parses and checks the arguments and the handler, collecting independent errors, then emits.
fn try_idempotent(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = args::parse(attr, &mut errors);
    validate::check_args(&args, &mut errors);
    let handler = syn::parse2::<HandlerFn>(item);
    if let Ok(handler) = &handler {
        validate::check_fn(handler, &mut errors);
        validate::check_args_with_fn(&args, handler, &mut errors);
    }
    let handler = errors.finish(handler)?;
    Ok(emit(&args, &handler))
}

/// Is this attribute about lints or conditional compilation, and so also meant for the user's own function?
///
/// `#[expect]` is left out on purpose: lint levels reach nested items, so the outer function's `#[expect]`
/// already covers the inner one, and a second copy would be reported as an unfulfilled expectation.
fn also_on_inner(attr: &Attribute) -> bool {
    const LINTS: [&str; 4] = ["allow", "warn", "deny", "forbid"];
    let Some(name) = attr.path().get_ident() else {
        return false;
    };
    if name == "cfg" || LINTS.iter().any(|lint| name == lint) {
        return true;
    }
    if name != "cfg_attr" {
        return false;
    }
    // `#[cfg_attr(predicate, attr, ...)]` is copied only when every attribute it adds is a lint level: it could
    // also add a route macro, which must run once.
    let Meta::List(list) = &attr.meta else {
        return false;
    };
    let parser = syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated;
    let Ok(metas) = list.parse_args_with(parser) else {
        return false;
    };
    metas.len() >= 2
        && metas
            .iter()
            .skip(1)
            .all(|meta| meta.path().get_ident().is_some_and(|name| LINTS.iter().any(|lint| name == lint)))
}

/// The generated handler.
fn emit(args: &Args, handler: &HandlerFn) -> TokenStream {
    let krate = args.krate.as_ref().map_or_else(
        || quote!(::idempotent_runtime),
        |setting| {
            let path = &setting.value;
            quote!(#path)
        },
    );
    let private = quote!(#krate::__private);

    let HandlerFn { attrs, vis, sig, body } = handler;
    let ident = &sig.ident;
    let inner_attrs = attrs.iter().filter(|attr| also_on_inner(attr));

    let request = Ident::new("__idempotent_request", Span::call_site());
    let payload = Ident::new("__idempotent_payload", Span::call_site());
    let route = Ident::new("__idempotent_route", Span::call_site());
    let options = builder_calls(args, &private);
    // A separate entry point for transactional routes: an app without them does not link that path.
    let entry = if handler.transaction_types().next().is_some() { "handle_transactional" } else { "handle" };
    let entry = Ident::new(entry, Span::call_site());

    // Spanned on the declared return type, so "`X` is not a Responder" underlines the handler's own code.
    let output_span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => ident.span(),
    };
    let mut handler_fn = ident.clone();
    handler_fn.set_span(output_span);
    let handler_expr = forward_arguments(sig, &handler_fn, &private, output_span);
    // The runtime path too: a call expression spanning from the attribute to the return type would underline
    // both and everything between.
    let handle = respan(quote!(#private::#entry), output_span);
    let call = quote_spanned! {output_span=>
        #handle(#route, #request, #payload, #handler_expr)
    };

    // A plain `fn` returning the runtime's future, not an `async fn` awaiting it: one state machine less per route
    // (BENCHMARKS.md, "Build cost per route"). Every attribute still on the item (written below this one, or a
    // built-in one written above) goes on the generated function: an attribute macro there (`#[tracing::instrument]`,
    // a route macro) still gets an `async fn`, as it expects, and so does any attribute not known to be inert.
    let (asyncness, output, call) = if attrs.iter().all(is_inert) {
        // Spanned on the user's return type too: when the handler's output is not a `Responder`, the future's type
        // fails the same bound, and rustc then reports it once, there, instead of a second time on the attribute.
        // `Responding` is `Future<Output = HttpResponse>` under a name the user's code does not import, so
        // `unused_qualifications` has no shorter path to suggest at that span.
        let output = respan(quote!(impl #private::Responding), output_span);
        (quote!(), output, call)
    } else {
        (quote!(async), quote!(#private::HttpResponse), quote!(#call.await))
    };
    quote! {
        #(#attrs)*
        #vis #asyncness fn #ident(
            #request: #private::HttpRequest,
            #payload: #private::Payload,
        ) -> #output {
            #(#inner_attrs)*
            #sig #body

            // A constant, not a `static`: nothing in it changes, and a `static` per route would cost the binary a
            // symbol and writable data (BENCHMARKS.md, "Build cost per route").
            let #route: &'static #private::RouteOptions = &const { #private::RouteOptions::new() #(#options)* };
            // The handler's registration for the app's OpenAPI document: an item, registered at link time, that
            // the runtime compiles to nothing without its `openapi` feature. Inside the function, so that the
            // attribute emits nothing beside it (an associated function's `impl` block takes no such item).
            #private::document_route!(#ident, &const { #private::RouteOptions::new() #(#options)* });

            #call
        }
    }
}

/// Is this attribute one that means the same on a plain `fn` returning a future: docs, lint levels, `cfg`,
/// `deprecated`, `inline`, `cold`? Only then may the generated function be a plain `fn`: an attribute macro
/// expects the `async fn` it was written on. (`must_use` is not: on a plain `fn` it would cover the future, not the
/// response, and clippy's `double_must_use` would flag it.)
fn is_inert(attr: &Attribute) -> bool {
    const INERT: [&str; 10] =
        ["doc", "cfg", "allow", "warn", "deny", "forbid", "expect", "deprecated", "inline", "cold"];
    attr.path().get_ident().is_some_and(|name| INERT.iter().any(|inert| name == inert))
}

/// The handler given to the runtime: the user's function itself when it takes no argument, else a closure that
/// passes each argument through `__private::extracted::<Type>()`.
///
/// The closure is there for the error messages only. Given the function itself, the runtime's
/// `Args: FromRequest` bound fails on the tuple of all argument types, and rustc reports it on the call, that is on
/// generated code. Through `extracted::<Type>()`, spanned on the argument's declared type, an argument that is not
/// an extractor is reported once, on that type; and since `extracted` leaves the closure's parameter type
/// unknown in that case, the runtime's bound is not reported a second time.
fn forward_arguments(sig: &Signature, handler_fn: &Ident, private: &TokenStream, span: Span) -> TokenStream {
    let types: Vec<&Type> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(PatType { ty, .. }) => Some(&**ty),
            // Refused by validation before emitting.
            FnArg::Receiver(_) => None,
        })
        .collect();
    if types.is_empty() {
        return quote!(#handler_fn);
    }
    let params: Vec<Ident> =
        (0..types.len()).map(|index| Ident::new(&format!("__idempotent_arg{index}"), Span::call_site())).collect();
    let forwarded = types.iter().zip(&params).map(|(ty, param)| {
        // The type keeps its spans; what comes before it is spanned on its first token and what comes after on its
        // last, so both the call and the type span exactly the user's type: rustc reports the bound once, there.
        let tokens: Vec<TokenTree> = ty.to_token_stream().into_iter().collect();
        let first = tokens.first().map_or(span, TokenTree::span);
        let last = match tokens.last() {
            Some(TokenTree::Group(group)) => group.span_close(),
            Some(token) => token.span(),
            None => span,
        };
        let before = respan(quote!(#private::extracted::<), first);
        let after = respan(quote!(>()(#param)), last);
        quote!(#before #ty #after)
    });
    quote_spanned! {span=>
        |#(#params),*| #handler_fn(#(#forwarded),*)
    }
}

/// `tokens` with every span replaced by `span` (groups included).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                token = TokenTree::Group(respanned);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// One `.option(value)` call per option the user wrote; the rest are the runtime's defaults.
fn builder_calls(args: &Args, private: &TokenStream) -> Vec<TokenStream> {
    let mut calls = Vec::new();
    // The method is named with the user's keyword span: a runtime without that option errors on the option.
    let mut call = |setting_keyword: &Ident, name: &str, value: TokenStream| {
        let method = Ident::new(name, setting_keyword.span());
        calls.push(quote!(.#method(#value)));
    };

    let duration = |setting: &Setting<u64>| {
        let seconds = Literal::u64_unsuffixed(setting.value);
        quote!(#private::Duration::from_secs(#seconds))
    };
    if let Some(ttl) = &args.ttl {
        call(&ttl.keyword, "ttl", duration(ttl));
    }
    if let Some(lease) = &args.lease {
        call(&lease.keyword, "lease", duration(lease));
    }
    if let (Some(policy), Some(wait)) = (&args.on_conflict, &args.wait)
        && policy.value == OnConflict::Wait
    {
        call(&policy.keyword, "wait", duration(wait));
    }
    if let Some(scope) = &args.scope {
        let value = match &scope.value {
            Scope::User => quote!(#private::ScopeSpec::User),
            Scope::Global => quote!(#private::ScopeSpec::Global),
            Scope::Header(name) => {
                let name = LitStr::new(name, scope.value_span);
                quote!(#private::ScopeSpec::Header(#name))
            }
            Scope::Function(path) => {
                // All on the user's path: a wrong signature underlines the path, not the whole attribute.
                let span = path.span();
                let variant = respan(quote!(#private::ScopeSpec::Function), span);
                quote_spanned!(span=> #variant(#path))
            }
        };
        call(&scope.keyword, "scope", value);
    }
    if let Some(key) = &args.key {
        let name = |name: &str| LitStr::new(name, key.value_span);
        let value = match &key.value {
            Key::Header => quote!(#private::KeySpec::Header),
            Key::HeaderNamed(header) => {
                let header = name(header);
                quote!(#private::KeySpec::HeaderNamed(#header))
            }
            Key::Query(field) => {
                let field = name(field);
                quote!(#private::KeySpec::Query(#field))
            }
            Key::Form(field) => {
                let field = name(field);
                quote!(#private::KeySpec::Form(#field))
            }
            Key::Derived => quote!(#private::KeySpec::Derived),
        };
        call(&key.keyword, "key", value);
    }
    for (setting, name) in [
        (&args.required, "required"),
        (&args.store_server_errors, "store_server_errors"),
        (&args.issued_only, "issued_only"),
    ] {
        if let Some(setting) = setting {
            let value = syn::LitBool::new(setting.value, setting.value_span);
            call(&setting.keyword, name, quote!(#value));
        }
    }
    if let Some(policy) = &args.store_responses {
        let value = match &policy.value {
            StoreResponses::Final => quote!(#private::StorePolicy::Final),
            StoreResponses::All => quote!(#private::StorePolicy::All),
            StoreResponses::Success => quote!(#private::StorePolicy::Success),
            StoreResponses::Function(path) => {
                // On the user's path: a wrong signature underlines the path, as for `scope`.
                let span = path.span();
                let variant = respan(quote!(#private::StorePolicy::Function), span);
                quote_spanned!(span=> #variant(#path))
            }
        };
        call(&policy.keyword, "store_responses", value);
    }
    if let Some(headers) = &args.fingerprint_headers {
        let names = headers.value.iter().map(|name| LitStr::new(name, headers.value_span));
        call(&headers.keyword, "fingerprint_headers", quote!(&[#(#names),*]));
    }
    if let Some(function) = &args.fingerprint {
        let path = &function.value;
        call(&function.keyword, "fingerprint", quote_spanned!(path.span()=> #path));
    }
    if let Some(namespace) = &args.namespace {
        let name = LitStr::new(&namespace.value, namespace.value_span);
        call(&namespace.keyword, "namespace", quote!(#name));
    }
    if let Some(fail_open) = &args.fail_open {
        let value = syn::LitBool::new(fail_open.value, fail_open.value_span);
        call(&fail_open.keyword, "fail_open", quote!(#value));
    }
    for (setting, name) in
        [(&args.max_request_body, "max_request_body"), (&args.max_response_body, "max_response_body")]
    {
        if let Some(setting) = setting {
            // Suffixed: on a target where it does not fit in `usize`, rustc says so on the user's literal.
            let bytes = syn::LitInt::new(&format!("{}usize", setting.value), setting.value_span);
            call(&setting.keyword, name, quote!(#bytes));
        }
    }
    calls
}
