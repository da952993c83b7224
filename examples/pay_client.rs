//! Creates payments against the `payments` example through the client middleware, one after another.
//!
//! ```text
//! cargo run --example payments &
//! cargo run --example pay_client -- --url http://127.0.0.1:8080 --count 10 [--user alice]
//! ```
//!
//! Each payment (a random amount 1..=1000, EUR) is one call with its own `Idempotency-Key`, which the middleware
//! keeps across retries, so a retried call never pays twice. The last line sums up, for tools to read:
//! `pay_client: created=N keys=N retries=R failed=F`; the exit status is non-zero if any payment failed.

use std::collections::HashSet;
use std::process::ExitCode;

use clap::Parser;
use idempotent_runtime::client::{ClientError, IdempotencyMiddleware, IdempotentCall};
use serde_json::json;

/// Creates payments through the idempotency middleware.
#[derive(Parser)]
struct Args {
    /// Base URL of the payments example, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    /// How many payments to create.
    #[arg(long)]
    count: u32,
    /// The user to pay as (sent as `Authorization: Bearer <user>`).
    #[arg(long, default_value = "client-demo")]
    user: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let client =
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(IdempotencyMiddleware::new()).build();
    let endpoint = format!("{}/payments", args.url.trim_end_matches('/'));
    let (mut created, mut failed, mut retries) = (0u32, 0u32, 0u32);
    let mut keys = HashSet::new();
    for _ in 0..args.count {
        let payment = json!({"amount": fastrand::i64(1..=1000), "currency": "EUR"});
        let sent = client.post(&endpoint).bearer_auth(&args.user).json(&payment).send().await;
        match sent {
            Ok(response) => {
                let call = IdempotentCall::of(&response).cloned();
                if let Some(call) = &call {
                    keys.insert(call.key().to_owned());
                    retries += call.retries();
                }
                let status = response.status();
                if status == reqwest::StatusCode::CREATED {
                    created += 1;
                } else {
                    failed += 1;
                    let body = response.text().await.unwrap_or_default();
                    eprintln!("pay_client: payment refused with {status}: {body}");
                }
            }
            Err(error) => {
                failed += 1;
                if let Some(failure) = ClientError::of(&error) {
                    keys.insert(failure.key().to_owned());
                    retries += failure.attempts().saturating_sub(1);
                    eprintln!("pay_client: payment with key {} failed: {failure}", failure.key());
                } else {
                    eprintln!("pay_client: payment failed: {error}");
                }
            }
        }
    }
    println!("pay_client: created={created} keys={} retries={retries} failed={failed}", keys.len());
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
