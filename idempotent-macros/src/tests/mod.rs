//! Tests of the whole macro at the `proc_macro2` level: the shape of the expansion, the errors it reports, and
//! that no input, however broken, makes it panic (a panic shows as "custom attribute panicked" on the whole
//! attribute, which helps nobody).

use proc_macro2::{TokenStream, TokenTree};
use quote::{ToTokens as _, quote};

use crate::expand::idempotent;

mod errors;

/// The expansion as a string, for shape assertions.
pub(super) fn expand(attr: TokenStream, item: TokenStream) -> String {
    idempotent(attr, item).to_string()
}

/// The messages of every `compile_error!` in the output.
pub(super) fn compile_errors(output: &TokenStream) -> Vec<String> {
    let tokens: Vec<TokenTree> = output.clone().into_iter().collect();
    let mut messages = Vec::new();
    for window in tokens.windows(3) {
        if let [TokenTree::Ident(name), TokenTree::Punct(bang), TokenTree::Group(group)] = window
            && name == "compile_error"
            && bang.as_char() == '!'
            && let Ok(message) = syn::parse2::<syn::LitStr>(group.stream())
        {
            messages.push(message.value());
        }
    }
    messages
}

/// The errors of an expansion that must fail, after checking that the original item is still emitted.
pub(super) fn errors(attr: TokenStream, item: TokenStream) -> Vec<String> {
    let original = item.to_string();
    let output = idempotent(attr, item);
    let messages = compile_errors(&output);
    assert!(!messages.is_empty(), "expected errors, got {output}");
    assert!(output.to_string().starts_with(&original), "the original item comes first, unchanged: {output}");
    messages
}

#[test]
fn the_documented_shape() {
    let output = expand(
        quote!(
            ttl = "24h",
            lease = "5s",
            scope = "user",
            key = "header",
            required = true,
            store_server_errors = false,
            max_request_body = "1MiB",
            max_response_body = 1048576
        ),
        quote! {
            /// docs
            #[post("/payments")]
            pub async fn create_payment(body: web::Json<NewPayment>, db: web::Data<Pool>) -> impl Responder { BODY }
        },
    );
    let expected = quote! {
        /// docs
        #[post("/payments")]
        pub async fn create_payment(
            __idempotent_request: ::idempotent_runtime::__private::HttpRequest,
            __idempotent_payload: ::idempotent_runtime::__private::Payload,
        ) -> ::idempotent_runtime::__private::HttpResponse {
            async fn create_payment(body: web::Json<NewPayment>, db: web::Data<Pool>) -> impl Responder { BODY }

            let __idempotent_route: &'static ::idempotent_runtime::__private::RouteOptions = &const {
                ::idempotent_runtime::__private::RouteOptions::new()
                    .ttl(::idempotent_runtime::__private::Duration::from_secs(86400))
                    .lease(::idempotent_runtime::__private::Duration::from_secs(5))
                    .scope(::idempotent_runtime::__private::ScopeSpec::User)
                    .key(::idempotent_runtime::__private::KeySpec::Header)
                    .required(true)
                    .store_server_errors(false)
                    .max_request_body(1048576usize)
                    .max_response_body(1048576usize)
            };
            ::idempotent_runtime::__private::document_route!(create_payment, &const {
                ::idempotent_runtime::__private::RouteOptions::new()
                .ttl(::idempotent_runtime::__private::Duration::from_secs(86400))
                .lease(::idempotent_runtime::__private::Duration::from_secs(5))
                .scope(::idempotent_runtime::__private::ScopeSpec::User)
                .key(::idempotent_runtime::__private::KeySpec::Header)
                .required(true)
                .store_server_errors(false)
                .max_request_body(1048576usize)
                .max_response_body(1048576usize)
            });

            ::idempotent_runtime::__private::handle(
                __idempotent_route,
                __idempotent_request,
                __idempotent_payload,
                |__idempotent_arg0, __idempotent_arg1| create_payment(
                    ::idempotent_runtime::__private::extracted::<web::Json<NewPayment> >()(__idempotent_arg0),
                    ::idempotent_runtime::__private::extracted::<web::Data<Pool> >()(__idempotent_arg1)
                )
            ).await
        }

    };
    assert_eq!(output, expected.to_string());
}

#[test]
fn defaults_emit_no_builder_calls() {
    let output = expand(
        quote!(),
        quote!(
            async fn f() -> HttpResponse {
                todo!()
            }
        ),
    );
    assert!(output.contains("& const { :: idempotent_runtime :: __private :: RouteOptions :: new () }"), "{output}");
    assert!(output.contains("__private :: handle"), "{output}");
    assert!(output.contains("async fn f () -> HttpResponse { todo ! () }"), "{output}");
}

/// The generated function, the first of the items the attribute emits.
fn generated_fn(output: TokenStream) -> syn::ItemFn {
    let syn::File { mut items, .. } = syn::parse2(output).expect("valid items");
    let syn::Item::Fn(generated) = items.remove(0) else { panic!("an fn first") };
    generated
}

