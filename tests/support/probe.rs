//! What test handlers report: how often they ran, and a gate that holds requests marked `x-test-hold` inside
//! the handler until the test opens it (so "in flight" is a state the test controls, not a timing guess).

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::HttpRequest;
use tokio::sync::Semaphore;

pub struct Probe {
    runs: AtomicUsize,
    gate: Semaphore,
}

impl Default for Probe {
    fn default() -> Self {
        Self { runs: AtomicUsize::new(0), gate: Semaphore::new(0) }
    }
}

impl Probe {
    /// Counts a run (returning its number) and, for a held request, waits for the gate.
    pub async fn enter(&self, request: &HttpRequest) -> usize {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if request.headers().contains_key("x-test-hold") {
            self.gate.acquire().await.expect("gate never closes").forget();
        }
        run
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Lets `requests` held requests go on.
    pub fn open(&self, requests: usize) {
        self.gate.add_permits(requests);
    }
}
