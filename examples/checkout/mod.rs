//! The payments example's checkout for people: an HTML form that cannot charge twice, whatever the browser does.
//!
//! - `GET /checkout` serves the form, with a fresh key in a hidden `idempotency_key` field on every page load, and
//!   gives the browser a demo session (a `session` cookie whose value is the user id, as the bearer token is for
//!   the JSON API).
//! - `POST /checkout` is keyed by that field and answers `303 See Other` to `/receipts/{id}` (Post/Redirect/Get).
//!   A double-click, a second click while the first still runs, or the same form posted again waits for the first
//!   submission (`on_conflict = "wait"`, up to 10 s) and gets its redirect replayed: one charge, one receipt. A
//!   payment slower than that shows a "still being processed" page, whose reload posts the form again and lands
//!   on the receipt.
//! - The library's own answers on this route (the key reused for another amount, say) are pages, not JSON
//!   ([`render_problem`]); the JSON API keeps its problem documents.
//! - The page also shows a client that sends its own `Idempotency-Key` with `fetch`, from this origin or another
//!   one that CORS allows (see `cors` in `payments.rs`).

use std::fmt::Write as _;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use idempotent_runtime::{ProblemDetails, ProblemKind, idempotent};
use serde::Deserialize;

use super::Payments;

/// The path of the form route, whose library answers are rendered as pages.
pub(crate) const CHECKOUT_PATH: &str = "/checkout";

/// The demo session cookie: its value is the user id.
const SESSION_COOKIE: &str = "session";

/// The user of a browser request: the `session` cookie that `GET /checkout` set (1 to 64 visible ASCII characters).
pub(crate) fn session_user(request: &HttpRequest) -> Option<String> {
    let cookies = request.headers().get(COOKIE)?.to_str().ok()?;
    let value = cookies.split(';').find_map(|cookie| cookie.trim().strip_prefix("session="))?;
    let valid =
        (1..=64).contains(&value.len()) && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    valid.then(|| value.to_owned())
}

/// Optional query of the form page: `delay_ms` plays a slow payment provider (the form carries it to the POST).
#[derive(Deserialize)]
struct PageQuery {
    delay_ms: Option<u64>,
}

#[get("/checkout")]
async fn checkout_page(request: HttpRequest, query: web::Query<PageQuery>) -> HttpResponse {
    let (user, new_session) = match session_user(&request) {
        Some(user) => (user, false),
        None => (format!("browser-{}", uuid::Uuid::new_v4().simple()), true),
    };
    // A fresh key per page load: this page's submissions are one payment; a new page load is a new intent.
    let key = uuid::Uuid::new_v4();
    let delay = query
        .delay_ms
        .filter(|delay| *delay <= 60_000)
        .map_or_else(String::new, |delay| format!(r#"<input type="hidden" name="delay_ms" value="{delay}">"#));
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Checkout</title></head>
<body data-user="{user}">
<h1>Checkout</h1>
<form method="post" action="{CHECKOUT_PATH}">
  <input type="hidden" name="idempotency_key" value="{key}" autocomplete="off">{delay}
  <label>Amount in cents <input id="amount" name="amount" type="number" min="1" value="1000" required></label>
  <button id="pay" type="submit">Pay</button>
</form>
<h2>Or from a script</h2>
<p>A client that sends its own key: the same payment with <code>fetch</code>, sent twice with one key.</p>
<button id="pay-fetch" type="button">Pay with fetch</button>
<pre id="fetch-result"></pre>
<script>
// Sends one payment to `base` (this origin, or another one that the server's CORS settings allow) and retries it
// with the same key, as a client does after a timeout: the retry is the first answer, replayed.
async function payWithFetch(base, user, amount) {{
  const key = crypto.randomUUID();
  const send = () => fetch(base + "/payments", {{
    method: "POST",
    headers: {{"Idempotency-Key": key, "Authorization": "Bearer " + user, "Content-Type": "application/json"}},
    body: JSON.stringify({{amount: amount, currency: "EUR"}}),
  }});
  const first = await send();
  const retry = await send();
  return {{
    key: key,
    first: first.status,
    retry: retry.status,
    replayed: retry.headers.get("Idempotent-Replayed"),
    payment: await retry.json(),
  }};
}}
document.getElementById("pay-fetch").addEventListener("click", async () => {{
  const amount = Number(document.getElementById("amount").value);
  const result = await payWithFetch("", document.body.dataset.user, amount);
  document.getElementById("fetch-result").textContent = JSON.stringify(result, null, 2);
}});
</script>
</body>
</html>
"#
    );
    let mut page = HttpResponse::Ok();
    // The key must not come back from a cache: a page shown again from one would pay with a used key.
    page.insert_header((CACHE_CONTROL, "no-store")).content_type("text/html; charset=utf-8");
    if new_session {
        page.insert_header((SET_COOKIE, format!("{SESSION_COOKIE}={user}; Path=/; HttpOnly; SameSite=Lax")));
    }
    page.body(body)
}

/// The form's fields besides the key (read by the library); text, so that a bad value gets this route's page.
#[derive(Deserialize)]
struct CheckoutForm {
    amount: Option<String>,
    delay_ms: Option<String>,
}

#[post("/checkout")]
#[idempotent(key = "form:idempotency_key", scope = "user", on_conflict = "wait", wait = "10s", ttl = "24h")]
async fn checkout(request: HttpRequest, form: web::Form<CheckoutForm>, payments: web::Data<Payments>) -> HttpResponse {
    let Some(user) = session_user(&request) else {
        return page(StatusCode::UNAUTHORIZED, "Your session has ended", "Open the checkout again to pay.");
    };
    let Some(amount) = form.amount.as_deref().and_then(|amount| amount.trim().parse::<i64>().ok()).filter(|a| *a >= 1)
    else {
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Check the amount",
            "The amount must be a whole number of cents, at least 1.",
        );
    };
    let delay = form.delay_ms.as_deref().and_then(|delay| delay.parse::<u64>().ok()).unwrap_or(0).min(60_000);
    if delay > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
    }
    match payments.record(&user, amount, "EUR").await {
        // See Other: the browser follows with a GET, so a reload shows the receipt and posts nothing.
        Ok(payment) => HttpResponse::SeeOther()
            .insert_header((LOCATION, format!("/receipts/{}", payment.id)))
            .insert_header((CACHE_CONTROL, "no-store"))
            .finish(),
        Err(error) => {
            tracing::error!(%error, "could not record a checkout payment");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Payments are unavailable",
                "Nothing was charged. Try again in a minute.",
            )
        }
    }
}

