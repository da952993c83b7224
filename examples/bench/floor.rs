//! The floor on PostgreSQL, hand-written: the least any PostgreSQL idempotency layer must do for a fresh key
//! (`floor_new`, `floor_new_tx`) and a replay (`floor_replay`), on a table made like the library's.

use actix_web::body::MessageBody as _;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use deadpool_postgres::{GenericClient as _, Pool};
use sha2::{Digest as _, Sha256};
use tokio_postgres::types::ToSql;

use crate::app::{Order, floor_answer, respond};

/// The floors' table in the run's schema (every PostgreSQL floor's records).
pub(crate) const FLOOR_TABLE: &str = "bench_floor_records";

/// The floor's table: the columns, constraints, primary key and storage options of `idempotency_records` (as
/// `sql/schema.sql` makes them), copied from the live table so that the two never drift apart.
pub(crate) async fn create_floor_table(client: &deadpool_postgres::Client) -> Result<(), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class \
             WHERE oid = 'idempotency_records'::regclass",
            &[],
        )
        .await?;
    let options: String = row.get(0);
    let with = if options.is_empty() { String::new() } else { format!(" WITH ({options})") };
    client
        .batch_execute(&format!("CREATE TABLE bench_floor_records (LIKE idempotency_records INCLUDING ALL){with}"))
        .await
}

/// A fresh key's claim: one autocommit statement, prepared. `ON CONFLICT DO NOTHING` and the row count say
/// whether the key was free; a real layer would then read the existing record (not on this path).
pub(crate) const FLOOR_CLAIM_SQL: &str = "
INSERT INTO bench_floor_records
    (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, 'in_progress',
        now() + make_interval(secs => $7), now() + make_interval(secs => $8))
ON CONFLICT DO NOTHING";

/// Storing the response: one autocommit statement, fenced by the claim's token.
pub(crate) const FLOOR_COMPLETE_SQL: &str = "
UPDATE bench_floor_records
SET state = 'completed', locked_until = NULL, completed_at = now(), expires_at = now() + make_interval(secs => $6),
    status = $7, header_names = $8, header_values = $9, body = $10
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4 AND token = $5 AND state = 'in_progress'";

/// A replay: one `SELECT` by primary key of what is needed to check the request and write the response out.
pub(crate) const FLOOR_READ_SQL: &str = "
SELECT fingerprint, status, header_names, header_values, body
FROM bench_floor_records
WHERE key_hash = $1 AND scope_hash = $2 AND method = $3 AND route = $4
  AND state = 'completed' AND expires_at > now()";

pub(crate) const FLOOR_LEASE_SECS: f64 = 30.0;
pub(crate) const FLOOR_TTL_SECS: f64 = 24.0 * 3600.0;

pub(crate) struct Floor {
    pub(crate) pool: Pool,
}

/// What any layer must compute per request: the record's identity and the request's fingerprint, with the same
/// SHA-256 over length-prefixed parts as the library.
pub(crate) struct Identity {
    pub(crate) key_hash: [u8; 32],
    pub(crate) scope_hash: [u8; 32],
    pub(crate) method: String,
    pub(crate) route: String,
    pub(crate) fingerprint: [u8; 32],
}

impl Identity {
    pub(crate) fn of(request: &HttpRequest, body: &[u8]) -> Option<Self> {
        let key = request.headers().get("idempotency-key")?.to_str().ok()?.trim();
        if key.is_empty() || key.len() > 255 {
            return None;
        }
        let route = request.match_pattern().unwrap_or_else(|| request.path().to_owned());
        let method = request.method().as_str().to_owned();
        // The library canonicalizes a non-empty query; these requests have none.
        let query = request.query_string();
        let fingerprint =
            hash_parts(&[method.as_bytes(), route.as_bytes(), request.path().as_bytes(), query.as_bytes(), body]);
        Some(Self {
            key_hash: hash_parts(&[key.as_bytes()]),
            scope_hash: hash_parts(&[b"global"]),
            method,
            route,
            fingerprint,
        })
    }
}

pub(crate) fn hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

