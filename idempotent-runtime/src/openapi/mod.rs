//! The idempotency contract in the app's OpenAPI document (feature `openapi`, built on [utoipa]).
//!
//! The app documents its routes with utoipa as it already does (`#[utoipa::path]` on each handler, an
//! `#[derive(OpenApi)]` listing them); [`IdempotencyDocs`] then adds, to each operation that `#[idempotent]`
//! protects and to no other:
//!
//! - the key parameter, where the route reads it (the key header, `header:Name`, `query:name`), required or not as
//!   the route says, with its grammar (1 to 255 visible ASCII characters but `"`, `,` and `\`, or the same key
//!   as a quoted RFC 8941 string);
//! - the library's answers, `application/problem+json` with one shared schema (`IdempotencyProblem`): 400 (key
//!   missing, invalid, not issued), 401 where the scope needs a user, 409 `in-flight` with `Retry-After`, 413, 422
//!   `key-reused` (or the app's status), 503 `store-unavailable` with `Retry-After`;
//! - `Idempotent-Replayed` on the operation's documented answers that the route stores (its store policy).
//!
//! ```standalone_crate
//! use actix_web::{HttpResponse, post};
//! use idempotent_runtime::idempotent;
//! use idempotent_runtime::openapi::IdempotencyDocs;
//! use utoipa::OpenApi as _;
//!
//! #[utoipa::path(post, path = "/payments", responses((status = 201, description = "The payment")))]
//! #[post("/payments")]
//! #[idempotent(scope = "global")]
//! async fn create_payment() -> HttpResponse {
//!     HttpResponse::Created().finish()
//! }
//!
//! // utoipa's `modifiers(..)` takes a name: the app's idempotency documentation, as a constant.
//! const IDEMPOTENCY: IdempotencyDocs = IdempotencyDocs::DEFAULT.status_lookup("/idempotency/{key}");
//!
//! #[derive(utoipa::OpenApi)]
//! #[openapi(paths(create_payment), modifiers(&IDEMPOTENCY))]
//! struct ApiDoc;
//!
//! let document = ApiDoc::openapi();
//! let operation = document.paths.paths["/payments"].post.as_ref().unwrap();
//! assert!(operation.responses.responses.contains_key("409"), "the library's answers are documented");
//! assert!(document.paths.paths.contains_key("/idempotency/{key}"), "and the status lookup");
//! ```
//!
//! Operations are matched by their operation id: the handler's name, utoipa's default, or the route's
//! `namespace` when the app chose another id. `#[idempotent]` registers each handler at link time (beside the
//! handler, with this feature only), so no route needs a second annotation. An app whose configuration differs
//! from the defaults (the key header, the status of a reused key, its own problem format) describes it with
//! [`IdempotencyDocs::of`] and the builder methods, and the paths it mounts the status lookup and the key-issuing
//! service at with [`IdempotencyDocs::status_lookup`] and [`IdempotencyDocs::issue_keys`].
//!
//! [utoipa]: https://docs.rs/utoipa

mod operation;
pub(crate) mod registry;
mod schemas;
mod services;

use std::borrow::Cow;

use actix_web::http::StatusCode;
use utoipa::Modify;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{OpenApi, RefOr, Schema};

use crate::http::config::Idempotency;
use crate::http::problem::PROBLEM_CONTENT_TYPE;
use crate::http::store_policy::StorePolicy;

pub use self::schemas::{KEY_PATTERN, PROBLEM_SCHEMA};

/// Completes an OpenAPI document with the idempotency parts of each protected operation (see the
/// [module](self)): a utoipa [`Modify`], or called directly with [`IdempotencyDocs::document`].
#[derive(Clone)]
pub struct IdempotencyDocs {
    key_header: Cow<'static, str>,
    key_reused_status: StatusCode,
    problem_content_type: Cow<'static, str>,
    /// The app's own problem schema; `None` is the library's (`IdempotencyProblem`, added to the components).
    problem_schema: Option<RefOr<Schema>>,
    status_lookup: Option<&'static str>,
    issue_keys: Option<&'static str>,
    /// Which handler answers are stored, on routes without `store_responses`: they may come back replayed.
    store_policy: StorePolicy,
}

impl Default for IdempotencyDocs {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl IdempotencyDocs {
    /// The library's defaults: `Idempotency-Key`, 422 for a reused key, its own problem documents; no status
    /// lookup nor key-issuing service.
    pub const DEFAULT: IdempotencyDocs = IdempotencyDocs {
        key_header: Cow::Borrowed("Idempotency-Key"),
        key_reused_status: StatusCode::UNPROCESSABLE_ENTITY,
        problem_content_type: Cow::Borrowed(PROBLEM_CONTENT_TYPE),
        problem_schema: None,
        status_lookup: None,
        issue_keys: None,
        store_policy: StorePolicy::Final,
    };

