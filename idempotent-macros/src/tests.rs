//! Tests of the whole macro at the `proc_macro2` level: the shape of the expansion, the errors it reports, and
//! that no input, however broken, makes it panic (a panic shows as "custom attribute panicked" on the whole
//! attribute, which helps nobody).

use proc_macro2::{TokenStream, TokenTree};
use quote::quote;

use crate::expand::idempotent;

/// The expansion as a string, for shape assertions.
fn expand(attr: TokenStream, item: TokenStream) -> String {
    idempotent(attr, item).to_string()
}

/// The messages of every `compile_error!` in the output.
fn compile_errors(output: &TokenStream) -> Vec<String> {
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
fn errors(attr: TokenStream, item: TokenStream) -> Vec<String> {
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

            static __IDEMPOTENT_ROUTE: ::idempotent_runtime::__private::RouteOptions =
                ::idempotent_runtime::__private::RouteOptions::new()
                    .ttl(::idempotent_runtime::__private::Duration::from_secs(86400))
                    .lease(::idempotent_runtime::__private::Duration::from_secs(5))
                    .scope(::idempotent_runtime::__private::ScopeSpec::User)
                    .key(::idempotent_runtime::__private::KeySpec::Header)
                    .required(true)
                    .store_server_errors(false)
                    .max_request_body(1048576usize)
                    .max_response_body(1048576usize);

            ::idempotent_runtime::__private::handle(
                &__IDEMPOTENT_ROUTE,
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
    assert!(output.contains(":: idempotent_runtime :: __private :: RouteOptions :: new () ;"), "{output}");
    assert!(output.contains("__private :: handle"), "{output}");
    assert!(output.contains("async fn f () -> HttpResponse { todo ! () }"), "{output}");
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
    assert_eq!(items.len(), 1);
    let syn::Item::Fn(outer) = &items[0] else {
        panic!("an fn");
    };
    assert_eq!(outer.sig.ident, "f");
    assert!(outer.sig.asyncness.is_some());
    assert!(matches!(outer.vis, syn::Visibility::Public(_)));
    assert_eq!(outer.sig.inputs.len(), 2);
    let syn::Stmt::Item(syn::Item::Fn(inner)) = &outer.block.stmts[0] else {
        panic!("the user's fn comes first");
    };
    assert_eq!(inner.sig.ident, "f");
    assert!(matches!(inner.vis, syn::Visibility::Inherited), "no `pub` on a nested fn");
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
    let syn::ItemFn { attrs, block, .. } = syn::parse2(output).expect("one fn");
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

#[test]
fn errors_keep_the_original_item() {
    let item = quote! {
        #[post("/")]
        async fn f() {}
    };
    assert_eq!(
        errors(quote!(ttl = "24"), item.clone()),
        [
            r#"invalid duration: `24` has no unit (s, m, h or d); expected a duration like "30s", "15m", "24h", "7d" or "1h30m""#
        ]
    );
    assert_eq!(
        errors(quote!(bogus = 1), item),
        ["unknown option `bogus`; expected one of: ttl, scope, key, required, lease, store_server_errors, \
          max_request_body, max_response_body, on_conflict, wait, store_responses, fingerprint_headers, fingerprint, \
          namespace, fail_open, issued_only, crate"]
    );
}

#[test]
fn argument_and_function_errors_are_reported_together() {
    let messages = errors(
        quote!(ttl = "1m", lease = "1h", ttl = "2m", required = "false"),
        quote!(
            fn f<T>(&self) {}
        ),
    );
    assert_eq!(
        messages,
        [
            "`ttl` specified more than once",
            "remove the quotes: write `required = false`",
            "`lease` (1h) must be shorter than `ttl` (1m): the lease protects a request while it runs, \
             the ttl keeps its response afterwards",
            "#[idempotent] requires an async fn: write `async fn f(...)`",
            "#[idempotent] handlers cannot have generic parameters (type, const or lifetime): \
             actix-web needs one concrete function per route",
            "#[idempotent] cannot be used on a method: a handler is a free `async fn` without `self`",
        ]
    );
}

#[test]
fn not_a_function() {
    assert_eq!(
        errors(
            quote!(),
            quote!(
                pub struct Payment;
            )
        ),
        ["#[idempotent] can only be applied to an async fn handler"]
    );
    assert_eq!(
        errors(quote!(ttl = "x"), quote!(impl Foo {})),
        [
            r#"invalid duration: `x` has no number before it; expected a duration like "30s", "15m", "24h", "7d" or "1h30m""#,
            "#[idempotent] can only be applied to an async fn handler",
        ]
    );
}

/// A small deterministic generator, so the garbage test needs no dependency and fails reproducibly.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap_or(0) % n
    }
}

#[test]
fn garbage_never_panics() {
    const FRAGMENTS: &[&str] = &[
        "ttl",
        "lease",
        "scope",
        "key",
        "required",
        "store_server_errors",
        "max_request_body",
        "max_response_body",
        "crate",
        "on_conflict",
        "=",
        "==",
        ",",
        ";",
        ":",
        "::",
        "\"24h\"",
        "\"0s\"",
        "\"\"",
        "\"header:\"",
        "\"header:X-A\"",
        "\"query:a&b\"",
        "\"1MiB\"",
        "\"1 mib\"",
        "\"🕐\"",
        "\"99999999999999999999d\"",
        "0",
        "18446744073709551616",
        "1.5",
        "-1",
        "true",
        "\"true\"",
        "'a",
        "b'x'",
        "r#ttl",
        "async",
        "fn",
        "pub",
        "pub(crate)",
        "const",
        "unsafe",
        "extern \"C\"",
        "f",
        "self",
        "&self",
        "mut",
        "_",
        "<T>",
        "<'a>",
        "where",
        "T: Send",
        "...",
        "->",
        "impl Responder",
        "(",
        ")",
        "(a: u8)",
        "(web::Json(x): web::Json<T>)",
        "{}",
        "{ let x = ; }",
        "[]",
        "#[post(\"/\")]",
        "#[doc = \"x\"]",
        "#[cfg_attr()]",
        "#[cfg_attr(x, allow(y))]",
        "#[idempotent]",
        "#![inner]",
        "struct",
        "S",
        "dyn",
        "?",
        "|x| x",
        "crate::f",
    ];
    let mut rng = Lcg(0x1de0_9074);
    let mut attempts = 0;
    let mut lexed = 0;
    while attempts < 20_000 {
        attempts += 1;
        let length = rng.below(12);
        let text: Vec<&str> = (0..length).map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())]).collect();
        let Ok(tokens) = text.join(" ").parse::<TokenStream>() else {
            continue;
        };
        lexed += 1;
        // As the arguments, with a valid handler; as the handler, with valid arguments; and as both.
        let _ = idempotent(
            tokens.clone(),
            quote!(
                async fn f() {}
            ),
        );
        let _ = idempotent(quote!(ttl = "1h"), tokens.clone());
        let output = idempotent(tokens.clone(), tokens.clone());
        // Whatever happened, the input is still there: nothing is lost.
        assert!(output.to_string().starts_with(&tokens.to_string()) || compile_errors(&output).is_empty());
    }
    assert!(lexed > 10_000, "the generator mostly produces lexable input ({lexed})");
}