impl Floor {
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, String> {
        let client = self.pool.get().await.map_err(|error| error.to_string())?;
        let statement = client.prepare_cached(sql).await.map_err(|error| error.to_string())?;
        client.execute(&statement, params).await.map_err(|error| error.to_string())
    }
}

/// Headers a layer must not store (hop-by-hop, transmission, cookies), as the library's contract says.
pub(crate) fn storable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "date"
            | "set-cookie"
            | "content-length"
    )
}

/// `floor_new`: claim (1 statement), the handler body, store the response (1 statement).
pub(crate) async fn floor_new(request: HttpRequest, body: Bytes, floor: web::Data<Floor>) -> HttpResponse {
    let Some(id) = Identity::of(&request, &body) else { return HttpResponse::BadRequest().finish() };
    let token = fastrand::i64(..);
    let claimed = floor
        .execute(
            FLOOR_CLAIM_SQL,
            &[
                &id.key_hash.as_slice(),
                &id.scope_hash.as_slice(),
                &id.method,
                &id.route,
                &id.fingerprint.as_slice(),
                &token,
                &FLOOR_LEASE_SECS,
                &FLOOR_TTL_SECS,
            ],
        )
        .await;
    match claimed {
        Ok(1) => {}
        Ok(_) => return HttpResponse::Conflict().finish(),
        Err(error) => return HttpResponse::ServiceUnavailable().body(error),
    }
    let (head, bytes) = match floor_answer(&body) {
        Ok(answer) => answer,
        Err(status) => return HttpResponse::build(status).finish(),
    };
    let status = i16::try_from(head.status().as_u16()).unwrap_or(i16::MAX);
    let names: Vec<&str> = head.headers().iter().filter(|(name, _)| storable(name)).map(|(n, _)| n.as_str()).collect();
    let values: Vec<&[u8]> =
        head.headers().iter().filter(|(name, _)| storable(name)).map(|(_, value)| value.as_bytes()).collect();
    let stored = floor
        .execute(
            FLOOR_COMPLETE_SQL,
            &[
                &id.key_hash.as_slice(),
                &id.scope_hash.as_slice(),
                &id.method,
                &id.route,
                &token,
                &FLOOR_TTL_SECS,
                &status,
                &names,
                &values,
                &bytes.as_ref(),
            ],
        )
        .await;
    if let Some(answer) = not_stored(stored) {
        return answer;
    }
    head.set_body(bytes).map_into_boxed_body()
}

/// A floor's completion must change exactly its record: otherwise the response was not stored, and the floor
/// answers this error (counted as one by the bench), never the response. Shared by the PostgreSQL floors.
pub(crate) fn not_stored(changed: Result<u64, String>) -> Option<HttpResponse> {
    match changed {
        Ok(1) => None,
        Ok(rows) => {
            Some(HttpResponse::InternalServerError().body(format!("floor: the completion changed {rows} rows")))
        }
        Err(error) => {
            Some(HttpResponse::ServiceUnavailable().body(format!("floor: could not store a response: {error}")))
        }
    }
}

/// `floor_replay`: one `SELECT` by primary key, the fingerprint check, and the stored response written out.
pub(crate) async fn floor_replay(request: HttpRequest, body: Bytes, floor: web::Data<Floor>) -> HttpResponse {
    let Some(id) = Identity::of(&request, &body) else { return HttpResponse::BadRequest().finish() };
    let row = async {
        let client = floor.pool.get().await.map_err(|error| error.to_string())?;
        let statement = client.prepare_cached(FLOOR_READ_SQL).await.map_err(|error| error.to_string())?;
        client
            .query_opt(&statement, &[&id.key_hash.as_slice(), &id.scope_hash.as_slice(), &id.method, &id.route])
            .await
            .map_err(|error| error.to_string())
    }
    .await;
    let row = match row {
        Ok(Some(row)) => row,
        Ok(None) => return HttpResponse::NotFound().finish(),
        Err(error) => return HttpResponse::ServiceUnavailable().body(error),
    };
    let fingerprint: &[u8] = row.get(0);
    if fingerprint != id.fingerprint {
        return HttpResponse::UnprocessableEntity().finish();
    }
    let status: i16 = row.get(1);
    let names: Vec<&str> = row.get(2);
    let values: Vec<&[u8]> = row.get(3);
    let stored_body: Option<Vec<u8>> = row.get(4);
    let Some(status) = u16::try_from(status).ok().and_then(|status| StatusCode::from_u16(status).ok()) else {
        return HttpResponse::InternalServerError().finish();
    };
    let mut response = HttpResponse::build(status);
    for (name, value) in names.iter().zip(&values) {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) else {
            return HttpResponse::InternalServerError().finish();
        };
        response.append_header((name, value));
    }
    response.insert_header(("idempotent-replayed", HeaderValue::from_static("true")));
    response.body(Bytes::from(stored_body.unwrap_or_default()))
}

