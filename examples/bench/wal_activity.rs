//! What PostgreSQL wrote while a scale measurement ran (its warm-up included): WAL bytes and the checkpoints that
//! began. A checkpoint's sync phase holds up every commit's WAL flush behind it for a fraction of a second, and the
//! WAL a purge writes brings checkpoints sooner (about one per half of `max_wal_size` written), so a round's p99 is
//! read beside them.

use std::fmt;

use deadpool_postgres::Pool;

/// The server's WAL position and checkpoint count at one moment.
pub(crate) struct WalMark {
    wal_bytes: f64,
    checkpoints: i64,
}

/// What the server wrote between two marks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalActivity {
    pub(crate) megabytes: f64,
    pub(crate) checkpoints: i64,
}

const MARK_SQL: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8, \
                        (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)";

impl WalMark {
    pub(crate) async fn take(pool: &Pool) -> Result<Self, String> {
        let client = pool.get().await.map_err(|error| error.to_string())?;
        let row =
            client.query_one(MARK_SQL, &[]).await.map_err(|error| format!("reading the WAL position: {error}"))?;
        Ok(Self { wal_bytes: row.get(0), checkpoints: row.get(1) })
    }

    /// The WAL written and the checkpoints begun since this mark.
    pub(crate) async fn since(&self, pool: &Pool) -> Result<WalActivity, String> {
        let now = Self::take(pool).await?;
        Ok(WalActivity {
            megabytes: (now.wal_bytes - self.wal_bytes) / 1e6,
            checkpoints: now.checkpoints - self.checkpoints,
        })
    }
}

impl fmt::Display for WalActivity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.checkpoints == 1 { "" } else { "s" };
        write!(formatter, "WAL {:.0} MB, {} checkpoint{plural} began", self.megabytes, self.checkpoints)
    }
}
