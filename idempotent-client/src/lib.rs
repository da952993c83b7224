//! The client side of idempotency keys: a [`reqwest_middleware`] middleware that gives every non-idempotent call
//! a key, keeps that key across retries, and retries only what is safe and useful.
//!
//! ```no_run
//! use idempotent_client::{ClientError, IdempotencyMiddleware, IdempotentCall};
//!
//! # async fn pay() -> Result<(), reqwest_middleware::Error> {
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(IdempotencyMiddleware::new())
//!     .build();
//! match client.post("http://127.0.0.1:8080/payments").body(r#"{"amount": 10, "currency": "EUR"}"#).send().await {
//!     Ok(response) => {
//!         let call = IdempotentCall::of(&response).expect("keyed by the middleware");
//!         println!("{} with key {} after {} attempts", response.status(), call.key(), call.attempts());
//!     }
//!     Err(error) => match ClientError::of(&error) {
//!         Some(failed) if failed.is_key_reused() => eprintln!("bug: key {} reused", failed.key()),
//!         Some(failed) => eprintln!("key {}: {failed}", failed.key()),
//!         None => return Err(error),
//!     },
//! }
//! # Ok(())
//! # }
//! ```
//!
//! What it does, per call (see [`IdempotencyMiddleware`]):
//!
//! - **A key per operation, not per attempt.** POST and PATCH get a fresh UUID v4 `Idempotency-Key` unless the
//!   caller set one; every retry sends the same key, so the server runs the operation once and replays its answer.
//! - **Retries where they are safe and useful**: connection errors, timeouts, responses cut short, the library's
//!   409 `in-flight`, and 429 / 502 / 503 / 504, with jittered exponential backoff that honours `Retry-After`
//!   (capped), bounded by attempts and total time ([`RetryPolicy`]). Never a 422 `key-reused` or another 4xx.
//! - **Typed answers**: the server library's problem documents come back as [`ClientError`] with a
//!   [`ProblemType`]; the key of every call is on its response ([`IdempotentCall`]) or its error.
//! - **Keys that survive a crash**: name a call's [`Operation`] and give the middleware a [`KeyJournal`]; the key
//!   is saved before the first send and reused when the caller, restarted, runs the operation again.
//! - **Testable timing**: the [`Clock`] is injectable; [`ManualClock`] records every wait.
//!
//! With `idempotent-runtime`, this crate is also `idempotent_runtime::client` (feature `client`).

mod call;
mod clock;
mod error;
mod journal;
mod middleware;
mod policy;
mod problem;

pub use crate::call::IdempotentCall;
pub use crate::clock::{Clock, ManualClock, Sleep, TokioClock};
pub use crate::error::{BoxError, ClientError, ErrorKind, Failure, GiveUpReason};
pub use crate::journal::{KeyJournal, MemoryJournal, Operation};
pub use crate::middleware::{IDEMPOTENCY_KEY, IdempotencyMiddleware};
pub use crate::policy::RetryPolicy;
pub use crate::problem::{Problem, ProblemType};
