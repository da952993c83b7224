//! The probe that tells, before a store sends its first named statement, whether the pool's connections may use
//! named statements: they reach PostgreSQL directly (or through a session-mode pooler), or through a
//! transaction-mode pooler that tracks protocol-level prepared statements (PgBouncer >= 1.21 with
//! `max_prepared_statements`), or through one that does not (PgBouncer 1.20 and older in transaction mode).
//!
//! It must decide before the first named statement, not after: behind a pooler that does not track them, a name
//! such as `s3` (tokio-postgres numbers its statements per process) may already name another process's
//! statement on the backend a round trip reaches, and a `Bind` there would run that statement with this one's
//! arguments. So the probe sends named statements only where running another's would be harmless (see
//! [`tracking`]), and nothing named at all unless round trips were seen to be multiplexed.
//!
//! Two connections of the pool take part. The second one pins a backend with an open transaction (a pooler
//! gives it the backend it has free, most often the one the first connection just used), so that the first
//! connection's next round trip must go elsewhere if anything multiplexes it.

use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::SimpleQueryMessage;

/// How often each test pins a backend and looks: a pooler that multiplexes shows it on the first look unless
/// other clients take the backends in between, and then it shows it by itself, as a backend that changes from
/// one look to the next.
const LOOKS: usize = 6;

/// How long the first connection may wait for an answer while the second holds a transaction. On a direct
/// connection the answer comes in milliseconds; a pooler with one server connection answers only once the
/// transaction ends.
const PINNED_ANSWER: Duration = Duration::from_secs(1);

/// How long the probe waits for each of its two connections: no longer than a pool that has one idle, or room
/// for one more, takes to lend it. A busy pool is probed later instead of lending the probe connections its
/// requests are waiting for.
const LEND_WAIT: Duration = Duration::from_millis(50);

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finding {
    /// One client connection kept its backend, and no backend served two client connections.
    Direct,
    /// Round trips are multiplexed over backends, and a named statement ran on backends it was not prepared on.
    TrackingPooler,
    /// Round trips are multiplexed over backends, and named statements do not follow them (the evidence).
    NonTrackingPooler(String),
    /// The probe could not tell (the reason); the caller picks the safe side.
    Unknown(String),
}

/// Runs the probe on two connections of `pool`. An error (the pool lent no connections at once, the server
/// failed) decides nothing: the caller probes again later.
pub(crate) async fn probe(pool: &Pool) -> Result<Finding, String> {
    if pool.status().max_size < 2 {
        return Ok(Finding::Unknown("a pool of one connection cannot be probed".to_owned()));
    }
    // Bounded here, not by the pool's own timeouts: they need a runtime set on the pool, which the app may not set.
    let lend = || async {
        match tokio::time::timeout(LEND_WAIT, pool.get()).await {
            Ok(lent) => lent.map_err(|error| format!("no connection for the probe: {error}")),
            Err(_) => Err("the pool lent no connection at once".to_owned()),
        }
    };
    let first = lend().await?;
    let second = lend().await?;
    let looked = async {
        if !multiplexed(&first, &second).await? {
            return Ok(Finding::Direct);
        }
        tracking(&first, &second).await
    };
    looked.await.map_err(|error: tokio_postgres::Error| {
        // A failure may have left a transaction open on either connection: neither goes back to the pool.
        drop((Object::take(first), Object::take(second)));
        format!("the probe failed: {}", super::describe(&error))
    })
}

