//! The idempotency parts of an app's OpenAPI document (feature `openapi`): each protected operation gets its key
//! parameter, the library's answers and `Idempotent-Replayed`, as its options say; an operation that
//! `#[idempotent]` does not protect gets none of it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post};
use idempotent_runtime::openapi::{IdempotencyDocs, KEY_PATTERN, PROBLEM_SCHEMA};
use idempotent_runtime::{Idempotency, MemoryStore, idempotent};
use serde_json::{Value, json};
use utoipa::OpenApi as _;

#[utoipa::path(post, path = "/payments", responses((status = 201, description = "Paid")))]
#[post("/payments")]
#[idempotent]
async fn create_payment() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[utoipa::path(get, path = "/payments", responses((status = 200, description = "The payments")))]
#[get("/payments")]
async fn list_payments() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[utoipa::path(post, path = "/refunds", responses((status = 202, description = "Accepted")))]
#[post("/refunds")]
#[idempotent(key = "query:request_id", required = false, scope = "global", fail_open = true)]
async fn create_refund() -> HttpResponse {
    HttpResponse::Accepted().finish()
}

#[utoipa::path(post, path = "/transfers", responses((status = 201, description = "Sent")))]
#[post("/transfers")]
#[idempotent(key = "header:X-Request-Key", scope = "header:X-Tenant-Id", issued_only = true)]
async fn create_transfer() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[utoipa::path(post, path = "/votes", responses((status = 201, description = "Counted")))]
#[post("/votes")]
#[idempotent(key = "derived", ttl = "10s")]
async fn cast_vote() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[utoipa::path(post, path = "/checkout", responses((status = 303, description = "To the receipt")))]
#[post("/checkout")]
#[idempotent(key = "form:idempotency_key")]
async fn checkout() -> HttpResponse {
    HttpResponse::SeeOther().finish()
}

/// An operation whose id the app chose: matched through the route's `namespace`.
#[utoipa::path(post, path = "/orders", operation_id = "orders.create", responses((status = 201, description = "Ordered")))]
#[post("/orders")]
#[idempotent(namespace = "orders.create")]
async fn create_order() -> HttpResponse {
    HttpResponse::Created().finish()
}

/// Protected, but not in the document.
#[post("/internal/jobs")]
#[idempotent(scope = "global")]
async fn run_job() -> HttpResponse {
    HttpResponse::Accepted().finish()
}

/// Stores its successes only.
#[utoipa::path(post, path = "/shipments", responses(
    (status = 202, description = "Shipping"),
    (status = 404, description = "No such order"),
))]
#[post("/shipments")]
#[idempotent(store_responses = "success")]
async fn create_shipment() -> HttpResponse {
    HttpResponse::Accepted().finish()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_payment,
    list_payments,
    create_refund,
    create_transfer,
    cast_vote,
    checkout,
    create_order,
    create_shipment
))]
struct Api;

/// The document with the given idempotency documentation, as JSON.
fn document(docs: &IdempotencyDocs) -> Value {
    let mut document = Api::openapi();
    docs.document(&mut document);
    serde_json::to_value(&document).expect("the document serializes")
}

fn operation<'a>(document: &'a Value, path: &str, method: &str) -> &'a Value {
    let operation = &document["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is documented: {document}");
    operation
}

/// The statuses an operation documents.
fn statuses(operation: &Value) -> Vec<&str> {
    operation["responses"].as_object().expect("responses").keys().map(String::as_str).collect()
}

