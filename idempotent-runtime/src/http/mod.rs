//! The actix-web side: the flow of an `#[idempotent]` route and everything only HTTP needs (keys from headers,
//! scopes, fingerprints of requests, bodies, replays, problem documents, the status and key-issuing services).
//! The attempt itself is the core's (`crate::attempt`), shared with the receivers.

mod answer;
pub(crate) mod config;
pub(crate) mod fingerprint;
pub(crate) mod handle;
mod handler_call;
pub(crate) mod issue_service;
pub(crate) mod issued_key;
#[cfg(test)]
mod issued_route_tests;
pub(crate) mod key;
pub(crate) mod key_source;
pub(crate) mod problem;
pub(crate) mod replay;
pub(crate) mod replay_hook;
pub(crate) mod request_body;
pub(crate) mod response_body;
pub(crate) mod route;
mod run;
pub(crate) mod scope;
pub(crate) mod scope_digests;
pub(crate) mod status;
pub(crate) mod store_policy;
#[cfg(feature = "postgres")]
mod tx_extractor;
pub(crate) mod usual_duration;
