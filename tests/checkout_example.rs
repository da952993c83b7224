//! The payments example's checkout form over HTTP, as a browser speaks it: a form post keyed by a hidden field,
//! `303 See Other` to the receipt, the library's answers as pages, and CORS for pages of another origin. The
//! real-browser suite (`tests/checkout_browser.rs`) drives the same pages in Chromium.

mod support;

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use support::example_process::ExampleProcess;

/// An answer, with its body as text.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A client that, like a test of the server, sees redirects instead of following them.
fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).disable_redirects().finish()
}

async fn read(
    mut response: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Page {
    let body = response.body().limit(1 << 20).await.expect("body");
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        text: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    }
}

async fn get(base: &str, path: &str, cookie: Option<&str>) -> Page {
    let mut request = client().get(format!("{base}{path}"));
    if let Some(cookie) = cookie {
        request = request.insert_header(("cookie", cookie));
    }
    read(request.send().await.expect("the example answers")).await
}

async fn post_form(base: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Page {
    let mut request = client().post(format!("{base}/checkout"));
    if let Some(cookie) = cookie {
        request = request.insert_header(("cookie", cookie));
    }
    read(request.send_form(&form).await.expect("the example answers")).await
}

/// The value of the hidden key field of a checkout page.
fn form_key(page: &str) -> String {
    let after = page.split(r#"name="idempotency_key" value=""#).nth(1).expect("the page has a key field");
    after.split('"').next().expect("the value ends").to_owned()
}

/// Polls the status lookup until `key` is in progress for `user` (at most 10 s); whether it was.
async fn in_progress(base: &str, user: &str, key: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let status = client()
            .get(format!("{base}/idempotency/{key}"))
            .insert_header(("authorization", format!("Bearer {user}")))
            .send()
            .await
            .expect("the example answers")
            .json::<serde_json::Value>()
            .await
            .expect("a status document");
        if status["state"] == "in_progress" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// The number of payments the API lists for `user`.
async fn payments_of(base: &str, user: &str) -> usize {
    let mut response = client()
        .get(format!("{base}/payments"))
        .insert_header(("authorization", format!("Bearer {user}")))
        .send()
        .await
        .expect("the example answers");
    let list: serde_json::Value = response.json().await.expect("a JSON list");
    list.as_array().expect("a list").len()
}

#[actix_web::test]
async fn the_checkout_form_charges_once_and_answers_in_pages() {
    let allowed = "https://shop.example";
    let example = ExampleProcess::start_with_env("payments", None, &[("CORS_ALLOWED_ORIGINS", allowed)]);
    let base = example.base.clone();

    // The page: a fresh key per load, and a session for this browser.
    let page = get(&base, "/checkout", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("cache-control"), Some("no-store"), "a cached page would pay with a used key");
    let cookie = page.header("set-cookie").expect("a session cookie").split(';').next().unwrap().to_owned();
    let user = cookie.strip_prefix("session=").expect("the session cookie").to_owned();
    let key = form_key(&page.text);
    assert_ne!(key, form_key(&get(&base, "/checkout", Some(&cookie)).await.text), "each load has its own key");

    // Two submissions of one page while the payment is slow: the second, sent while the status lookup says the
    // first is in progress, waits for it; one charge, the same redirect for both.
    let form = [("idempotency_key", key.as_str()), ("amount", "1250"), ("delay_ms", "500")];
    let (first, second) = tokio::join!(post_form(&base, Some(&cookie), &form), async {
        assert!(in_progress(&base, &user, &key).await, "the first submission runs");
        post_form(&base, Some(&cookie), &form).await
    });
    for answer in [&first, &second] {
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    }
    let receipt = first.header("location").expect("a Location").to_owned();
    assert!(receipt.starts_with("/receipts/"), "{receipt}");
    assert_eq!(second.header("location"), Some(receipt.as_str()), "the duplicate waited and got the same receipt");
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(payments_of(&base, &user).await, 1);

    // The receipt page, for this browser only.
    let shown = get(&base, &receipt, Some(&cookie)).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.text.contains(r#"<span id="paid-amount">1250</span>"#), "{}", shown.text);
    assert_eq!(get(&base, &receipt, Some("session=someone-else")).await.status, StatusCode::NOT_FOUND);

    // The same page sent with another amount: a readable page, not JSON, and no charge.
    let reused = post_form(&base, Some(&cookie), &[("idempotency_key", key.as_str()), ("amount", "9999")]).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(reused.text.contains("already submitted"), "{}", reused.text);
    assert_eq!(payments_of(&base, &user).await, 1);

    // A form without its session: the library's 401, as a page.
    let fresh = form_key(&get(&base, "/checkout", None).await.text);
    let unauthenticated = post_form(&base, None, &[("idempotency_key", fresh.as_str()), ("amount", "5")]).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unauthenticated.header("content-type"), Some("text/html; charset=utf-8"));

    // A bad amount is the handler's own page, stored and replayed like any answer.
    let bad = [("idempotency_key", fresh.as_str()), ("amount", "ten")];
    let invalid = post_form(&base, Some(&cookie), &bad).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.text.contains("Check the amount"), "{}", invalid.text);
    assert_eq!(post_form(&base, Some(&cookie), &bad).await.header("idempotent-replayed"), Some("true"));

    // The JSON API keeps the library's problem documents.
    let mut missing = client()
        .post(format!("{base}/payments"))
        .insert_header(("authorization", format!("Bearer {user}")))
        .send_json(&serde_json::json!({"amount": 1, "currency": "EUR"}))
        .await
        .expect("the example answers");
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(missing.headers().get("content-type").unwrap(), "application/problem+json");
    let problem: serde_json::Value = missing.json().await.expect("a problem document");
    assert!(problem["type"].as_str().unwrap().ends_with("/key-missing"), "{problem}");
}

#[actix_web::test]
async fn cors_lets_allowed_origins_send_keys_and_read_the_replay_header() {
    let allowed = "https://shop.example";
    let example = ExampleProcess::start_with_env("payments", None, &[("CORS_ALLOWED_ORIGINS", allowed)]);
    let preflight = |origin: &'static str| {
        client()
            .request(actix_web::http::Method::OPTIONS, format!("{}/payments", example.base))
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header(("access-control-request-headers", "authorization, content-type, idempotency-key"))
            .send()
    };
    let allowed_preflight = preflight(allowed).await.expect("the example answers");
    assert!(allowed_preflight.status().is_success(), "{}", allowed_preflight.status());
    let allowed_headers = allowed_preflight.headers().get("access-control-allow-headers").unwrap().to_str().unwrap();
    assert!(allowed_headers.contains("idempotency-key"), "{allowed_headers}");
    assert_eq!(allowed_preflight.headers().get("access-control-allow-origin").unwrap(), allowed);
    let other = preflight("https://evil.example").await.expect("the example answers");
    assert!(other.headers().get("access-control-allow-origin").is_none(), "other origins are not allowed");

    // The answer and its replay expose what a retrying client reads.
    let pay = || {
        client()
            .post(format!("{}/payments", example.base))
            .insert_header(("origin", allowed))
            .insert_header(("authorization", "Bearer cors-user"))
            .insert_header(("idempotency-key", "cors-key-1"))
            .send_json(&serde_json::json!({"amount": 300, "currency": "EUR"}))
    };
    let first = pay().await.expect("the example answers");
    assert_eq!(first.status(), StatusCode::CREATED);
    let replay = pay().await.expect("the example answers");
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    let exposed = replay.headers().get("access-control-expose-headers").unwrap().to_str().unwrap();
    for header in ["idempotent-replayed", "retry-after"] {
        assert!(exposed.contains(header), "{header} is exposed: {exposed}");
    }
}
