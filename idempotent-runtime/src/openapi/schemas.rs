//! The schemas the idempotency parts share: the key's grammar and the library's problem document.

use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

use crate::http::key::MAX_KEY_LEN;

/// The name of the library's problem schema in the document's components.
pub const PROBLEM_SCHEMA: &str = "IdempotencyProblem";

/// A key's grammar, as a regular expression: visible ASCII characters except `"`, `,` and `\`, or the same key as
/// an RFC 8941 string (quoted, with `\"` and `\\` escaped).
pub const KEY_PATTERN: &str = r#"^(?:[!#-+\--\[\]-~]+|"(?:[ !#-\[\]-~]|\\["\\])+")$"#;

/// The key: its grammar and length.
pub(crate) fn key() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_LEN))
        .pattern(Some(KEY_PATTERN))
        .build()
        .into()
}

/// An RFC 9457 problem document as the library writes it.
pub(crate) fn problem() -> Schema {
    let text = |description: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(description));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("An RFC 9457 problem document; `type` ends with a stable slug, such as `key-reused`."))
        .property("type", text("A URI naming the kind of problem."))
        .required("type")
        .property("title", text("The kind's short, constant summary."))
        .required("title")
        .property("status", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(100)).maximum(Some(599)))
        .required("status")
        .property("detail", text("What this caller should do."))
        .required("detail")
        .build()
        .into()
}

/// `Retry-After` in whole seconds.
pub(crate) fn seconds() -> Schema {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build().into()
}
