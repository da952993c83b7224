//! What `#[idempotent]` expands to calls, and nothing else. Not public API: it changes without notice.

pub use core::time::Duration;

pub use actix_web::web::Payload;
pub use actix_web::{HttpRequest, HttpResponse};

pub use crate::http::handle::{handle, handle_transactional};
pub use crate::http::key_source::KeySpec;
pub use crate::http::route::RouteOptions;
pub use crate::http::scope::ScopeSpec;
pub use crate::http::store_policy::StorePolicy;
#[cfg(feature = "openapi")]
pub use crate::openapi::registry::ProtectedRoute;
#[cfg(feature = "openapi")]
pub use inventory;

/// Registers a protected handler for the app's OpenAPI document (feature `openapi`): `#[idempotent]` emits it in
/// each generated handler, so no route needs a second annotation.
#[cfg(feature = "openapi")]
pub use crate::__idempotent_document_route as document_route;

/// Without the `openapi` feature, the registration is nothing: the options it was given are not even compiled.
#[cfg(not(feature = "openapi"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __idempotent_document_nothing {
    ($($tokens:tt)*) => {};
}
#[cfg(not(feature = "openapi"))]
pub use crate::__idempotent_document_nothing as document_route;

/// What the generated handler returns: the runtime's future of the response. A trait of its own, not
/// `impl Future<Output = HttpResponse>`, so that the return type, spanned on the user's, names nothing the user's
/// code could name more briefly (`unused_qualifications`).
pub trait Responding: core::future::Future<Output = HttpResponse> {}

impl<T: core::future::Future<Output = HttpResponse>> Responding for T {}

/// The identity on an extractor's value, as a function pointer: `#[idempotent]` passes each handler argument
/// through `extracted::<DeclaredType>()(value)`, spanned on the declared type.
///
/// It exists for the error messages only. The parameter's type, `Result<T, T::Error>`'s item, names `T` only
/// through `T: FromRequest`: when the declared type is not an extractor at all, rustc reports that once, on the
/// user's argument type, and cannot infer the value's type from it, so the same failure is not reported again on
/// `handle`'s `Args: FromRequest` bound (which would point at the return type).
pub fn extracted<T: actix_web::FromRequest>()
-> fn(<<T::Future as core::future::Future>::Output as IntoIterator>::Item) -> T {
    |value| value
}
