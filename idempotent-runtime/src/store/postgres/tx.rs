//! `Tx`: the handler parameter that makes a route transactional (docs/contract.md, section 5).
//!
//! The claim, the handler's own SQL through `Tx`, and the stored response commit in ONE PostgreSQL transaction:
//! a crash anywhere rolls all of it back and frees the key at once, so the business rows exist exactly once.

use std::ops::Deref;
use std::sync::Arc;

use super::TransactionConnection;

/// The open transaction of a transactional route: run your queries on it as on any deadpool-postgres client
/// (`tx.execute(..)`, `tx.query(..)`, `tx.query_typed(..)`). It commits together with the stored response when
/// the handler's response is stored, and rolls back on 5xx, `Err`, panic, cancellation or crash.
///
/// Do not `COMMIT` or `ROLLBACK` through it yourself: the library owns the transaction's end.
///
/// Behind a transaction-mode pooler (PgBouncer), `tx.execute`/`tx.query` are fine (a statement prepared inside the
/// transaction is used and closed on its backend), but not `tx.prepare_cached`: the cached statement outlives the
/// transaction, and the connection's next transaction may run on another backend, where it does not exist.
///
/// **When to choose it**: when the handler's side effect is a write to the same PostgreSQL database (an order, a
/// ledger entry). Then a crash at any point leaves either everything (claim, rows, stored response) or nothing,
/// and the key is free again at once. Side effects elsewhere (an external API) are not covered by the
/// transaction: pass the idempotency key on to such APIs.
///
/// **What it costs**: one connection of the application's pool, held for the whole handler (plus `BEGIN` and
/// `COMMIT`, pipelined with the claim and the stored response, so no extra round trip of latency). Size the pool
/// for the concurrent transactional requests you expect.
///
/// **How it composes with the app's pool**: the store is built on the app's own pool
/// (`PostgresStore::new(pool.clone())`), so `Tx` is one of the app's connections. Other code in the handler may
/// still take another connection from the pool for work that must commit regardless (an audit log), at the cost
/// of a second connection.
///
/// ```no_run
/// use actix_web::{App, HttpResponse, HttpServer, error, post, web};
/// use idempotent_runtime::{Idempotency, PostgresStore, Tx, idempotent};
///
/// #[derive(serde::Deserialize)]
/// struct NewOrder {
///     item: String,
///     qty: i32,
/// }
///
/// #[post("/orders")]
/// #[idempotent(scope = "user")]
/// async fn create_order(tx: Tx, order: web::Json<NewOrder>) -> actix_web::Result<HttpResponse> {
///     tx.execute("INSERT INTO orders (item, qty) VALUES ($1, $2)", &[&order.item, &order.qty])
///         .await
///         .map_err(error::ErrorInternalServerError)?; // a 5xx rolls the insert back with the claim
///     Ok(HttpResponse::Created().finish())
/// }
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let mut config = deadpool_postgres::Config::new();
///     config.url = Some("postgres://postgres@127.0.0.1:5432/postgres".into());
///     let pool = config.create_pool(None, tokio_postgres::NoTls).expect("a valid pool configuration");
///     let store = PostgresStore::new(pool);
///     store.migrate().await.expect("the idempotency table");
///     let idempotency = Idempotency::builder(store).user_resolver(|_| Some("alice".into())).build();
///     HttpServer::new(move || App::new().app_data(idempotency.clone()).service(create_order))
///         .bind(("127.0.0.1", 8080))?
///         .run()
///         .await
/// }
/// ```
pub struct Tx {
    connection: Arc<TransactionConnection>,
    /// What [`Tx::enqueue`] needs: the record's digest, the position counter, the outbox's statements.
    outbox: Arc<crate::outbox::TxOutbox>,
    /// `!Send`: a `Tx` moved into a spawned task would outlive the request and keep its transaction open.
    _request_bound: std::marker::PhantomData<std::rc::Rc<()>>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl Tx {
    /// The handle of a claim's transaction; `outbox` is shared by every `Tx` lent for that transaction, so the
    /// positions of its enqueues never repeat.
    pub(crate) fn new(connection: Arc<TransactionConnection>, outbox: Arc<crate::outbox::TxOutbox>) -> Self {
        Self { connection, outbox, _request_bound: std::marker::PhantomData }
    }

    /// The transaction's outbox context, for [`Tx::enqueue`].
    pub(crate) fn outbox_context(&self) -> &crate::outbox::TxOutbox {
        &self.outbox
    }
}

impl Deref for Tx {
    type Target = deadpool_postgres::ClientWrapper;

    fn deref(&self) -> &deadpool_postgres::ClientWrapper {
        &self.connection
    }
}
