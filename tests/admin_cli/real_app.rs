//! The CLI against the records of a real app (routes, keys, scopes as requests make them), and its release waking
//! requests that wait.

use super::*;

#[post("/orders")]
#[idempotent(scope = "header:X-Tenant-Id")]
async fn create_order(body: String) -> HttpResponse {
    HttpResponse::Created().insert_header(("x-order", "1")).body(format!("order: {body}"))
}

#[post("/payments")]
#[idempotent(scope = "user")]
async fn create_payment() -> HttpResponse {
    HttpResponse::Ok().body("paid")
}

#[actix_web::test]
async fn records_of_a_real_app_are_found_by_their_raw_key_and_scope() {
    let db = Fixture::new().await;
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let app = actix_test::init_service(
        App::new()
            .app_data(
                Idempotency::builder(store)
                    .user_resolver(|request: &HttpRequest| {
                        request
                            .headers()
                            .get("authorization")?
                            .to_str()
                            .ok()?
                            .strip_prefix("Bearer ")
                            .map(str::to_owned)
                    })
                    .build(),
            )
            .service(create_order)
            .service(create_payment),
    )
    .await;
    let order = actix_test::TestRequest::post()
        .uri("/orders")
        .insert_header(("Idempotency-Key", "order-1"))
        .insert_header(("X-Tenant-Id", "acme"))
        .set_payload("two pizzas")
        .to_request();
    assert_eq!(actix_test::call_service(&app, order).await.status(), StatusCode::CREATED);
    let payment = actix_test::TestRequest::post()
        .uri("/payments")
        .insert_header(("Idempotency-Key", "\"pay-1\""))
        .insert_header(("Authorization", "Bearer alice"))
        .to_request();
    assert_eq!(actix_test::call_service(&app, payment).await.status(), StatusCode::OK);

    let order = db.admin(&["show", "--key", "order-1", "--scope", "header:X-Tenant-Id=acme", "--json"]).expect(0);
    let order = &order.json()["records"][0];
    assert_eq!((order["route"].as_str(), order["method"].as_str()), (Some("/orders"), Some("POST")));
    assert_eq!((order["status"].as_u64(), order["body_len"].as_u64()), (Some(201), Some(17)));
    assert_eq!(order["header_names"], serde_json::json!(["x-order"]));
    db.admin(&["show", "--key", "order-1", "--scope", "header:X-Tenant-Id=other"]).expect(1);
    db.admin(&["show", "--key", "order-1", "--scope", "function:acme"]).expect(1);

    let payment = db.admin(&["show", "--key", "pay-1", "--scope", "user:alice"]).expect(0);
    assert!(payment.stdout.contains("status        200\n"), "{}", payment.stdout);
    db.admin(&["release", "--key", "pay-1", "--scope", "user:alice"]).expect(1);
    db.finish().await;
}

/// Releasing a record by hand wakes the requests waiting for it (`on_conflict = "wait"`), as its owner's release
/// does: they learn at once that the key is free instead of sleeping until their timeout.
#[actix_web::test]
async fn admin_release_wakes_waiting_requests() {
    let schema = TestSchema::create().await;
    let store = PostgresStore::new(schema.pool(4)).with_listener(schema.config());
    store.migrate().await.expect("migrate");
    let scope = Scope::User("carol".to_owned());
    let id = RecordId {
        scope_hash: scope.hash(),
        key_hash: admin::key_hash("stuck"),
        method: "POST".into(),
        route: "/pay".into(),
    };
    let claim = ClaimRequest {
        id: id.clone(),
        fingerprint: [1; 32],
        token: 7,
        lease: Duration::from_secs(3600),
        ttl: Duration::from_secs(3600),
    };
    store.claim(&claim).await.expect("claim");

    let started = std::time::Instant::now();
    let waiting = store.wait(&id, Duration::from_secs(20));
    let releasing = async {
        // The waiter subscribes, then marks the record (`has_waiters`): once marked, a release wakes it.
        let client = schema.pool(1).get().await.expect("connect");
        let subscribed = std::time::Instant::now();
        loop {
            let marked: bool = client
                .query_one(
                    "SELECT has_waiters FROM idempotency_records WHERE key_hash = $1 AND scope_hash = $2",
                    &[&id.key_hash.as_slice(), &id.scope_hash.as_slice()],
                )
                .await
                .expect("the claimed record")
                .get(0);
            if marked {
                break;
            }
            assert!(subscribed.elapsed() < Duration::from_secs(10), "the waiter never marked the record");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        admin::release(&store, &admin::Selector::new("stuck", &scope), true).await.expect("release")
    };
    let (waited, released) = tokio::join!(waiting, releasing);
    waited.expect("wait");
    assert!(matches!(released, admin::ReleaseOutcome::Released { .. }), "{released:?}");
    // Notified: well before the waiter's own look at the record, which comes a second after it subscribed.
    assert!(started.elapsed() < Duration::from_millis(800), "woken by the release's notification, not a later look");
    assert_eq!(store.read(&id).await.expect("read"), None);
    drop(store);
    schema.drop_schema().await;
}
