//! What wakes a running relay: a notification on [`CHANNEL`] (sent by `Tx::enqueue`, delivered when its
//! transaction commits), received on one dedicated `LISTEN` connection, or else the poll interval.
//!
//! The connection is made with the store's listener configuration ([`crate::PostgresStore::with_listener`]), which
//! must reach PostgreSQL directly: a transaction-mode pooler accepts `LISTEN` but delivers the notifications to
//! whichever client shares the backend next. Without that configuration, or while it cannot connect, the relay
//! polls; a connection that fails is made again after [`RECONNECT_PAUSE`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use super::sql::CHANNEL;
use crate::store::postgres::statement::describe;

/// After a failed connection attempt, the relay polls for this long before it tries again; the pause doubles with
/// each further failure, up to [`MAX_RECONNECT_PAUSE`].
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The longest pause between two attempts at the listening connection (and so between two warnings).
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(30);

/// The longest the relay waits for its listening connection (an address that drops packets would otherwise hold
/// the relay for the operating system's TCP timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The relay's listening connection and its wake-ups.
pub(crate) struct Wake {
    config: Option<tokio_postgres::Config>,
    /// Holds one permit when a notification arrived while the relay was busy: the next wait returns at once.
    notify: Arc<Notify>,
    client: Option<tokio_postgres::Client>,
    retry_at: Option<Instant>,
    /// Connection attempts that failed in a row.
    failures: u32,
    told_polling: bool,
}

impl Wake {
    pub(crate) fn new(config: Option<tokio_postgres::Config>) -> Self {
        Self { config, notify: Arc::default(), client: None, retry_at: None, failures: 0, told_polling: false }
    }

    /// Opens the listening connection if there is none (and none failed moments ago). A relay pass follows every
    /// call, so what was committed while no connection listened is found anyway.
    pub(crate) async fn ensure_listening(&mut self, poll_interval: Duration) {
        let Some(config) = &self.config else {
            if !self.told_polling {
                tracing::info!(
                    poll_interval_ms = poll_interval.as_millis() as u64,
                    "the outbox relay polls: give the store a direct listening connection \
                     (PostgresStore::with_listener) to wake it when messages are committed"
                );
                self.told_polling = true;
            }
            return;
        };
        if self.client.as_ref().is_some_and(|client| !client.is_closed()) {
            return;
        }
        if self.retry_at.is_some_and(|retry_at| Instant::now() < retry_at) {
            return;
        }
        let listening = tokio::time::timeout(CONNECT_TIMEOUT, listen(config, Arc::clone(&self.notify))).await;
        match listening.unwrap_or_else(|_| Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))) {
            Ok(client) => {
                tracing::debug!("the outbox relay listens for committed messages");
                self.client = Some(client);
                self.retry_at = None;
                self.failures = 0;
            }
            Err(error) => {
                let pause = RECONNECT_PAUSE.saturating_mul(1 << self.failures.min(5)).min(MAX_RECONNECT_PAUSE);
                tracing::warn!(
                    %error,
                    retry_in_secs = pause.as_secs(),
                    "the outbox relay cannot open its listening connection; it polls meanwhile"
                );
                self.client = None;
                self.retry_at = Instant::now().checked_add(pause);
                self.failures = self.failures.saturating_add(1);
            }
        }
    }

    /// Waits for a notification, or `poll_interval` (or less, while the listening connection is to be made
    /// again).
    pub(crate) async fn wait(&self, poll_interval: Duration) {
        let listening_lost = self.config.is_some() && self.client.as_ref().is_none_or(|client| client.is_closed());
        let timeout = if listening_lost { poll_interval.min(RECONNECT_PAUSE) } else { poll_interval };
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }
}

async fn listen(config: &tokio_postgres::Config, notify: Arc<Notify>) -> Result<tokio_postgres::Client, String> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await.map_err(|error| describe(&error))?;
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => notify.notify_one(),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %describe(&error), "the outbox relay's listening connection failed");
                    break;
                }
            }
        }
        // Notifications may have been lost: the relay looks (and listens again).
        notify.notify_one();
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(|error| describe(&error))?;
    Ok(client)
}
