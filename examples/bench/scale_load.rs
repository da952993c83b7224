//! Filling the table for the scale run: records of a busy service, written with `COPY`, then settled.

use std::pin::pin;
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::Pool;
use sha2::{Digest as _, Sha256};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::{app, load};

pub(super) struct Loaded {
    pub(super) rows: u64,
    pub(super) seconds: f64,
}

impl Loaded {
    pub(super) fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// Streams records `from..to` (of `total`, spread over `window` ending at `now`) into the table with a binary COPY.
pub(super) async fn copy_records(
    pool: &Pool,
    from: u64,
    to: u64,
    total: u64,
    now: SystemTime,
    window: Duration,
) -> Result<Loaded, String> {
    const COLUMNS: [Type; 15] = [
        Type::BYTEA,
        Type::BYTEA,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::INT8,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::INT2,
        Type::TEXT_ARRAY,
        Type::BYTEA_ARRAY,
        Type::BYTEA,
    ];
    let started = Instant::now();
    let client = pool.get().await.map_err(|error| error.to_string())?;
    let sink = client
        .copy_in(
            "COPY idempotency_records (key_hash, scope_hash, method, route, fingerprint, token, state, locked_until, \
             expires_at, created_at, completed_at, status, header_names, header_values, body) \
             FROM STDIN (FORMAT binary)",
        )
        .await
        .map_err(|error| format!("COPY: {error}"))?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &COLUMNS));
    let scope_hash = hash_parts(&[b"global"]);
    let header_names: &[&str] = &["content-type"];
    let header_values: &[&[u8]] = &[b"application/json"];
    let body = load::body_for(0);
    let ttl = Duration::from_secs(24 * 3600);
    let start_of_window = now - window;
    let no_lease: Option<SystemTime> = None;
    let mut fingerprint = [0u8; 32];
    let mut reported = Instant::now();
    for n in from..to {
        let key_hash = hash_parts(&[b"preload", &n.to_be_bytes()]);
        fastrand::fill(&mut fingerprint);
        let created_at = start_of_window + window.mul_f64(n as f64 / total as f64);
        let expires_at = created_at + ttl;
        let completed_at = created_at + Duration::from_millis(15);
        let token = fastrand::i64(..);
        let row: [&(dyn ToSql + Sync); 15] = [
            &key_hash.as_slice(),
            &scope_hash.as_slice(),
            &"POST",
            &app::LIB_PATH,
            &fingerprint.as_slice(),
            &token,
            &"completed",
            &no_lease,
            &expires_at,
            &created_at,
            &completed_at,
            &200i16,
            &header_names,
            &header_values,
            &body.as_ref(),
        ];
        writer.as_mut().write(&row).await.map_err(|error| format!("COPY: {error}"))?;
        if reported.elapsed() >= Duration::from_secs(10) {
            reported = Instant::now();
            let done = n + 1 - from;
            println!(
                "  {done} rows in {:.0} s ({:.0} rows/s)",
                started.elapsed().as_secs_f64(),
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let rows = writer.as_mut().finish().await.map_err(|error| format!("COPY: {error}"))?;
    let loaded = Loaded { rows, seconds: started.elapsed().as_secs_f64() };
    println!("  loaded {rows} rows in {:.1} s ({:.0} rows/s)", loaded.seconds, loaded.rows_per_second());
    Ok(loaded)
}

pub(super) fn hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// What a table looks like some time after a bulk load: vacuumed and analyzed; and no checkpoint due in the
/// middle of the next measurement.
pub(super) async fn settle(pool: &Pool) -> Result<(), String> {
    let client = pool.get().await.map_err(|error| error.to_string())?;
    client.batch_execute("VACUUM (ANALYZE) idempotency_records").await.map_err(|error| format!("VACUUM: {error}"))?;
    client.batch_execute("CHECKPOINT").await.map_err(|error| format!("CHECKPOINT: {error}"))
}

/// Expires every live completed record, so that a second purge measurement has rows to delete after the first one
/// swept the expired half; then settles the table again. Returns how many records it expired.
pub(super) async fn expire_again(pool: &Pool) -> Result<u64, String> {
    let client = pool.get().await.map_err(|error| error.to_string())?;
    let expired = client
        .execute(
            "UPDATE idempotency_records SET expires_at = now() - interval '1 hour' \
             WHERE state = 'completed' AND expires_at > now()",
            &[],
        )
        .await
        .map_err(|error| format!("expiring the live records: {error}"))?;
    drop(client);
    settle(pool).await?;
    Ok(expired)
}

pub(super) async fn table_size(pool: &Pool) -> Result<u64, String> {
    let client = pool.get().await.map_err(|error| error.to_string())?;
    let row = client
        .query_one("SELECT pg_total_relation_size('idempotency_records')", &[])
        .await
        .map_err(|error| error.to_string())?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}
