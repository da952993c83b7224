//! The one `LISTEN` connection of a [`super::PostgresStore`], for `on_conflict = "wait"`.
//!
//! Pooled connections cannot receive notifications (deadpool drives their protocol stream), so waiting uses a
//! dedicated connection, opened on the first wait and reopened after a failure. A notification names a record by
//! the hex digest of its identity; every waiter of that record is woken and claims again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use super::{StoreError, StoreErrorKind};
use crate::digest::Digest;

/// The channel completions and releases notify on.
pub(crate) const CHANNEL: &str = "idempotency_records";

pub(crate) struct Listener {
    config: tokio_postgres::Config,
    state: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
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

impl Listener {
    pub(crate) fn new(config: tokio_postgres::Config) -> Self {
        Self { config, state: tokio::sync::Mutex::new(None), waiters: Arc::default() }
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
        if state.as_ref().is_some_and(|client| !client.is_closed()) {
            return Ok(());
        }
        let unavailable = |error| StoreError::new(StoreErrorKind::Unavailable, error);
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
        *state = Some(client);
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