/// The key parameters (in a header or the query) of an operation.
fn key_parameters(operation: &Value) -> Vec<(String, String, bool)> {
    operation["parameters"]
        .as_array()
        .map(|parameters| {
            parameters
                .iter()
                .map(|parameter| {
                    let text = |field: &str| parameter[field].as_str().unwrap_or_default().to_owned();
                    (text("in"), text("name"), parameter["required"].as_bool().unwrap_or(false))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_protected_operation_documents_its_key_the_library_answers_and_replays() {
    let document = document(&IdempotencyDocs::DEFAULT);
    let payments = operation(&document, "/payments", "post");

    assert_eq!(key_parameters(payments), [("header".to_owned(), "Idempotency-Key".to_owned(), true)]);
    let key = &payments["parameters"][0]["schema"];
    assert_eq!(key["pattern"], KEY_PATTERN, "the grammar, length included");

    assert_eq!(statuses(payments), ["201", "400", "401", "409", "413", "422", "503"]);
    for status in ["400", "401", "409", "413", "422", "503"] {
        let content = &payments["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"];
        assert_eq!(content, &json!(format!("#/components/schemas/{PROBLEM_SCHEMA}")), "{status}");
    }
    for status in ["409", "503"] {
        assert!(payments["responses"][status]["headers"]["Retry-After"].is_object(), "{status} has Retry-After");
    }
    assert!(payments["responses"]["409"]["description"].as_str().unwrap().contains("in-flight"));
    assert!(payments["responses"]["422"]["description"].as_str().unwrap().contains("key-reused"));
    let replayed = &payments["responses"]["201"]["headers"]["Idempotent-Replayed"];
    assert_eq!(replayed["schema"]["enum"], json!(["true"]));

    let problem = &document["components"]["schemas"][PROBLEM_SCHEMA];
    assert_eq!(problem["required"], json!(["type", "title", "status", "detail"]));
}

#[test]
fn an_operation_without_the_attribute_gets_none_of_it() {
    let document = document(&IdempotencyDocs::DEFAULT);
    let list = operation(&document, "/payments", "get");
    assert!(list.get("parameters").is_none(), "no key parameter: {list}");
    assert_eq!(statuses(list), ["200"], "no library answer: {list}");
    assert!(list["responses"]["200"].get("headers").is_none(), "no Idempotent-Replayed: {list}");
}

#[test]
fn each_route_is_documented_as_its_options_say() {
    let document = document(&IdempotencyDocs::DEFAULT);

    // A query key, optional; global scope (no 401); fail-open (503 only for a record the store cannot read).
    let refunds = operation(&document, "/refunds", "post");
    assert_eq!(key_parameters(refunds), [("query".to_owned(), "request_id".to_owned(), false)]);
    assert_eq!(statuses(refunds), ["202", "400", "409", "413", "422", "503"]);
    assert!(refunds["responses"]["503"]["description"].as_str().unwrap().contains("cannot read"));
    assert!(!refunds["responses"]["400"]["description"].as_str().unwrap().contains("key-missing"));

    // A named header key, scoped by a header (400 `scope-missing`, no 401), issued keys only.
    let transfers = operation(&document, "/transfers", "post");
    assert_eq!(key_parameters(transfers), [("header".to_owned(), "X-Request-Key".to_owned(), true)]);
    assert_eq!(statuses(transfers), ["201", "400", "409", "413", "422", "503"]);
    let bad_request = transfers["responses"]["400"]["description"].as_str().unwrap();
    assert!(bad_request.contains("key-not-issued") && bad_request.contains("scope-missing"), "{bad_request}");

    // A derived key: nothing for the client to send, and no other request can come with it.
    let votes = operation(&document, "/votes", "post");
    assert!(key_parameters(votes).is_empty(), "{votes}");
    assert_eq!(statuses(votes), ["201", "400", "401", "409", "413", "503"]);
    assert!(!votes["responses"]["400"]["description"].as_str().unwrap().contains("key-"), "{votes}");

    // A form field: part of the body, said in the description.
    let form = operation(&document, "/checkout", "post");
    assert!(key_parameters(form).is_empty());
    assert!(form["description"].as_str().unwrap().contains("`idempotency_key`"), "{form}");
    let replayed = &form["responses"]["303"]["headers"]["Idempotent-Replayed"];
    assert!(replayed.is_object(), "the redirect is stored and replayed (the default store policy): {form}");

    // An operation id the app chose, matched through the namespace.
    let orders = operation(&document, "/orders", "post");
    assert_eq!(key_parameters(orders), [("header".to_owned(), "Idempotency-Key".to_owned(), true)]);
}

#[test]
fn the_app_configuration_and_its_services_are_documented() {
    let idempotency = Idempotency::builder(MemoryStore::new())
        .key_header(actix_web::http::header::HeaderName::from_static("x-idempotency-key"))
        .key_reused_status(StatusCode::CONFLICT)
        .build();
    let docs = IdempotencyDocs::of(&idempotency).status_lookup("/idempotency/{key}").issue_keys("/idempotency-keys");
    let document = document(&docs);

    let payments = operation(&document, "/payments", "post");
    assert_eq!(key_parameters(payments), [("header".to_owned(), "X-Idempotency-Key".to_owned(), true)]);
    assert!(!statuses(payments).contains(&"422"), "the reused key answers 409 here");
    let conflict = payments["responses"]["409"]["description"].as_str().unwrap();
    assert!(conflict.contains("in-flight") && conflict.contains("key-reused"), "{conflict}");

    let lookup = operation(&document, "/idempotency/{key}", "get");
    assert_eq!(key_parameters(lookup), [("path".to_owned(), "key".to_owned(), true)]);
    assert_eq!(statuses(lookup), ["200", "400", "401", "404", "503"]);
    assert_eq!(
        lookup["responses"]["404"]["content"]["application/json"]["schema"]["properties"]["state"]["enum"],
        json!(["unknown"])
    );
    let issue = operation(&document, "/idempotency-keys", "post");
    assert_eq!(statuses(issue), ["201", "401"]);
    assert_eq!(
        issue["responses"]["201"]["content"]["application/json"]["schema"]["required"],
        json!(["key", "expires_at"])
    );
}

#[test]
fn an_app_that_renders_its_own_problems_gives_their_format() {
    let schema =
        utoipa::openapi::schema::ObjectBuilder::new().property("error", utoipa::openapi::schema::Object::new());
    let docs = IdempotencyDocs::DEFAULT.problem_format("application/json", schema.build());
    let document = document(&docs);
    let payments = operation(&document, "/payments", "post");
    let conflict = &payments["responses"]["409"]["content"];
    assert!(conflict.get("application/problem+json").is_none(), "{conflict}");
    assert!(conflict["application/json"]["schema"]["properties"]["error"].is_object(), "{conflict}");
    assert!(document["components"]["schemas"].get(PROBLEM_SCHEMA).is_none(), "the library's schema is not added");
}

#[test]
fn protected_handlers_the_document_leaves_out_are_listed() {
    let _registered = run_job; // the route exists in this program
    let document = Api::openapi();
    assert_eq!(IdempotencyDocs::DEFAULT.undocumented(&document), ["openapi_document::run_job"]);
}

#[test]
fn answers_the_store_policy_does_not_keep_are_not_marked_replayed() {
    let document = document(&IdempotencyDocs::DEFAULT);
    let shipments = operation(&document, "/shipments", "post");
    assert!(shipments["responses"]["202"]["headers"]["Idempotent-Replayed"].is_object(), "{shipments}");
    assert!(shipments["responses"]["404"].get("headers").is_none(), "`success` stores no 4xx: {shipments}");
}
