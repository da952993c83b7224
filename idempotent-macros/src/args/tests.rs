use super::{Args, Key, OnConflict, Opt, Scope, parse};
use crate::errors::Errors;
use quote::quote;

fn parse_ok(tokens: proc_macro2::TokenStream) -> Args {
    let mut errors = Errors::default();
    let args = parse(tokens, &mut errors);
    errors.finish(Ok(())).expect("no error");
    args
}

fn parse_err(tokens: proc_macro2::TokenStream) -> Vec<String> {
    let mut errors = Errors::default();
    let _ = parse(tokens, &mut errors);
    errors.finish(Ok(())).expect_err("an error").into_iter().map(|e| e.to_string()).collect()
}

#[test]
fn empty_is_all_defaults() {
    let args = parse_ok(quote!());
    assert!(args.ttl.is_none() && args.scope.is_none() && args.krate.is_none());
}

#[test]
fn every_option() {
    let args = parse_ok(quote!(
        ttl = "1h30m",
        scope = "header:X-Tenant-Id",
        key = "query:idem",
        required = false,
        lease = "5s",
        store_server_errors = true,
        max_request_body = "1MiB",
        max_response_body = 4096,
        crate = "::my_runtime",
    ));
    assert_eq!(args.ttl.map(|s| s.value), Some(5_400));
    assert!(matches!(args.scope.map(|s| s.value), Some(Scope::Header(h)) if h == "x-tenant-id"));
    assert_eq!(args.key.map(|s| s.value), Some(Key::Query("idem".into())));
    assert_eq!(args.required.map(|s| s.value), Some(false));
    assert_eq!(args.lease.map(|s| s.value), Some(5));
    assert_eq!(args.store_server_errors.map(|s| s.value), Some(true));
    assert_eq!(args.max_request_body.map(|s| s.value), Some(1_048_576));
    assert_eq!(args.max_response_body.map(|s| s.value), Some(4096));
    let krate = args.krate.expect("crate").value;
    assert_eq!(quote!(#krate).to_string(), ":: my_runtime");
}

#[test]
fn every_listed_option_is_accepted() {
    for opt in Opt::ALL {
        let tokens: proc_macro2::TokenStream = opt.example().parse().unwrap();
        parse_ok(tokens);
    }
}

#[test]
fn scope_forms() {
    let scope = |tokens| parse_ok(tokens).scope.expect("scope").value;
    assert!(matches!(scope(quote!(scope = "user")), Scope::User));
    assert!(matches!(scope(quote!(scope = "global")), Scope::Global));
    let Scope::Function(path) = scope(quote!(scope = crate::auth::tenant_of)) else {
        panic!("a path");
    };
    assert_eq!(quote!(#path).to_string(), "crate :: auth :: tenant_of");
}

#[test]
fn key_forms() {
    let key = |tokens| parse_ok(tokens).key.expect("key").value;
    assert_eq!(key(quote!(key = "header")), Key::Header);
    assert_eq!(key(quote!(key = "header:X-Request-Key")), Key::HeaderNamed("x-request-key".into()));
    assert_eq!(key(quote!(key = "form:Idem_Key")), Key::Form("Idem_Key".into()));
}

#[test]
fn crate_keyword_and_raw_identifiers() {
    assert!(parse_ok(quote!(crate = "rt")).krate.is_some());
    assert!(parse_ok(quote!(r#ttl = "1s")).ttl.is_some());
}

#[test]
fn unknown_option() {
    assert_eq!(
        parse_err(quote!(foo = 1)),
        ["unknown option `foo`; expected one of: ttl, scope, key, required, lease, \
          store_server_errors, max_request_body, max_response_body, on_conflict, wait, store_responses, \
          fingerprint_headers, fingerprint, namespace, fail_open, issued_only, crate"]
    );
}

#[test]
fn misspelled_options_get_a_hint() {
    let errors = parse_err(quote!(on_duplicate = "wait", expires = "1h"));
    assert_eq!(errors.len(), 2);
    assert!(errors[0].starts_with("`on_duplicate`: did you mean `on_conflict = \"wait\"`?"), "{errors:?}");
    assert!(errors[1].starts_with("`expires`: did you mean `ttl`?"), "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("expected one of: ttl,")));
}

#[test]
fn on_conflict_and_wait() {
    let args = parse_ok(quote!(on_conflict = "wait", wait = "1m30s"));
    assert_eq!(args.on_conflict.map(|setting| setting.value), Some(OnConflict::Wait));
    assert_eq!(args.wait.map(|setting| setting.value), Some(90));
    assert_eq!(
        parse_ok(quote!(on_conflict = "reject")).on_conflict.map(|setting| setting.value),
        Some(OnConflict::Reject)
    );
    assert!(parse_err(quote!(on_conflict = "block"))[0].starts_with("unknown conflict policy \"block\""));
    assert!(parse_err(quote!(on_conflict = wait))[0].starts_with("expected a string"));
}

#[test]
fn duplicates() {
    assert_eq!(parse_err(quote!(ttl = "1h", ttl = "2h")), ["`ttl` specified more than once"]);
    // Even when the first value was invalid, and for `crate`.
    assert_eq!(parse_err(quote!(crate = "a", crate = "b")), ["`crate` specified more than once"]);
    let errors = parse_err(quote!(ttl = "x", ttl = "2h"));
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[1], "`ttl` specified more than once");
}

#[test]
fn independent_errors_are_all_reported() {
    let errors = parse_err(quote!(ttl = "24", scope = "users", required = "true", bogus = 1));
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[test]
fn syntax_errors() {
    let errors = parse_err(quote!(ttl: "24h"));
    assert_eq!(errors, [r#"expected `=` after `ttl`, as in `ttl = "24h"`"#]);
    let errors = parse_err(quote!("24h"));
    assert!(errors[0].starts_with(r#"expected an option like `ttl = "24h"`"#), "{errors:?}");
    assert_eq!(parse_err(quote!(ttl = "1h" lease = "1s")), ["expected `,` between options"]);
    assert_eq!(parse_err(quote!(ttl = "1h"; lease = "1s")), ["expected `,` between options"]);
}

#[test]
fn missing_values() {
    assert_eq!(parse_err(quote!(required)), ["`required` needs a value, as in `required = true`"]);
    assert_eq!(parse_err(quote!(ttl =, lease = "1s")), [r#"missing value after `=`, as in `ttl = "24h"`"#]);
}

#[test]
fn duration_errors() {
    let errors = parse_err(quote!(ttl = "24x"));
    assert_eq!(
        errors,
        [
            r#"invalid duration: unknown unit `x` (the units are s, m, h and d); expected a duration like "30s", "15m", "24h", "7d" or "1h30m""#
        ]
    );
    let errors = parse_err(quote!(lease = 30));
    assert!(errors[0].starts_with(r#"a duration needs a unit, as in `lease = "30s"`"#));
    let errors = parse_err(quote!(ttl = "0s"));
    assert!(errors[0].contains("longer than zero"));
    let errors = parse_err(quote!(ttl = some::path));
    assert!(errors[0].starts_with("expected a string; expected a duration like"));
}

#[test]
fn bool_errors() {
    assert_eq!(parse_err(quote!(required = "true")), ["remove the quotes: write `required = true`"]);
    assert_eq!(parse_err(quote!(store_server_errors = 1)), ["expected `true` or `false`"]);
}

#[test]
fn scope_errors() {
    let errors = parse_err(quote!(scope = "users"));
    assert!(errors[0].starts_with(r#"unknown scope "users"; expected "user", "global""#));
    let errors = parse_err(quote!(scope = "header:"));
    assert!(errors[0].starts_with("the header name after `header:` is empty"));
    let errors = parse_err(quote!(scope = "header:X Tenant"));
    assert!(errors[0].starts_with("` ` is not allowed in a header name"), "{errors:?}");
    let errors = parse_err(quote!(scope = "header"));
    assert!(errors[0].starts_with("a header scope needs the header name"));
    let errors = parse_err(quote!(scope = 3));
    assert!(errors[0].starts_with(r#"expected "user""#));
    let errors = parse_err(quote!(scope = |r| None));
    assert!(errors[0].starts_with(r#"expected "user""#));
}

#[test]
fn key_errors() {
    let errors = parse_err(quote!(key = "cookie:k"));
    assert!(errors[0].starts_with(r#"unknown key source "cookie:k"; expected "header""#));
    assert!(parse_err(quote!(key = "query:"))[0].starts_with("the field name is empty"));
    assert!(parse_err(quote!(key = "form:a=b"))[0].starts_with("`=` is not allowed"));
    assert!(parse_err(quote!(key = "query:a&b"))[0].starts_with("`&` is not allowed"));
    assert!(parse_err(quote!(key = "header:a:b"))[0].starts_with("`:` is not allowed"));
    assert_eq!(parse_ok(quote!(key = "derived")).key.map(|setting| setting.value), Some(Key::Derived));
    assert!(parse_err(quote!(key = header))[0].starts_with("expected a string"));
}

#[test]
fn size_errors() {
    let errors = parse_err(quote!(max_request_body = "1mib"));
    assert!(errors[0].starts_with("invalid size: unknown unit `mib` (units are case-sensitive"));
    assert!(parse_err(quote!(max_request_body = 0))[0].contains("larger than zero"));
    assert!(parse_err(quote!(max_request_body = "0B"))[0].contains("larger than zero"));
    assert!(parse_err(quote!(max_response_body = 1.5))[0].starts_with("expected a size like"));
    assert!(parse_err(quote!(max_response_body = 10u8))[0].starts_with("a byte count has no suffix"));
    assert!(parse_err(quote!(max_response_body = 99999999999999999999999))[0].starts_with("the size is too large"));
    assert_eq!(parse_ok(quote!(max_request_body = 10usize)).max_request_body.map(|s| s.value), Some(10));
}

#[test]
fn contract_options() {
    let args = parse_ok(quote!(
        store_responses = "success",
        fingerprint_headers = ["X-Account-Id", "accept-language"],
        namespace = "payments.create:v1",
        fail_open = true,
    ));
    assert!(matches!(args.store_responses.map(|s| s.value), Some(super::StoreResponses::Success)));
    assert_eq!(args.fingerprint_headers.map(|s| s.value), Some(vec!["x-account-id".into(), "accept-language".into()]));
    assert_eq!(args.namespace.map(|s| s.value).as_deref(), Some("payments.create:v1"));
    assert_eq!(args.fail_open.map(|s| s.value), Some(true));
    let args = parse_ok(quote!(store_responses = crate::policy::stores, fingerprint = fingerprint_of));
    assert!(matches!(args.store_responses.map(|s| s.value), Some(super::StoreResponses::Function(_))));
    assert!(args.fingerprint.is_some());
}

#[test]
fn contract_option_errors() {
    assert!(parse_err(quote!(store_responses = "everything"))[0].starts_with("unknown store policy \"everything\""));
    assert!(parse_err(quote!(store_responses = true))[0].starts_with("expected \"final\""));
    assert_eq!(
        parse_err(quote!(fingerprint_headers = "X-A")),
        [r#"put the header names in brackets: `fingerprint_headers = ["X-A"]`"#]
    );
    assert!(parse_err(quote!(fingerprint_headers = []))[0].starts_with("the list is empty"));
    assert!(parse_err(quote!(fingerprint_headers = [1]))[0].starts_with("expected a header name in a string"));
    assert!(parse_err(quote!(fingerprint_headers = ["X A"]))[0].starts_with("` ` is not allowed in a header name"));
    assert!(parse_err(quote!(fingerprint_headers = ["X-A", "x-a"]))[0].starts_with("`x-a` is listed twice"));
    assert!(parse_err(quote!(fingerprint_headers = x))[0].starts_with("expected a list of request header names"));
    assert!(parse_err(quote!(fingerprint = "f"))[0].starts_with("name the function without quotes: `fingerprint = f`"));
    assert!(parse_err(quote!(fingerprint = 3))[0].starts_with("expected a path to a `fn(&HttpRequest"));
    assert!(parse_err(quote!(namespace = ""))[0].starts_with("the namespace is empty"));
    assert!(parse_err(quote!(namespace = "/pay"))[0].starts_with("a namespace cannot start with `/`"));
    assert!(parse_err(quote!(namespace = "pay ments"))[0].starts_with("` ` is not allowed in a namespace"));
    assert!(parse_err(quote!(namespace = pay))[0].starts_with("expected a string"));
    assert_eq!(parse_err(quote!(fail_open = "true")), ["remove the quotes: write `fail_open = true`"]);
}

#[test]
fn crate_errors() {
    assert_eq!(parse_err(quote!(crate = my_runtime)), ["put the path in quotes: `crate = \"my_runtime\"`"]);
    assert!(parse_err(quote!(crate = ""))[0].starts_with(r#""" is not a path"#));
    assert!(parse_err(quote!(crate = "a b"))[0].starts_with(r#""a b" is not a path"#));
    assert!(parse_err(quote!(crate = 1))[0].starts_with("expected the runtime crate's path"));
}