    /// The documentation of an app configured as `idempotency`: its key header, the status of a reused key and
    /// which answers it stores.
    pub fn of(idempotency: &Idempotency) -> Self {
        let settings = idempotency.settings();
        Self {
            key_header: Cow::Owned(canonical_header_name(settings.key_header.as_str())),
            key_reused_status: settings.key_reused_status,
            store_policy: settings.store_policy,
            ..Self::DEFAULT
        }
    }

    /// The format of the library's answers when the app renders them itself
    /// ([`crate::IdempotencyBuilder::render_problems`]): their content type and schema.
    pub fn problem_format(mut self, content_type: impl Into<String>, schema: impl Into<RefOr<Schema>>) -> Self {
        self.problem_content_type = Cow::Owned(content_type.into());
        self.problem_schema = Some(schema.into());
        self
    }

    /// Documents the status lookup the app mounts at `path` (`status_lookup("/idempotency/{key}")`).
    pub const fn status_lookup(mut self, path: &'static str) -> Self {
        self.status_lookup = Some(path);
        self
    }

    /// Documents the key-issuing service the app mounts at `path` (`issue_keys("/idempotency-keys")`).
    pub const fn issue_keys(mut self, path: &'static str) -> Self {
        self.issue_keys = Some(path);
        self
    }

    /// Adds the idempotency parts to `openapi` (what [`Modify::modify`] does).
    pub fn document(&self, openapi: &mut OpenApi) {
        let mut documented_any = false;
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                let Some(operation_id) = operation.operation_id.clone() else { continue };
                let mut routes = registry::routes_for(&operation_id);
                let Some(route) = routes.next() else { continue };
                if let Some(other) = routes.next() {
                    // Two protected handlers of one name: their operations need ids of their own (`namespace`).
                    tracing::warn!(
                        operation_id,
                        first = %format_args!("{}::{}", route.module, route.handler),
                        other = %format_args!("{}::{}", other.module, other.handler),
                        "two protected handlers match this OpenAPI operation id; documenting it with the first: give \
                         the operation `operation_id` and the route the same `namespace`"
                    );
                }
                operation::document(self, route.options, operation);
                documented_any = true;
            }
        }
        if let Some(path) = self.status_lookup {
            services::document_status_lookup(self, openapi, path);
            documented_any = true;
        }
        if let Some(path) = self.issue_keys {
            services::document_issue_keys(self, openapi, path);
            documented_any = true;
        }
        if documented_any && self.problem_schema.is_none() {
            let components = openapi.components.get_or_insert_with(Default::default);
            components.schemas.insert(PROBLEM_SCHEMA.to_owned(), RefOr::T(schemas::problem()));
        }
    }

    /// The protected handlers linked into this program that `openapi` does not document (as `module::handler`),
    /// for an app's test to assert on. The attribute cannot make this a compile error: it cannot see whether
    /// utoipa documents the handler, and requiring it would oblige every protected handler of every crate in the
    /// build (features are unified) to be documented.
    pub fn undocumented(&self, openapi: &OpenApi) -> Vec<String> {
        let documented: Vec<&str> = openapi
            .paths
            .paths
            .values()
            .flat_map(|item| [&item.get, &item.put, &item.post, &item.delete, &item.patch])
            .filter_map(|operation| operation.as_ref()?.operation_id.as_deref())
            .collect();
        let mut missing: Vec<String> = registry::routes()
            .filter(|route| !documented.iter().any(|id| route.is_operation(id)))
            .map(|route| format!("{}::{}", route.module, route.handler))
            .collect();
        missing.sort();
        missing
    }

    /// The schema of the library's answers: the app's, or a reference to `IdempotencyProblem`.
    fn problem_schema(&self) -> RefOr<Schema> {
        self.problem_schema
            .clone()
            .unwrap_or_else(|| RefOr::Ref(utoipa::openapi::Ref::from_schema_name(PROBLEM_SCHEMA)))
    }
}

impl std::fmt::Debug for IdempotencyDocs {
    // utoipa's schemas implement `Debug` only with its `debug` feature.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IdempotencyDocs")
            .field("key_header", &self.key_header)
            .field("key_reused_status", &self.key_reused_status)
            .field("problem_content_type", &self.problem_content_type)
            .field("own_problem_schema", &self.problem_schema.is_some())
            .field("status_lookup", &self.status_lookup)
            .field("issue_keys", &self.issue_keys)
            .finish()
    }
}

impl Modify for IdempotencyDocs {
    fn modify(&self, openapi: &mut OpenApi) {
        self.document(openapi);
    }
}

/// The operations of a path that routes serve.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [item.get.as_mut(), item.put.as_mut(), item.post.as_mut(), item.delete.as_mut(), item.patch.as_mut()]
        .into_iter()
        .flatten()
}

/// `idempotency-key` as documents spell it: `Idempotency-Key`.
fn canonical_header_name(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| first.to_ascii_uppercase().to_string() + chars.as_str())
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_spelled_as_documents_spell_them() {
        assert_eq!(canonical_header_name("idempotency-key"), "Idempotency-Key");
        assert_eq!(canonical_header_name("x-request-key"), "X-Request-Key");
    }
}