#[test]
fn every_prefix_of_a_real_attribute_and_handler() {
    // What an editor sends while the user types.
    let attr = r#"ttl = "1h30m", lease = "30s", scope = crate::auth::tenant_of, key = "header:X-Key", required = false, crate = "rt""#;
    let item =
        r#"#[post("/p")] pub async fn create(web::Json(b): web::Json<B>, d: web::Data<P>) -> impl Responder { b }"#;
    for text in [attr, item] {
        for end in (0..=text.len()).filter(|&end| text.is_char_boundary(end)) {
            if let Ok(tokens) = text[..end].parse::<TokenStream>() {
                let _ = idempotent(tokens.clone(), item.parse().expect("lexes"));
                let _ = idempotent(attr.parse().expect("lexes"), tokens);
            }
        }
    }
}

#[test]
fn wait_mode_needs_both_options_and_only_with_wait() {
    let item = quote! { async fn create() -> HttpResponse { todo!() } };
    let expanded = crate::expand::idempotent(quote!(on_conflict = "wait", wait = "5s"), item.clone()).to_string();
    assert!(expanded.contains(". wait (") && expanded.contains("from_secs (5)"), "{expanded}");
    assert!(errors(quote!(on_conflict = "wait"), item.clone())[0].contains(r#"add `wait = "5s"`"#));
    assert!(errors(quote!(wait = "5s"), item.clone())[0].contains(r#"only applies to `on_conflict = "wait"`"#));
    assert!(errors(quote!(on_conflict = "reject", wait = "5s"), item.clone())[0].contains("has no effect"));
    assert!(!crate::expand::idempotent(quote!(on_conflict = "reject"), item).to_string().contains(". wait ("));
}

#[test]
fn a_tx_parameter_makes_the_route_transactional() {
    let one = quote! { async fn create(tx: Tx, body: web::Json<Order>) -> HttpResponse { todo!() } };
    assert!(crate::expand::idempotent(TokenStream::new(), one).to_string().contains(". transactional ()"));
    let qualified = quote! { async fn create(tx: idempotent_runtime::Tx) -> HttpResponse { todo!() } };
    assert!(crate::expand::idempotent(TokenStream::new(), qualified).to_string().contains(". transactional ()"));
    let none = quote! { async fn create(body: web::Json<Tx>) -> HttpResponse { todo!() } };
    assert!(!crate::expand::idempotent(TokenStream::new(), none).to_string().contains("transactional"));
    let two = quote! { async fn create(a: Tx, b: Tx) -> HttpResponse { todo!() } };
    let reported = errors(TokenStream::new(), two);
    assert_eq!(reported.len(), 1);
    assert!(reported[0].starts_with("a handler takes at most one `Tx`"), "{reported:?}");
}

#[test]
fn durations_are_capped_and_derived_keys_need_a_real_scope() {
    let item = quote! { async fn create() -> HttpResponse { todo!() } };
    assert!(errors(quote!(ttl = "3651d"), item.clone())[0].contains("longer than 10 years"));
    assert!(errors(quote!(on_conflict = "wait", wait = "99999d"), item.clone())[0].contains("longer than 10 years"));
    assert!(errors(quote!(key = "derived", scope = "global"), item.clone())[0].contains("share one response"));
    assert!(
        crate::expand::idempotent(quote!(key = "derived", scope = "header:X-Tenant"), item)
            .to_string()
            .contains("Derived")
    );
}

#[test]
fn issued_only_is_emitted_and_needs_keys_from_the_client() {
    let item = quote! { async fn create() -> HttpResponse { todo!() } };
    assert!(
        crate::expand::idempotent(quote!(issued_only = true), item.clone())
            .to_string()
            .contains(". issued_only (true)")
    );
    assert!(errors(quote!(issued_only = "true"), item.clone())[0].contains("remove the quotes"));
    assert!(
        errors(quote!(issued_only = true, key = "derived"), item.clone())[0].contains("needs keys from the client")
    );
    assert!(
        errors(quote!(issued_only = true, required = false), item.clone())[0].contains("remove `required = false`")
    );
    assert!(errors(quote!(issued = true), item.clone())[0].contains("did you mean `issued_only = true`"));
    let allowed = crate::expand::idempotent(quote!(issued_only = false, key = "derived"), item).to_string();
    assert!(!allowed.contains("compile_error"), "{allowed}");
}