#[test]
fn one_function_and_nothing_beside_it() {
    let output = idempotent(
        quote!(),
        quote!(
            pub async fn f() {}
        ),
    );
    let syn::File { items, .. } = syn::parse2(output).expect("valid items");
    assert_eq!(items.len(), 1, "nothing beside the handler: an `impl` block takes only associated items");
    let syn::Item::Fn(outer) = &items[0] else {
        panic!("an fn");
    };
    assert_eq!(outer.sig.ident, "f");
    assert!(outer.sig.asyncness.is_none(), "a plain fn returning the runtime's future");
    assert!(matches!(outer.sig.output, syn::ReturnType::Type(_, ref ty) if matches!(**ty, syn::Type::ImplTrait(_))));
    assert!(matches!(outer.vis, syn::Visibility::Public(_)));
    assert_eq!(outer.sig.inputs.len(), 2);
    let syn::Stmt::Item(syn::Item::Fn(inner)) = &outer.block.stmts[0] else {
        panic!("the user's fn comes first");
    };
    assert_eq!(inner.sig.ident, "f");
    assert!(matches!(inner.vis, syn::Visibility::Inherited), "no `pub` on a nested fn");
}

#[test]
fn an_attribute_macro_or_must_use_keeps_an_async_fn() {
    let outer = |item: TokenStream| -> syn::ItemFn { generated_fn(idempotent(quote!(), item)) };
    for item in [
        quote!(
            #[tracing::instrument]
            async fn f() {}
        ),
        quote!(
            #[post("/f")]
            async fn f() {}
        ),
        quote!(
            #[must_use]
            async fn f() -> HttpResponse {
                todo!()
            }
        ),
    ] {
        let outer = outer(item);
        assert!(outer.sig.asyncness.is_some(), "{}", outer.to_token_stream());
    }
    let inert = quote! {
        /// Docs.
        #[allow(clippy::unused_async)]
        #[cfg(test)]
        #[deprecated]
        #[inline]
        async fn f() {}
    };
    assert!(outer(inert).sig.asyncness.is_none(), "docs, lint levels, cfg, deprecated, inline leave it a plain fn");
}

#[test]
fn options_are_emitted_as_written() {
    let output = expand(
        quote!(scope = "header:X-Tenant-Id", key = "header:X-Request-Key"),
        quote!(
            async fn f() {}
        ),
    );
    assert!(output.contains(r#"ScopeSpec :: Header ("x-tenant-id")"#), "{output}");
    assert!(output.contains(r#"KeySpec :: HeaderNamed ("x-request-key")"#), "{output}");

    let output = expand(
        quote!(scope = crate::auth::tenant_of, key = "query:Idem"),
        quote!(
            async fn f() {}
        ),
    );
    assert!(output.contains("ScopeSpec :: Function (crate :: auth :: tenant_of)"), "{output}");
    assert!(output.contains(r#"KeySpec :: Query ("Idem")"#), "{output}");

    let output = expand(
        quote!(scope = "global", key = "form:k"),
        quote!(
            async fn f() {}
        ),
    );
    assert!(output.contains("ScopeSpec :: Global"), "{output}");
    assert!(output.contains(r#"KeySpec :: Form ("k")"#), "{output}");

    let output = expand(
        quote!(ttl = "1h30m", max_response_body = "64KB"),
        quote!(
            async fn f() {}
        ),
    );
    assert!(output.contains("Duration :: from_secs (5400)"), "{output}");
    assert!(output.contains(". max_response_body (64000usize)"), "{output}");
}

#[test]
fn renamed_runtime_crate() {
    let output = expand(
        quote!(crate = "my_app::rt", ttl = "1s"),
        quote!(
            async fn f() {}
        ),
    );
    assert!(!output.contains("idempotent_runtime"), "{output}");
    assert!(output.contains("my_app :: rt :: __private :: handle"), "{output}");
    assert!(output.contains("my_app :: rt :: __private :: Duration"), "{output}");
    assert!(output.contains("__idempotent_request : my_app :: rt :: __private :: HttpRequest"), "{output}");
}

#[test]
fn attributes_are_split_between_the_two_functions() {
    let output = idempotent(
        quote!(),
        quote! {
            /// docs
            #[post("/")]
            #[allow(clippy::too_many_arguments)]
            #[cfg(feature = "x")]
            #[expect(dead_code)]
            #[cfg_attr(test, deny(unused))]
            #[cfg_attr(feature = "y", get("/y"))]
            #[tracing::instrument]
            async fn f() {
                #![allow(unused_variables)]
                let x = 1;
            }
        },
    );
    let syn::ItemFn { attrs, block, .. } = generated_fn(output);
    let outer: Vec<String> = attrs.iter().map(|a| quote!(#a).to_string()).collect();
    assert_eq!(outer.len(), 8, "every attribute stays on the outer fn, in order: {outer:?}");
    assert!(outer[0].contains("doc"));
    assert!(outer[1].contains("post"));

    let syn::Stmt::Item(syn::Item::Fn(inner)) = &block.stmts[0] else {
        panic!("the user's fn comes first");
    };
    let inner: Vec<String> = inner.attrs.iter().map(|a| quote!(#a).to_string()).collect();
    assert_eq!(
        inner,
        [
            "# [allow (clippy :: too_many_arguments)]",
            "# [cfg (feature = \"x\")]",
            "# [cfg_attr (test , deny (unused))]",
            "# ! [allow (unused_variables)]",
        ],
        "lint and cfg attributes, and the body's inner attributes"
    );
}

#[test]
fn the_body_is_not_parsed() {
    // A half-typed body still expands: rustc reports the body's own syntax error, once.
    let output = expand(quote!(), quote!(async fn f() { let x = ; }));
    assert!(output.contains("__private :: handle"), "{output}");
    assert!(output.contains("{ let x = ; }"), "{output}");
}
