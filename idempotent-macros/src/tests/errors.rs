//! What the macro reports for wrong input, and that no input, however broken, makes it panic.

use proc_macro2::TokenStream;
use quote::quote;

use super::{compile_errors, errors};
use crate::expand::idempotent;

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
    let entry = |item: TokenStream| crate::expand::idempotent(TokenStream::new(), item).to_string();
    let one = quote! { async fn create(tx: Tx, body: web::Json<Order>) -> HttpResponse { todo!() } };
    assert!(entry(one).contains("__private :: handle_transactional ("));
    let qualified = quote! { async fn create(tx: idempotent_runtime::Tx) -> HttpResponse { todo!() } };
    assert!(entry(qualified).contains("__private :: handle_transactional ("));
    let none = quote! { async fn create(body: web::Json<Tx>) -> HttpResponse { todo!() } };
    let plain = entry(none);
    assert!(plain.contains("__private :: handle (") && !plain.contains("transactional"), "{plain}");
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
