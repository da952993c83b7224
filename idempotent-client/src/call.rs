//! What the caller learns about a call that succeeded: its key and how many attempts it took.

/// Attached to every response the middleware returns, as a response extension.
///
/// ```no_run
/// # use idempotent_client::IdempotentCall;
/// # async fn example(client: reqwest_middleware::ClientWithMiddleware, url: &str) -> reqwest_middleware::Result<()> {
/// let response = client.post(url).body(r#"{"amount": 10}"#).send().await?;
/// let call = IdempotentCall::of(&response).expect("sent through the middleware");
/// println!("key {} took {} attempts", call.key(), call.attempts());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentCall {
    key: String,
    attempts: u32,
}

impl IdempotentCall {
    pub(crate) fn new(key: String, attempts: u32) -> Self {
        Self { key, attempts }
    }

    /// The call's record on a response the middleware returned.
    pub fn of(response: &reqwest::Response) -> Option<&Self> {
        response.extensions().get()
    }

    /// The `Idempotency-Key` every attempt carried.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Attempts sent, the successful one included (1 when no retry was needed).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Attempts beyond the first.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }
}