/// Whether one client connection's round trips reach more than one backend: its backend changes while another
/// connection holds a transaction, or the other connection is given its backend.
///
/// Only what a direct connection always shows counts as direct: each connection keeps one backend across every
/// look, and the two backends differ. A single look can be fooled by other clients of a pooler: one of them takes
/// the backend the first connection just released (so the second is given another) and releases it just in time
/// for the first connection's next round trip. The same theft at every look, landing on the same two backends each
/// time, is what the constancy across looks rules out.
async fn multiplexed(first: &Object, second: &Object) -> Result<bool, tokio_postgres::Error> {
    let mut seen: Option<(i32, i32)> = None;
    for _ in 0..LOOKS {
        let before = backend_pid(first).await?;
        let pinned = pin(second).await?;
        let after = tokio::time::timeout(PINNED_ANSWER, backend_pid(first)).await;
        second.batch_execute("ROLLBACK").await?;
        // Served only once the other connection's transaction ended: they share one backend.
        let Ok(after) = after else { return Ok(true) };
        if pinned == before || after? != before {
            return Ok(true);
        }
        if *seen.get_or_insert((before, pinned)) != (before, pinned) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a named statement prepared once runs on other backends too: it must answer from two backends. A pooler
/// lends the server connection released last: the first look runs where the statement was prepared, the second
/// (while the other connection holds that backend) elsewhere.
///
/// Its text carries a number drawn for this probe, and it takes no argument. Behind a pooler that does not track
/// statements, its name may reach a backend where another process prepared the same name: if that was another
/// probe, its answer shows a different number (found out, and harmless: it reads two values). A statement of the
/// application's own under that name would run, but such statements are unsafe behind that pooler already.
async fn tracking(first: &Object, second: &Object) -> Result<Finding, tokio_postgres::Error> {
    let nonce = fastrand::i64(1..);
    let statement = first.prepare(&format!("SELECT {nonce}::int8 AS nonce, pg_backend_pid() AS pid")).await?;
    let mut backends = Vec::new();
    let mut finding = Finding::Unknown("the named statement answered from one backend only".to_owned());
    for look in 0..LOOKS {
        // Every other look the second connection pins the backend a pooler would lend next, so that the first
        // one's looks alternate between two backends.
        let pinning = look % 2 == 1;
        if pinning {
            pin(second).await?;
        }
        let answer = tokio::time::timeout(PINNED_ANSWER, first.query(&statement, &[])).await;
        if pinning {
            second.batch_execute("ROLLBACK").await?;
        }
        let rows = match answer {
            Err(_) => {
                finding = Finding::Unknown("the pooler serves one backend at a time".to_owned());
                break;
            }
            Ok(Err(error)) if error.as_db_error().is_some() => {
                finding = Finding::NonTrackingPooler(super::describe(&error));
                break;
            }
            Ok(answer) => answer?,
        };
        let row = rows.first();
        let (answered, pid) = match row.map(|row| (row.try_get::<_, i64>("nonce"), row.try_get::<_, i32>("pid"))) {
            Some((Ok(answered), Ok(pid))) => (answered, pid),
            _ => (0, 0),
        };
        if answered != nonce {
            finding = Finding::NonTrackingPooler("the statement's name ran another statement".to_owned());
            break;
        }
        if !backends.contains(&pid) {
            backends.push(pid);
        }
        if backends.len() >= 2 {
            finding = Finding::TrackingPooler;
            break;
        }
    }
    if finding != Finding::TrackingPooler {
        // Dropping it would send `Close` for its name, which behind such a pooler may reach another process's
        // statement of that name and close it. One small statement per process is kept instead.
        std::mem::forget(statement);
    }
    Ok(finding)
}

/// The backend this round trip reached.
async fn backend_pid(client: &Object) -> Result<i32, tokio_postgres::Error> {
    Ok(first_pid(&client.simple_query("SELECT pg_backend_pid()").await?))
}

/// Opens a transaction on `client`, which holds its backend until `ROLLBACK`, and returns that backend.
async fn pin(client: &Object) -> Result<i32, tokio_postgres::Error> {
    Ok(first_pid(&client.simple_query("BEGIN; SELECT pg_backend_pid()").await?))
}

/// The first column of the first row, as a backend's pid (0 when absent or unreadable, which PostgreSQL never sends).
fn first_pid(messages: &[SimpleQueryMessage]) -> i32 {
    messages
        .iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).and_then(|pid| pid.parse().ok()),
            _ => None,
        })
        .unwrap_or(0)
}
