//! What `#[idempotent]` expands to calls, and nothing else. Not public API: it changes without notice.

pub use core::time::Duration;

pub use actix_web::web::Payload;
pub use actix_web::{HttpRequest, HttpResponse};

pub use crate::handle::handle;
pub use crate::key_source::KeySpec;
pub use crate::route::RouteOptions;
pub use crate::scope::ScopeSpec;
