//! Naming records as an operator does: by the key a client sent and the scope it was sent in. Records are stored
//! under digests, never raw values; [`key_hash`] and [`Scope::hash`] compute them exactly as a request does.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::record_id::{ScopeSecret, ScopeValue, scope_digest};

/// The digest under which a key is stored: `key` is the unquoted key (as [`crate::IdempotencyKey::as_str`] gives
/// it; parse a raw header value with [`crate::IdempotencyKey::parse`] first).
pub fn key_hash(key: &str) -> Digest {
    crate::record_id::key_digest(key)
}

/// A scope value as a request resolves it, to compute the digest it is stored under.
///
/// The textual form (`FromStr` and `Display`) is the operator's: `user:<id>`, `global`, `header:<Name>=<value>`
/// or `function:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `scope = "user"`: the id the app's user resolver returned.
    User(String),
    /// `scope = "global"`.
    Global,
    /// `scope = "header:Name"`: the header's name (any case) and the value the request carried.
    Header {
        /// The header's name; compared case-insensitively, as HTTP does.
        name: String,
        /// The header's value, byte for byte.
        value: String,
    },
    /// `scope = path::to_fn`: the value the function returned.
    Function(String),
}

/// The scope forms [`Scope::from_str`] accepts, for error messages and help texts.
pub const SCOPE_FORMS: &str = "user:<id>, global, header:<Name>=<value>, function:<value>";

impl Scope {
    /// The digest under which records of this scope are stored (the same as the runtime's, kind included, so that
    /// user `42` and tenant `42` stay apart).
    pub fn hash(&self) -> Digest {
        let name;
        scope_digest(match self {
            Self::User(user) => ScopeValue::User(user),
            Self::Global => ScopeValue::Global,
            Self::Header { name: given, value } => {
                name = given.to_ascii_lowercase();
                ScopeValue::Header { name: &name, value: value.as_bytes() }
            }
            Self::Function(value) => ScopeValue::Function(value),
        })
    }

    /// The digest under which an app that set [`ScopeSecret`] (`IdempotencyBuilder::scope_secret`) stores records
    /// of this scope.
    pub fn keyed_hash(&self, secret: &ScopeSecret) -> Digest {
        secret.keyed(&self.hash())
    }
}

/// A scope selector that does not parse; its message lists the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeParseError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for ScopeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid scope {:?}: {}; expected one of: {SCOPE_FORMS}", self.input, self.reason)
    }
}

impl std::error::Error for ScopeParseError {}

impl FromStr for Scope {
    type Err = ScopeParseError;

    /// Parses `user:<id>`, `global`, `header:<Name>=<value>` or `function:<value>`. Values are taken verbatim
    /// (they may contain `:` and `=`); ids and header names may not be empty.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| ScopeParseError { input: input.to_owned(), reason };
        if input == "global" {
            return Ok(Self::Global);
        }
        let (kind, value) = input.split_once(':').ok_or_else(|| error("no kind before a `:`"))?;
        match kind {
            "user" if value.is_empty() => Err(error("the user id is empty")),
            "user" => Ok(Self::User(value.to_owned())),
            "global" => Err(error("`global` takes no value")),
            "header" => {
                let (name, value) = value.split_once('=').ok_or_else(|| error("a header scope needs `Name=value`"))?;
                let valid_name = !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_graphic() && byte != b':');
                if !valid_name {
                    return Err(error("the header name is empty or not a header name"));
                }
                Ok(Self::Header { name: name.to_owned(), value: value.to_owned() })
            }
            "function" => Ok(Self::Function(value.to_owned())),
            _ => Err(error("unknown kind")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(user) => write!(f, "user:{user}"),
            Self::Global => f.write_str("global"),
            Self::Header { name, value } => write!(f, "header:{name}={value}"),
            Self::Function(value) => write!(f, "function:{value}"),
        }
    }
}

/// Which records [`show`](crate::admin::show) and [`release`](crate::admin::release) act on: a key and a scope (as digests), optionally narrowed to one route
/// and method when the same key was used on several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// See [`key_hash`].
    pub key_hash: Digest,
    /// See [`Scope::hash`].
    pub scope_hash: Digest,
    /// The route pattern, e.g. `/payments/{id}`, compared exactly.
    pub route: Option<String>,
    /// The method, e.g. `POST`, compared exactly.
    pub method: Option<String>,
}

impl Selector {
    /// Selects the records of `key` in `scope`, on any route and method.
    pub fn new(key: &str, scope: &Scope) -> Self {
        Self { key_hash: key_hash(key), scope_hash: scope.hash(), route: None, method: None }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::HttpRequest;
    use actix_web::test::TestRequest;

    use super::*;
    use crate::http::scope::{ScopeSpec, UserResolver};

    fn tenant(request: &HttpRequest) -> Option<String> {
        request.headers().get("x-tenant")?.to_str().ok().map(str::to_owned)
    }

    #[test]
    fn parses_every_form() {
        assert_eq!("user:alice".parse(), Ok(Scope::User("alice".to_owned())));
        assert_eq!("user:a:b=c".parse(), Ok(Scope::User("a:b=c".to_owned())));
        assert_eq!("global".parse(), Ok(Scope::Global));
        assert_eq!(
            "header:X-Tenant-Id=acme=1".parse(),
            Ok(Scope::Header { name: "X-Tenant-Id".to_owned(), value: "acme=1".to_owned() })
        );
        assert_eq!(
            "header:X-Tenant-Id=".parse(),
            Ok(Scope::Header { name: "X-Tenant-Id".to_owned(), value: String::new() })
        );
        assert_eq!("function:t-42".parse(), Ok(Scope::Function("t-42".to_owned())));
        for scope in ["user:alice", "global", "header:X-Tenant-Id=acme", "function:t-42"] {
            assert_eq!(scope.parse::<Scope>().unwrap().to_string(), scope);
        }
    }

    #[test]
    fn refuses_malformed_selectors_listing_the_forms() {
        for bad in [
            "",
            "alice",
            "user",
            "user:",
            "tenant:42",
            "global:x",
            "header:X-Tenant",
            "header:=v",
            "header:a b=v",
            "User:x",
        ] {
            let error = bad.parse::<Scope>().unwrap_err().to_string();
            assert!(error.contains(SCOPE_FORMS), "{bad:?}: {error}");
            assert!(error.contains(&format!("{bad:?}")), "{bad:?}: {error}");
        }
    }

    #[test]
    fn hashes_as_the_runtime_resolves() {
        let request = TestRequest::default()
            .insert_header(("Authorization", "alice"))
            .insert_header(("X-Tenant", "acme"))
            .to_http_request();
        let resolver: UserResolver =
            Arc::new(|request| request.headers().get("authorization")?.to_str().ok().map(str::to_owned));
        let runtime = |spec: ScopeSpec| spec.resolve(&request, Some(&resolver)).unwrap();
        assert_eq!(Scope::User("alice".to_owned()).hash(), runtime(ScopeSpec::User));
        assert_eq!(Scope::Global.hash(), runtime(ScopeSpec::Global));
        // The macro lowercases the header name; the operator may write it in any case.
        let header = Scope::Header { name: "X-Tenant".to_owned(), value: "acme".to_owned() };
        assert_eq!(header.hash(), runtime(ScopeSpec::Header("x-tenant")));
        assert_eq!(Scope::Function("acme".to_owned()).hash(), runtime(ScopeSpec::Function(tenant)));
        assert_ne!(Scope::User("acme".to_owned()).hash(), Scope::Function("acme".to_owned()).hash());
    }
}
