//! A stand-in for a timeout middleware: requests marked `x-test-cancel` have their handler future dropped after
//! a delay and get 504, as `tokio::time::timeout` around a service call would do.

use std::future::Future;
use std::time::Duration;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};

/// How long a marked request may run before it is cancelled.
pub const CANCEL_AFTER: Duration = Duration::from_millis(150);

/// For `App::wrap_fn`.
pub fn cancel_marked_requests<S>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse, actix_web::Error>> + use<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
{
    let cancel = request.headers().contains_key("x-test-cancel");
    let call = service.call(request);
    async move {
        if !cancel {
            return call.await;
        }
        match tokio::time::timeout(CANCEL_AFTER, call).await {
            Ok(response) => response,
            Err(_) => Err(actix_web::error::ErrorGatewayTimeout("the handler took too long")),
        }
    }
}
