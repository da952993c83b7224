//! How long a store looks for records of the old key layout ([`keys::Layout::V2`]): while any may still live, and not a
//! moment longer, so that a store that never had one pays nothing for them.
//!
//! Records of layout 2 are no longer created or extended, so the last one of them is gone at the latest expiry among
//! those that exist now. The first store to connect on a key prefix finds that instant with one `SCAN` of every master
//! (in the background: until it ends, the store looks for them) and writes it to a key of the prefix
//! ([`keys::old_window_key`], `0` when there was none); every later store reads it at `connect`. From that instant on
//! (by this process's clock, plus [`CLOCK_MARGIN`]) nothing looks for layout 2 any more.
//!
//! The window covers the records that exist when the first store of layout 3 scans. A process of an older release
//! still running beside it (a rolling deploy) neither sees layout 3's records nor is seen once the scan passed: as
//! between any two releases that store differently, run one release at a time on a prefix, or accept that a key
//! sent to both during the switch may run twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use redis::{Pipeline, Value};

use super::connection::{Connection, Master};
use super::keys;
use super::{bounded, codec, failed};
use crate::store::StoreError;

/// How far this process's clock may be behind Redis's without ending the window before the last record of layout 2
/// expired (the window's end is Redis's time).
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// How long a failed scan waits before it tries again (the store keeps looking for layout 2 meanwhile).
const RETRY_SCAN: Duration = Duration::from_secs(30);

/// Keys per `SCAN` call: large enough that a big keyspace takes few round trips, small enough that one call never
/// holds the server for long.
const SCAN_COUNT: u64 = 1_000;

/// The window's end while nobody knows it (a scan runs): look.
const UNKNOWN: u64 = u64::MAX;

/// Whether records of layout 2 may still live: the end of their window, in milliseconds since the Unix epoch by this
/// process's clock ([`UNKNOWN`] while a scan runs, `0` once past).
#[derive(Debug)]
pub(super) struct OldLayout {
    until: AtomicU64,
}

fn now_millis() -> u64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

impl OldLayout {
    /// Whether an operation should look for a record of layout 2 too.
    pub(super) fn open(&self) -> bool {
        let until = self.until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if until == UNKNOWN || now_millis() < until {
            return true;
        }
        // Past the window for good: later calls skip the clock.
        self.until.store(0, Ordering::Relaxed);
        false
    }

    /// Sets the window from the last expiry of layout 2's records in Redis's milliseconds (`0`: none).
    fn close_after(&self, last_expiry: u64) {
        let until = if last_expiry == 0 { 0 } else { last_expiry.saturating_add(CLOCK_MARGIN.as_millis() as u64) };
        self.until.store(until, Ordering::Relaxed);
    }

    /// The window of the store on `prefix`: read from Redis, or, if no store measured it yet, open until the scan
    /// this starts in the background ends.
    pub(super) async fn of(connection: &Connection, prefix: &str, timeout: Duration) -> Result<Arc<Self>, StoreError> {
        let window = Arc::new(Self { until: AtomicU64::new(UNKNOWN) });
        let marker = keys::old_window_key(prefix);
        let mut reading = connection.clone();
        let recorded: Option<u64> =
            bounded(timeout, async { redis::cmd("GET").arg(&marker).query_async(&mut reading).await.map_err(failed) })
                .await?;
        match recorded {
            Some(last_expiry) => window.close_after(last_expiry),
            None => {
                let scan = Scan { connection: connection.clone(), prefix: prefix.to_owned(), timeout, marker };
                tokio::spawn(scan.run(Arc::downgrade(&window)));
            }
        }
        Ok(window)
    }
}

/// The background scan for records of layout 2 under one prefix.
struct Scan {
    connection: Connection,
    prefix: String,
    timeout: Duration,
    marker: Vec<u8>,
}

impl Scan {
    /// Scans, then applies the window's end to the store and records it for the stores that start later (also when
    /// this store was dropped meanwhile: the record spares them the scan). A failed scan is tried again while the
    /// store lives.
    async fn run(mut self, window: Weak<OldLayout>) {
        loop {
            match self.last_expiry().await {
                Ok(last_expiry) => {
                    if let Some(window) = window.upgrade() {
                        window.close_after(last_expiry);
                    }
                    let mut command = redis::cmd("SET");
                    command.arg(&self.marker).arg(last_expiry);
                    let written = bounded(self.timeout, async {
                        command.query_async::<()>(&mut self.connection).await.map_err(failed)
                    });
                    if let Err(error) = written.await {
                        // This store knows the window; the next one to start scans again.
                        tracing::debug!(%error, "could not record the end of the old key layout's window");
                    }
                    return;
                }
                Err(error) => {
                    if window.strong_count() == 0 {
                        return;
                    }
                    tracing::warn!(
                        %error,
                        "could not scan Redis for idempotency records of the old key layout; \
                         looking for them on each claim until a scan succeeds"
                    );
                }
            }
            tokio::time::sleep(RETRY_SCAN).await;
        }
    }

    /// The latest expiry (Redis's milliseconds) among the records of layout 2 on every master; `0` when none.
    async fn last_expiry(&mut self) -> Result<u64, StoreError> {
        let pattern = keys::old_records_pattern(&self.prefix);
        let masters = bounded(self.timeout, async { self.connection.masters().await.map_err(failed) }).await?;
        let mut last = 0;
        for master in &masters {
            let mut cursor = 0u64;
            loop {
                let mut command = redis::cmd("SCAN");
                command.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(SCAN_COUNT);
                let connection = &mut self.connection;
                let reply = bounded(self.timeout, async { connection.on(master, command).await.map_err(failed) });
                let [next, found] = codec::array(reply.await?)?;
                cursor = u64::try_from(codec::int(next)?).map_err(|_| codec::corrupt("a negative SCAN cursor"))?;
                last = last.max(self.expiry_of(master, found).await?);
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(last)
    }

    /// The latest expiry among `keys` (a `SCAN` batch of one master).
    async fn expiry_of(&mut self, master: &Master, keys: Value) -> Result<u64, StoreError> {
        let Value::Array(keys) = keys else { return Err(codec::corrupt("SCAN did not answer a list of keys")) };
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipeline = Pipeline::with_capacity(keys.len());
        for key in keys {
            pipeline.cmd("PEXPIRETIME").arg(codec::bytes(key)?);
        }
        let connection = &mut self.connection;
        let replies =
            bounded(self.timeout, async { connection.pipeline_on(master, &pipeline).await.map_err(failed) }).await?;
        let mut last = 0;
        for reply in replies {
            last = last.max(match codec::int(reply)? {
                // Gone since the scan saw it.
                -2 => 0,
                // Without an expiry (not written by this store): it never ends the window.
                -1 => u64::MAX - 1,
                at => u64::try_from(at).unwrap_or(0),
            });
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_open_while_unknown_or_ahead_and_closes_for_good() {
        let window = OldLayout { until: AtomicU64::new(UNKNOWN) };
        assert!(window.open(), "while a scan runs");
        window.close_after(0);
        assert!(!window.open(), "no record of layout 2");
        window.close_after(now_millis() + 10_000);
        assert!(window.open(), "a record of layout 2 expires in 10 s");
        window.close_after(now_millis() - CLOCK_MARGIN.as_millis() as u64 - 1);
        assert!(!window.open(), "the last one expired");
        assert_eq!(window.until.load(Ordering::Relaxed), 0, "later calls skip the clock");
    }
}
