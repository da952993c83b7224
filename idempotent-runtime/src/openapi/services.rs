//! The services the app mounts beside its routes, documented as the paths it mounts them at: the status lookup
//! and the key-issuing service.

use actix_web::http::StatusCode;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Required, ResponseBuilder, Schema};

use super::operation::{Answer, STORE_UNREACHABLE, UNAUTHENTICATED, add_answer};
use super::{IdempotencyDocs, schemas};

/// The tag both services are listed under.
const TAG: &str = "idempotency";

/// `GET {path}`: what happened to a key.
pub(crate) fn document_status_lookup(docs: &IdempotencyDocs, openapi: &mut OpenApi, path: &str) {
    let key = ParameterBuilder::new()
        .name("key")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The idempotency key to look up, as the caller sent it."))
        .schema(Some(schemas::key()))
        .build();
    let known = ResponseBuilder::new()
        .description("The key is in progress, completed, or issued to this caller and not used yet.")
        .content("application/json", ContentBuilder::new().schema(Some(key_status())).build())
        .build();
    let unknown = ResponseBuilder::new()
        .description("No such key for this caller: never used, expired, or another caller's.")
        .content("application/json", ContentBuilder::new().schema(Some(unknown_key())).build())
        .build();
    let mut operation = OperationBuilder::new()
        .tag(TAG)
        .operation_id(Some("idempotency_status_lookup"))
        .summary(Some("What happened to an idempotency key"))
        .parameter(key)
        .response("200", known)
        .response("404", unknown)
        .build();
    let invalid = vec!["`key-invalid`: the key in the path is malformed."];
    add_answer(docs, &mut operation, StatusCode::BAD_REQUEST, &Answer { reasons: invalid, retry_after: false });
    add_caller_answers(docs, &mut operation);
    openapi.paths.add_path_operation(path, vec![HttpMethod::Get], operation);
}

/// `POST {path}`: a key issued to the caller.
pub(crate) fn document_issue_keys(docs: &IdempotencyDocs, openapi: &mut OpenApi, path: &str) {
    let issued = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("key", schemas::key())
        .required("key")
        .property("expires_at", timestamp())
        .required("expires_at")
        .build();
    let created = ResponseBuilder::new()
        .description("A new key, valid for this caller's first use until `expires_at`.")
        .content("application/json", ContentBuilder::new().schema(Some(issued)).build())
        .build();
    let mut operation = OperationBuilder::new()
        .tag(TAG)
        .operation_id(Some("idempotency_issue_key"))
        .summary(Some("Issue an idempotency key to the caller"))
        .response("201", created)
        .build();
    let unauthenticated = vec!["`unauthenticated`: keys are issued per caller, and the request has none."];
    add_answer(
        docs,
        &mut operation,
        StatusCode::UNAUTHORIZED,
        &Answer { reasons: unauthenticated, retry_after: false },
    );
    openapi.paths.add_path_operation(path, vec![HttpMethod::Post], operation);
}

/// The answers of a service that resolves the caller and reads the store.
fn add_caller_answers(docs: &IdempotencyDocs, operation: &mut Operation) {
    add_answer(
        docs,
        operation,
        StatusCode::UNAUTHORIZED,
        &Answer { reasons: vec![UNAUTHENTICATED], retry_after: false },
    );
    let unavailable = Answer { reasons: vec![STORE_UNREACHABLE], retry_after: true };
    add_answer(docs, operation, StatusCode::SERVICE_UNAVAILABLE, &unavailable);
}

/// The status lookup's document for a known key.
fn key_status() -> Schema {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("state", text().enum_values(Some(["in_progress", "completed", "issued"])))
        .required("state")
        .property("status", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(100)).maximum(Some(599)))
        .property("method", text())
        .property("route", text())
        .property("started_at", timestamp())
        .property("completed_at", timestamp())
        .property("expires_at", timestamp())
        .property("retry_after", schemas::seconds())
        .build()
        .into()
}

/// The status lookup's document for an unknown key.
fn unknown_key() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("state", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["unknown"])))
        .required("state")
        .build()
        .into()
}

/// An RFC 3339 timestamp.
fn timestamp() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}