/// `floor_new_tx`: the same two statements in one transaction on one connection held through the handler body:
/// `BEGIN` pipelined with the `INSERT`, then the `UPDATE` pipelined with `COMMIT` (one commit, one WAL flush).
pub(crate) async fn floor_new_tx(request: HttpRequest, body: Bytes, floor: web::Data<Floor>) -> HttpResponse {
    let Some(id) = Identity::of(&request, &body) else { return HttpResponse::BadRequest().finish() };
    let token = fastrand::i64(..);
    let client = match floor.pool.get().await {
        Ok(client) => client,
        Err(error) => return HttpResponse::ServiceUnavailable().body(error.to_string()),
    };
    let prepared = futures_util::future::try_join(
        client.prepare_cached(FLOOR_CLAIM_SQL),
        client.prepare_cached(FLOOR_COMPLETE_SQL),
    )
    .await;
    let Ok((claim, complete)) = prepared else { return HttpResponse::ServiceUnavailable().finish() };
    let params: [&(dyn ToSql + Sync); 8] = [
        &id.key_hash.as_slice(),
        &id.scope_hash.as_slice(),
        &id.method,
        &id.route,
        &id.fingerprint.as_slice(),
        &token,
        &FLOOR_LEASE_SECS,
        &FLOOR_TTL_SECS,
    ];
    let (begun, claimed) =
        futures_util::future::join(client.batch_execute("BEGIN"), client.execute(&claim, &params)).await;
    match (begun, claimed) {
        (Ok(()), Ok(1)) => {}
        (Ok(()), Ok(_)) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return HttpResponse::Conflict().finish();
        }
        (begun, claimed) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return HttpResponse::ServiceUnavailable().body(format!("{begun:?} {claimed:?}"));
        }
    }
    let Ok(order) = serde_json::from_slice::<Order>(&body) else {
        let _ = client.batch_execute("ROLLBACK").await;
        return HttpResponse::BadRequest().finish();
    };
    let response = respond(&order);

    let (head, body) = response.into_parts();
    let Ok(bytes) = body.try_into_bytes() else { return HttpResponse::InternalServerError().finish() };
    let status = i16::try_from(head.status().as_u16()).unwrap_or(i16::MAX);
    let names: Vec<&str> = head.headers().iter().filter(|(name, _)| storable(name)).map(|(n, _)| n.as_str()).collect();
    let values: Vec<&[u8]> =
        head.headers().iter().filter(|(name, _)| storable(name)).map(|(_, value)| value.as_bytes()).collect();
    let params: [&(dyn ToSql + Sync); 10] = [
        &id.key_hash.as_slice(),
        &id.scope_hash.as_slice(),
        &id.method,
        &id.route,
        &token,
        &FLOOR_TTL_SECS,
        &status,
        &names,
        &values,
        &bytes.as_ref(),
    ];
    let (stored, committed) =
        futures_util::future::join(client.execute(&complete, &params), client.batch_execute("COMMIT")).await;
    // The `UPDATE` is pipelined with the `COMMIT`: a completion that changed no row has committed nothing of the
    // response, and answers an error.
    if let Some(answer) = not_stored(committed.and(stored).map_err(|error| error.to_string())) {
        return answer;
    }
    head.set_body(bytes).map_into_boxed_body()
}
