//! Keyed scope digests over HTTP, on the memory store and on PostgreSQL (issue 29): with a secret the record is
//! not under SHA-256 of the scope; a record written without the secret is answered by a server with it during the
//! transition (the handler does not run again) and not after it; a fresh claim defers to one made at the same
//! moment under the other digest.

#[macro_use]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service};
use actix_web::{App, HttpRequest, HttpResponse, post, web};
use idempotent_runtime::store::{
    Attempt, Claim, ClaimRequest, Completion, KeyStatus, LeaseState, Record, RecordId, StoredResponse,
};
use idempotent_runtime::{
    Digest, Idempotency, IdempotencyBuilder, ScopeSecret, ScopeValue, Store, StoreError, async_trait, idempotent,
    key_digest, scope_digest,
};
use support::probe::Probe;

const SECRET: &[u8] = b"the test deployment secret, 32 bytes or more";

fn bearer(request: &HttpRequest) -> Option<String> {
    request.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
}

#[post("/payments")]
#[idempotent(ttl = "1h")]
async fn pay(probe: web::Data<Probe>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = probe.enter(&request).await;
    HttpResponse::Created().body(format!("payment {run}: {}", String::from_utf8_lossy(&body)))
}

fn secret() -> ScopeSecret {
    ScopeSecret::new(SECRET).unwrap()
}

fn builder(store: &Arc<dyn Store>) -> IdempotencyBuilder {
    Idempotency::builder(Arc::clone(store)).user_resolver(bearer)
}

macro_rules! app {
    ($idempotency:expr, $probe:expr) => {
        init_service(App::new().app_data($idempotency.build()).app_data($probe.clone()).service(pay)).await
    };
}

/// Sends a payment of alice's; `(status, replayed, body)`.
macro_rules! pay {
    ($app:expr, $key:expr, $body:expr) => {
        pay!($app, TestRequest::post(), $key, $body)
    };
    ($app:expr, $request:expr, $key:expr, $body:expr) => {{
        let request = $request
            .uri("/payments")
            .insert_header(("Authorization", "Bearer alice"))
            .insert_header(("Idempotency-Key", $key))
            .set_payload($body);
        let response = call_service($app, request.to_request()).await;
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        (status, replayed, String::from_utf8_lossy(&body).into_owned())
    }};
}

fn alice() -> ScopeValue<'static> {
    ScopeValue::User("alice")
}

async fn lookup(store: &Arc<dyn Store>, scope: Digest, key: &str) -> Option<KeyStatus> {
    store.lookup(&scope, &key_digest(key)).await.unwrap()
}

async fn a_secret_keys_the_stored_scope(store: Arc<dyn Store>) {
    let probe = web::Data::new(Probe::default());
    let app = app!(builder(&store).scope_secret(secret()), probe);

    let first = pay!(&app, "k-1", "10 EUR");
    assert_eq!((first.0, first.1), (StatusCode::CREATED, false));
    assert!(lookup(&store, secret().digest(alice()), "k-1").await.is_some(), "stored under the keyed digest");
    assert!(lookup(&store, scope_digest(alice()), "k-1").await.is_none(), "not under SHA-256 of the scope");
    let retry = pay!(&app, "k-1", "10 EUR");
    assert_eq!((retry.0, retry.1, retry.2), (StatusCode::CREATED, true, first.2));
    assert_eq!(probe.runs(), 1);
}