#[get("/receipts/{id}")]
async fn receipt(request: HttpRequest, id: web::Path<String>, payments: web::Data<Payments>) -> HttpResponse {
    let Some(user) = session_user(&request) else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Your session has ended",
            "Receipts are shown to the browser that paid.",
        );
    };
    let Ok(id) = id.parse::<i64>() else {
        return page(StatusCode::NOT_FOUND, "No such receipt", "Receipts are numbered.");
    };
    match payments.one_of_user(&user, id).await {
        Ok(found) => match found {
            Some(payment) => {
                let mut body = String::from(r#"<!doctype html><html lang="en"><head><meta charset="utf-8">"#);
                let _ = write!(
                    body,
                    r#"<title>Receipt</title></head><body><h1>Payment received</h1>
<p id="receipt">Payment <span id="payment-id">{}</span>: <span id="paid-amount">{}</span> cents ({})</p>
<p><a href="{CHECKOUT_PATH}">Pay again</a></p></body></html>"#,
                    payment.id, payment.amount, payment.currency
                );
                HttpResponse::Ok()
                    .insert_header((CACHE_CONTROL, "no-store"))
                    .content_type("text/html; charset=utf-8")
                    .body(body)
            }
            None => page(StatusCode::NOT_FOUND, "No such receipt", "This browser made no payment with that number."),
        },
        Err(error) => {
            tracing::error!(%error, "could not read payments for a receipt");
            page(StatusCode::SERVICE_UNAVAILABLE, "Receipts are unavailable", "Try again in a minute.")
        }
    }
}

/// The library's answers in this app: a page on the checkout form route, the library's problem document on every
/// other route (the JSON API). Chosen by route, not by `Accept`, so one route always answers in one format.
pub(crate) fn render_problem(problem: &ProblemDetails<'_>) -> HttpResponse {
    if problem.request().path() != CHECKOUT_PATH {
        return problem.problem_json();
    }
    let (title, advice) = match problem.kind() {
        ProblemKind::KeyReused => (
            "This checkout was already submitted",
            "This page was paid with other details. Nothing more was charged: open a new checkout to make another payment.",
        ),
        // Only when the payment outlasts the route's wait: reloading this page posts the form again, which waits
        // once more and then lands on the receipt.
        ProblemKind::InFlight => (
            "Your payment is still being processed",
            "Reload this page in a few seconds to see your receipt: you will not be charged twice.",
        ),
        ProblemKind::StoreUnavailable => ("Payments are unavailable", "Nothing was charged. Try again in a minute."),
        ProblemKind::Unauthenticated => ("Your session has ended", "Open the checkout again to pay."),
        _ => ("This form could not be sent", "Open the checkout again to pay."),
    };
    page(problem.status(), title, advice)
}

/// A small HTML page with a heading (`#problem`), a sentence and a link back to the form.
fn page(status: StatusCode, title: &str, advice: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1 id="problem">{title}</h1><p>{advice}</p><p><a href="{CHECKOUT_PATH}">Open the checkout</a></p></body>
</html>
"#
        ))
}

/// The checkout's routes.
pub(crate) fn routes(config: &mut web::ServiceConfig) {
    config.service(checkout_page).service(checkout).service(receipt);
}
