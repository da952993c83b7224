//! What the examples' OpenAPI documents share: serving `GET /openapi.json`, `405 Method Not Allowed` (with
//! `Allow`) for the documented paths, the demo auth header, and the examples' own problem documents.

use std::sync::Arc;

use actix_web::dev::ResourceDef;
use actix_web::http::StatusCode;
use actix_web::http::header::ALLOW;
use actix_web::{HttpRequest, HttpResponse, Resource, web};
use utoipa::openapi::OpenApi;

use super::problem;

/// The demo auth, as a header parameter: `Authorization: Bearer <user id>` (1 to 64 visible ASCII characters).
#[derive(utoipa::IntoParams)]
#[into_params(names("Authorization"), parameter_in = Header)]
#[allow(dead_code)] // documentation only: `common::user_of` reads the header
pub(crate) struct DemoAuth(
    /// Demo auth: `Bearer <user id>`.
    #[param(pattern = "^Bearer [!-~]{1,64}$")]
    String,
);

/// A problem the example answers itself (`type` under `https://examples.idempotent.rs/problems/`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: `common::problem` writes these documents
pub(crate) struct ExampleProblem {
    /// A URI naming the kind of problem.
    #[schema(rename = "type")]
    kind: String,
    /// The status's reason phrase.
    title: String,
    /// The status.
    #[schema(minimum = 100, maximum = 599)]
    status: u16,
    /// What went wrong.
    detail: String,
}

/// `GET /openapi.json`: the document, serialized once.
pub(crate) fn document_route(document: &OpenApi) -> Resource {
    let json: Arc<str> = document.to_json().expect("an OpenAPI document serializes").into();
    web::resource("/openapi.json").route(web::get().to(move || {
        let json = Arc::clone(&json);
        async move { HttpResponse::Ok().content_type("application/json").body(json.to_string()) }
    }))
}

/// The documented paths and the methods each serves.
#[derive(Clone)]
pub(crate) struct DocumentedPaths(Arc<Vec<(ResourceDef, String)>>);

impl DocumentedPaths {
    pub(crate) fn of(document: &OpenApi) -> Self {
        let paths = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                let allow: Vec<&str> = methods.iter().filter(|(_, served)| *served).map(|(name, _)| *name).collect();
                (ResourceDef::new(path.as_str()), allow.join(", "))
            })
            .collect();
        Self(Arc::new(paths))
    }
}

/// The app's default service: `405` with `Allow` on a documented path asked with another method, else `404`.
pub(crate) async fn not_routed(request: HttpRequest, paths: web::Data<DocumentedPaths>) -> HttpResponse {
    match paths.0.iter().find(|(path, _)| path.is_match(request.path())) {
        Some((_, allow)) => {
            let mut answer = problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                format!("{} is not served here; this path serves {allow}", request.method()),
            );
            if let Ok(value) = allow.parse() {
                answer.headers_mut().insert(ALLOW, value);
            }
            answer
        }
        None => problem(StatusCode::NOT_FOUND, "not-found", "no such path"),
    }
}