async fn unkeyed_records_are_answered_until_the_transition_ends(store: Arc<dyn Store>) {
    let probe = web::Data::new(Probe::default());
    let before = app!(builder(&store), probe);
    let until = SystemTime::now() + Duration::from_secs(3600);
    let during = app!(builder(&store).scope_secret(secret()).reading_unkeyed_scopes_until(until), probe);

    let original = pay!(&before, "k-old", "10 EUR");
    assert_eq!(original.0, StatusCode::CREATED);
    assert!(lookup(&store, scope_digest(alice()), "k-old").await.is_some(), "written without the secret");

    // A retry reaching an upgraded server is a replay of the unkeyed record: the handler does not run again.
    let retry = pay!(&during, "k-old", "10 EUR");
    assert_eq!((retry.0, retry.1, retry.2), (StatusCode::CREATED, true, original.2.clone()));
    assert_eq!(probe.runs(), 1);
    // The same key for another request is refused from the unkeyed record too.
    assert_eq!(pay!(&during, "k-old", "99 EUR").0, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(lookup(&store, secret().digest(alice()), "k-old").await.is_none(), "nothing was claimed keyed");

    // An original in flight on a server without the secret: the upgraded server answers 409, without running.
    let hold = async { pay!(&before, TestRequest::post().insert_header(("x-test-hold", "1")), "k-held", "5 EUR") };
    let (held, duplicate) = tokio::join!(hold, async {
        assert!(support::eventually(Duration::from_secs(10), || probe.runs() == 2).await, "the original runs");
        let duplicate = pay!(&during, "k-held", "5 EUR");
        probe.open(1);
        duplicate
    });
    assert_eq!(duplicate.0, StatusCode::CONFLICT, "{}", duplicate.2);
    assert_eq!((held.0, held.1), (StatusCode::CREATED, false));
    assert_eq!(probe.runs(), 2);

    // A new key on the upgraded server is claimed keyed.
    assert_eq!(pay!(&during, "k-new", "20 EUR").0, StatusCode::CREATED);
    assert!(lookup(&store, secret().digest(alice()), "k-new").await.is_some());
    assert!(lookup(&store, scope_digest(alice()), "k-new").await.is_none());

    // After the transition the unkeyed record is not looked for: the old key is a fresh request.
    let ended = SystemTime::now() - Duration::from_secs(1);
    let after = app!(builder(&store).scope_secret(secret()).reading_unkeyed_scopes_until(ended), probe);
    let fresh = pay!(&after, "k-old", "10 EUR");
    assert_eq!((fresh.0, fresh.1), (StatusCode::CREATED, false));
    assert_eq!(probe.runs(), 4);
}

/// A store on which another process (on step 1 of the upgrade: claiming unkeyed) claims the same request at the
/// moment this one does: after its look at the unkeyed digest, before its keyed claim.
struct ConcurrentUnkeyedClaim {
    inner: Arc<dyn Store>,
    keyed: Digest,
    unkeyed: Digest,
    done: AtomicBool,
}

#[async_trait]
impl Store for ConcurrentUnkeyedClaim {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        if request.id.scope_hash == self.keyed && !self.done.swap(true, Ordering::SeqCst) {
            let id = RecordId { scope_hash: self.unkeyed, ..request.id.clone() };
            let other = ClaimRequest { id, token: request.token.wrapping_add(1), ..request.clone() };
            assert!(matches!(self.inner.claim(&other).await?, Claim::Acquired { .. }));
        }
        self.inner.claim(request).await
    }
    async fn heartbeat(&self, attempt: &Attempt, duration: Duration) -> Result<LeaseState, StoreError> {
        self.inner.heartbeat(attempt, duration).await
    }
    async fn complete(
        &self,
        attempt: &Attempt,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Completion, StoreError> {
        self.inner.complete(attempt, response, ttl).await
    }
    async fn release(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.inner.release(attempt).await
    }
    async fn read(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.inner.read(id).await
    }
    async fn lookup(&self, scope_hash: &Digest, key_hash: &Digest) -> Result<Option<KeyStatus>, StoreError> {
        self.inner.lookup(scope_hash, key_hash).await
    }
}

async fn a_fresh_claim_defers_to_a_concurrent_one_under_the_other_digest(store: Arc<dyn Store>) {
    let probe = web::Data::new(Probe::default());
    let racing: Arc<dyn Store> = Arc::new(ConcurrentUnkeyedClaim {
        inner: Arc::clone(&store),
        keyed: secret().digest(alice()),
        unkeyed: scope_digest(alice()),
        done: AtomicBool::new(false),
    });
    let until = SystemTime::now() + Duration::from_secs(3600);
    let during = app!(builder(&racing).scope_secret(secret()).reading_unkeyed_scopes_until(until), probe);

    let answer = pay!(&during, "k-race", "10 EUR");
    assert_eq!(answer.0, StatusCode::CONFLICT, "the other claim is in flight: {}", answer.2);
    assert_eq!(probe.runs(), 0, "the handler runs only under the other claim");
    assert!(lookup(&store, secret().digest(alice()), "k-race").await.is_none(), "the keyed claim was released");
    assert!(lookup(&store, scope_digest(alice()), "k-race").await.is_some());
}

async fn the_two_steps_of_a_rolling_upgrade_answer_each_other(store: Arc<dyn Store>) {
    let probe = web::Data::new(Probe::default());
    let step_1 = app!(builder(&store).scope_secret(secret()).claiming_unkeyed_scopes(), probe);
    let until = SystemTime::now() + Duration::from_secs(3600);
    let step_2 = app!(builder(&store).scope_secret(secret()).reading_unkeyed_scopes_until(until), probe);

    let on_1 = pay!(&step_1, "k-1", "10 EUR");
    assert!(lookup(&store, scope_digest(alice()), "k-1").await.is_some(), "step 1 claims unkeyed");
    let on_2 = pay!(&step_2, "k-2", "20 EUR");
    assert!(lookup(&store, secret().digest(alice()), "k-2").await.is_some(), "step 2 claims keyed");
    assert_eq!(pay!(&step_2, "k-1", "10 EUR"), (StatusCode::CREATED, true, on_1.2));
    assert_eq!(pay!(&step_1, "k-2", "20 EUR"), (StatusCode::CREATED, true, on_2.2));
    assert_eq!(probe.runs(), 2);
}

on_store!(memory, store => std::sync::Arc::clone(&store.store);
    a_secret_keys_the_stored_scope, unkeyed_records_are_answered_until_the_transition_ends,
    a_fresh_claim_defers_to_a_concurrent_one_under_the_other_digest,
    the_two_steps_of_a_rolling_upgrade_answer_each_other,);
on_store!(postgres, store => std::sync::Arc::clone(&store.store);
    a_secret_keys_the_stored_scope, unkeyed_records_are_answered_until_the_transition_ends,
    a_fresh_claim_defers_to_a_concurrent_one_under_the_other_digest,
    the_two_steps_of_a_rolling_upgrade_answer_each_other,);
