//! The key's namespace: whose keys a record belongs to (docs/contract.md, section 2).
//!
//! Two users who send the same key never meet, because the scope is part of the record's identity. The scope
//! value is hashed before it is stored, with a tag per kind so that, say, user `42` and tenant `42` differ.

use std::sync::Arc;

use actix_web::HttpRequest;

use crate::digest::Digest;
use crate::record_id::{ScopeValue, scope_digest};

/// Resolves the current user of a request for `scope = "user"`; `None` means unauthenticated (401).
pub type UserResolver = Arc<dyn Fn(&HttpRequest) -> Option<String> + Send + Sync>;

/// The scope of one route, as written in `#[idempotent(scope = ...)]`.
#[derive(Debug, Clone, Copy)]
pub enum ScopeSpec {
    /// The user returned by the app's registered [`UserResolver`].
    User,
    /// One namespace for everybody: an explicit opt-in, since any client can then replay any other's response.
    Global,
    /// The value of a header (lowercase name), e.g. a tenant id set by a gateway.
    Header(&'static str),
    /// A function of the request; `None` means unauthenticated (401).
    Function(fn(&HttpRequest) -> Option<String>),
}

/// Why no scope could be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScopeError {
    /// `scope = "user"` but the app registered no user resolver.
    NoResolver,
    /// The resolver (or scope function) found no user.
    Unauthenticated,
    /// The scope header is absent or not valid UTF-8.
    MissingHeader(&'static str),
}

impl ScopeSpec {
    /// The hashed scope of this request.
    pub(crate) fn resolve(self, request: &HttpRequest, resolver: Option<&UserResolver>) -> Result<Digest, ScopeError> {
        match self {
            Self::User => {
                let resolver = resolver.ok_or(ScopeError::NoResolver)?;
                let user = resolver(request).ok_or(ScopeError::Unauthenticated)?;
                Ok(scope_digest(ScopeValue::User(&user)))
            }
            // A constant: hashed once per process, not per request.
            Self::Global => {
                static GLOBAL: std::sync::LazyLock<Digest> =
                    std::sync::LazyLock::new(|| scope_digest(ScopeValue::Global));
                Ok(*GLOBAL)
            }
            Self::Header(name) => {
                let value = request.headers().get(name).ok_or(ScopeError::MissingHeader(name))?;
                Ok(scope_digest(ScopeValue::Header { name, value: value.as_bytes() }))
            }
            Self::Function(scope_of) => {
                let scope = scope_of(request).ok_or(ScopeError::Unauthenticated)?;
                Ok(scope_digest(ScopeValue::Function(&scope)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn bearer(request: &HttpRequest) -> Option<String> {
        request.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
    }

    #[test]
    fn users_get_different_scopes() {
        let resolver: UserResolver = Arc::new(bearer);
        let alice = TestRequest::default().insert_header(("Authorization", "Bearer alice")).to_http_request();
        let bob = TestRequest::default().insert_header(("Authorization", "Bearer bob")).to_http_request();
        let alice_scope = ScopeSpec::User.resolve(&alice, Some(&resolver)).unwrap();
        assert_eq!(alice_scope, ScopeSpec::User.resolve(&alice, Some(&resolver)).unwrap());
        assert_ne!(alice_scope, ScopeSpec::User.resolve(&bob, Some(&resolver)).unwrap());
    }

    #[test]
    fn user_scope_needs_a_resolver_and_a_user() {
        let resolver: UserResolver = Arc::new(bearer);
        let anonymous = TestRequest::default().to_http_request();
        assert_eq!(ScopeSpec::User.resolve(&anonymous, None), Err(ScopeError::NoResolver));
        assert_eq!(ScopeSpec::User.resolve(&anonymous, Some(&resolver)), Err(ScopeError::Unauthenticated));
        assert_eq!(ScopeSpec::Function(bearer).resolve(&anonymous, None), Err(ScopeError::Unauthenticated));
    }

    #[test]
    fn kinds_are_separate_namespaces() {
        let request = TestRequest::default()
            .insert_header(("Authorization", "Bearer 42"))
            .insert_header(("X-Tenant-Id", "42"))
            .to_http_request();
        let resolver: UserResolver = Arc::new(bearer);
        let user = ScopeSpec::User.resolve(&request, Some(&resolver)).unwrap();
        let tenant = ScopeSpec::Header("x-tenant-id").resolve(&request, None).unwrap();
        let function = ScopeSpec::Function(bearer).resolve(&request, None).unwrap();
        assert_ne!(user, tenant);
        assert_ne!(user, function);
        assert_eq!(ScopeSpec::Header("x-other").resolve(&request, None), Err(ScopeError::MissingHeader("x-other")));
    }
}
