//! One protected operation's idempotency parts: the key parameter, the library's answers, `Idempotent-Replayed`.

use actix_web::http::StatusCode;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr, Required, Response, ResponseBuilder};

use super::{IdempotencyDocs, canonical_header_name, schemas};
use crate::http::key_source::KeySpec;
use crate::http::route::RouteOptions;
use crate::http::scope::ScopeSpec;
use crate::http::store_policy::StorePolicy;

/// What the key parameter says about the key.
const KEY_DESCRIPTION: &str = "Identifies this operation across retries. Send the same key with the same request \
     to get the first answer again (marked `Idempotent-Replayed: true`) instead of a second execution; a new \
     operation needs a new key, such as a UUID.";

/// Adds the idempotency parts of the route with `options` to its `operation`.
pub(crate) fn document(docs: &IdempotencyDocs, options: &RouteOptions, operation: &mut Operation) {
    if let Some(parameter) = key_parameter(docs, options) {
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        let known = parameters.iter().any(|known| match known {
            RefOr::T(known) => {
                known.name.eq_ignore_ascii_case(&parameter.name) && known.parameter_in == parameter.parameter_in
            }
            RefOr::Ref(_) => false,
        });
        if !known {
            parameters.push(RefOr::T(parameter));
        }
    }
    if let KeySpec::Form(field) = options.key {
        let note = format!("The form field `{field}` carries the idempotency key (1 to 255 characters).");
        operation.description = Some(match operation.description.take() {
            Some(description) => format!("{description}\n\n{note}"),
            None => note,
        });
    }
    mark_replays(operation, options.store_policy.unwrap_or(docs.store_policy));
    for (status, answer) in answers(docs, options) {
        add_answer(docs, operation, status, &answer);
    }
}

/// The key parameter, where the route reads it; none for form fields (part of the body) and derived keys.
fn key_parameter(docs: &IdempotencyDocs, options: &RouteOptions) -> Option<Parameter> {
    let (location, name) = match options.key {
        KeySpec::Header => (ParameterIn::Header, docs.key_header.to_string()),
        KeySpec::HeaderNamed(name) => (ParameterIn::Header, canonical_header_name(name)),
        KeySpec::Query(name) => (ParameterIn::Query, name.to_owned()),
        KeySpec::Form(_) | KeySpec::Derived => return None,
    };
    let required = if options.required { Required::True } else { Required::False };
    let mut description = KEY_DESCRIPTION.to_owned();
    if options.issued_only {
        description.push_str(" Only keys this server issued to the caller are accepted.");
    }
    Some(
        ParameterBuilder::new()
            .name(name)
            .parameter_in(location)
            .required(required)
            .description(Some(description))
            .schema(Some(schemas::key()))
            .build(),
    )
}

/// A caller without the user its keys are scoped by.
pub(crate) const UNAUTHENTICATED: &str = "`unauthenticated`: keys are scoped per caller, and the request has none.";
/// The store out of reach.
pub(crate) const STORE_UNREACHABLE: &str = "`store-unavailable`: the idempotency store cannot be reached; retry later.";

/// One of the library's answers on this route.
pub(crate) struct Answer {
    /// Why the library answers this status, one sentence per reason.
    pub(crate) reasons: Vec<&'static str>,
    pub(crate) retry_after: bool,
}

/// The library's answers on a route with `options`, by status.
fn answers(docs: &IdempotencyDocs, options: &RouteOptions) -> Vec<(StatusCode, Answer)> {
    let mut bad_request = Vec::new();
    if !matches!(options.key, KeySpec::Derived) {
        if options.required {
            bad_request.push("`key-missing`: the request has no idempotency key.");
        }
        bad_request.push("`key-invalid`: the key is empty, longer than 255 characters, malformed or sent twice.");
        if options.issued_only {
            bad_request.push("`key-not-issued`: this server did not issue the key to this caller, or it expired.");
        }
    }
    if let ScopeSpec::Header(_) = options.scope {
        bad_request.push("`scope-missing`: the header that scopes the key is missing.");
    }
    bad_request.push("`body-unreadable`: the request body could not be read.");

    let mut answers = vec![(StatusCode::BAD_REQUEST, Answer { reasons: bad_request, retry_after: false })];
    if matches!(options.scope, ScopeSpec::User | ScopeSpec::Function(_)) {
        let reasons = vec![UNAUTHENTICATED];
        answers.push((StatusCode::UNAUTHORIZED, Answer { reasons, retry_after: false }));
    }
    let in_flight = vec!["`in-flight`: a request with this key is still running; retry after `Retry-After` seconds."];
    answers.push((StatusCode::CONFLICT, Answer { reasons: in_flight, retry_after: true }));
    let too_large = vec!["`body-too-large`: the body is over the route's limit, so it cannot be fingerprinted."];
    answers.push((StatusCode::PAYLOAD_TOO_LARGE, Answer { reasons: too_large, retry_after: false }));
    // A derived key is the request itself: it cannot come back with another request.
    if !matches!(options.key, KeySpec::Derived) {
        let reused = vec!["`key-reused`: this key was used with a different request; use a new key."];
        answers.push((docs.key_reused_status, Answer { reasons: reused, retry_after: false }));
    }
    // A fail-open route runs unprotected when the store is unreachable, but still answers 503 for a record it
    // cannot read.
    let unavailable = if options.fail_open {
        vec!["`store-unavailable`: the idempotency store answered with a record it cannot read; retry later."]
    } else {
        vec![STORE_UNREACHABLE]
    };
    answers.push((StatusCode::SERVICE_UNAVAILABLE, Answer { reasons: unavailable, retry_after: true }));
    answers
}

/// Adds one of the library's answers: a new response, or, where the app documents the status already (its own
/// 422, say), the library's reasons and problem content beside the app's.
pub(crate) fn add_answer(docs: &IdempotencyDocs, operation: &mut Operation, status: StatusCode, answer: &Answer) {
    let reasons = answer.reasons.join(" ");
    let key = status.as_str().to_owned();
    let response = operation.responses.responses.entry(key).or_insert_with(|| RefOr::T(ResponseBuilder::new().build()));
    // A response the app documents by reference is the app's to describe.
    let RefOr::T(response) = response else { return };
    append_description(response, &reasons);
    response
        .content
        .entry(docs.problem_content_type.to_string())
        .or_insert_with(|| RefOr::T(ContentBuilder::new().schema(Some(docs.problem_schema())).build()));
    if answer.retry_after {
        let header = HeaderBuilder::new()
            .schema(Some(schemas::seconds()))
            .description(Some("Seconds to wait before retrying."))
            .build();
        response.headers.entry("Retry-After".to_owned()).or_insert(RefOr::T(header));
    }
}

/// Marks the handler's documented answers that the route stores (its store policy) as possibly replayed.
fn mark_replays(operation: &mut Operation, policy: StorePolicy) {
    for (status, response) in &mut operation.responses.responses {
        let RefOr::T(response) = response else { continue };
        let stored = status.parse::<u16>().ok().and_then(|code| StatusCode::from_u16(code).ok());
        if !stored.is_some_and(|status| policy.stores(status)) {
            continue;
        }
        let header = HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["true"])).build()))
            .description(Some("`true` when this is the stored answer to an earlier request with the same key."))
            .build();
        response.headers.entry("Idempotent-Replayed".to_owned()).or_insert(RefOr::T(header));
    }
}

fn append_description(response: &mut Response, reasons: &str) {
    if response.description.is_empty() {
        response.description = reasons.to_owned();
    } else if !response.description.contains(reasons) {
        response.description = format!("{} {reasons}", response.description);
    }
}
