//! The protected handlers of the binary, as `#[idempotent]` registers them (an item in each generated handler),
//! so that the document can be completed without a second annotation on any route.

use crate::http::route::RouteOptions;

/// One handler that `#[idempotent]` protects: its name (utoipa's default operation id), its module and its
/// options. Registered at link time by the attribute (through [`crate::__private::document_route`]); not public
/// API.
#[doc(hidden)]
#[derive(Debug)]
pub struct ProtectedRoute {
    /// The handler function's name.
    pub handler: &'static str,
    /// `module_path!()` where it was written, to tell apart two handlers of the same name.
    pub module: &'static str,
    /// The attribute's options.
    pub options: &'static RouteOptions,
}

inventory::collect!(ProtectedRoute);

impl ProtectedRoute {
    /// Whether the operation with this id is this handler's: its name (utoipa's default id) or the route's
    /// `namespace` (for an operation whose id the app chose).
    pub(crate) fn is_operation(&self, operation_id: &str) -> bool {
        self.handler == operation_id || self.options.namespace == Some(operation_id)
    }
}

/// Every protected handler linked into this program.
pub(crate) fn routes() -> impl Iterator<Item = &'static ProtectedRoute> {
    inventory::iter::<ProtectedRoute>.into_iter()
}

/// The protected handlers whose operation id is `operation_id`.
pub(crate) fn routes_for(operation_id: &str) -> impl Iterator<Item = &'static ProtectedRoute> + '_ {
    routes().filter(move |route| route.is_operation(operation_id))
}

/// Registers a protected handler for the OpenAPI document (with the `openapi` feature; without it, nothing).
#[doc(hidden)]
#[macro_export]
macro_rules! __idempotent_document_route {
    ($handler:ident, $options:expr) => {
        // A deprecated option is reported once, on the handler, not again here.
        #[allow(deprecated)]
        const _: () = {
            $crate::__private::inventory::submit! {
                $crate::__private::ProtectedRoute {
                    handler: ::core::stringify!($handler),
                    module: ::core::module_path!(),
                    options: $options,
                }
            }
        };
    };
}
