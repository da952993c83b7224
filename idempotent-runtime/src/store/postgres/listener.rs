//! The one `LISTEN` connection of a [`super::PostgresStore`], for `on_conflict = "wait"`.
//!
//! Pooled connections cannot receive notifications (deadpool drives their protocol stream), so waiting uses a
//! dedicated connection, opened on the first wait and reopened after a failure. A notification names a record by
//! the hex digest of its identity; every waiter of that record is woken and claims again.
//!
//! The connection must reach PostgreSQL directly: a transaction-mode pooler accepts `LISTEN` but delivers the
//! notifications to whichever client shares the backend next. When it cannot connect, waiters poll the record
//! instead (see [`super::PostgresStore::with_listener`]), and it tries again after [`RECONNECT_PAUSE`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use crate::digest::Digest;
use crate::store::{StoreError, StoreErrorKind};

/// The channel completions and releases notify on.
pub(crate) const CHANNEL: &str = notify_channel!();

/// After a failed connection attempt, waiters poll for this long before the listener tries again (so that an
/// unreachable listening server costs one attempt per pause, not one per waiter).
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

pub(crate) struct Listener {
    config: tokio_postgres::Config,
    state: tokio::sync::Mutex<Connection>,
    waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

/// A registration for the wake-up of one record; unregisters when dropped.
pub(crate) struct Subscription {
    waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    name: String,
    pub(crate) notify: Arc<Notify>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiters = lock(&self.waiters);
        // Two references are left when this is the last subscription: the map's and this one's.
        if waiters.get(&self.name).is_some_and(|notify| Arc::strong_count(notify) <= 2) {
            waiters.remove(&self.name);
        }
    }
}

/// The listening connection, or when it may be tried again.
#[derive(Default)]
struct Connection {
    client: Option<tokio_postgres::Client>,
    retry_at: Option<Instant>,
}

impl Listener {
    pub(crate) fn new(config: tokio_postgres::Config) -> Self {
        Self { config, state: tokio::sync::Mutex::default(), waiters: Arc::default() }
    }

    /// The configuration the listening connection is made with.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Registers interest in a record, making sure the listening connection is up first.
    pub(crate) async fn subscribe(&self, record: &Digest) -> Result<Subscription, StoreError> {
        self.ensure_listening().await?;
        let name = crate::digest::to_hex(record);
        let notify = Arc::clone(lock(&self.waiters).entry(name.clone()).or_default());
        Ok(Subscription { waiters: Arc::clone(&self.waiters), name, notify })
    }

    async fn ensure_listening(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        if state.client.as_ref().is_some_and(|client| !client.is_closed()) {
            return Ok(());
        }
        if state.retry_at.is_some_and(|retry_at| Instant::now() < retry_at) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the listening connection failed moments ago; it is tried again shortly",
            ));
        }
        match self.connect().await {
            Ok(client) => {
                *state = Connection { client: Some(client), retry_at: None };
                Ok(())
            }
            Err(error) => {
                *state = Connection { client: None, retry_at: Instant::now().checked_add(RECONNECT_PAUSE) };
                Err(error)
            }
        }
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let unavailable = |error| super::statement::failed(StoreErrorKind::Unavailable, error);
        let (client, mut connection) = self.config.connect(tokio_postgres::NoTls).await.map_err(unavailable)?;
        let waiters = Arc::clone(&self.waiters);
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        if let Some(notify) = lock(&waiters).get(notification.payload()) {
                            notify.notify_waiters();
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "idempotency LISTEN connection failed; it reopens on the next wait");
                        break;
                    }
                }
            }
            // Notifications may have been lost: wake everybody so they look again.
            for notify in lock(&waiters).values() {
                notify.notify_waiters();
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(unavailable)?;
        Ok(client)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
