//! The schemas the idempotency parts share: the key's grammar and the library's problem document.

use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// The name of the library's problem schema in the document's components.
pub const PROBLEM_SCHEMA: &str = "IdempotencyProblem";

/// A key's grammar, as a regular expression: 1 to 255 visible ASCII characters except `"`, `,` and `\`, or the
/// same key as an RFC 8941 string (quoted, `\"` and `\\` escaped, 1 to 255 characters once unquoted), with the
/// spaces and tabs around it that HTTP allows. The length is in the pattern: `maxLength` would count the quotes.
pub const KEY_PATTERN: &str = r#"^[ \t]*(?:[!#-+\--\[\]-~]{1,255}|"(?:[ !#-\[\]-~]|\\["\\]){1,255}")[ \t]*$"#;

/// The key: its grammar, length included.
pub(crate) fn key() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("1 to 255 characters: visible ASCII except `\"`, `,` and `\\` (a UUID, say)."))
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
