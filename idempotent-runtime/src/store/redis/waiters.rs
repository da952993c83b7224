//! Waking waiting requests without polling: one subscriber connection per store (RESP3 push messages), one
//! channel per record while someone waits on it, and a [`Notify`] per channel.
//!
//! The store subscribes before it checks the record (see [`super::RedisStore`]'s `wait`): a completion published
//! after the subscription is confirmed is delivered, one published before it is seen by the check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::Notify;

use super::connection::Target;

/// The channels someone waits on, shared with the connection's push handler.
type Channels = Arc<Mutex<HashMap<Vec<u8>, Channel>>>;

struct Channel {
    notify: Arc<Notify>,
    waiting: usize,
}

enum Subscriber {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The store's subscriptions.
pub(super) struct Waiters {
    /// Held while (un)subscribing, so that the waiter counts and the server's subscriptions change together.
    subscriber: tokio::sync::Mutex<Subscriber>,
    channels: Channels,
}

/// A waiter's registration on one channel; [`Waiters::leave`] ends it.
pub(super) struct Subscription {
    pub(super) notify: Arc<Notify>,
    channel: Vec<u8>,
}

fn lock(channels: &Channels) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Channel>> {
    channels.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Waiters {
    pub(super) async fn connect(target: &Target, timeout: Duration) -> RedisResult<Self> {
        let channels = Channels::default();
        let handler_channels = Arc::clone(&channels);
        // Runs on the connection's task: it must not block, and it only wakes.
        let on_push = move |push: PushInfo| -> Result<(), std::convert::Infallible> {
            match push.kind {
                PushKind::Message | PushKind::SMessage => {
                    if let Some(Value::BulkString(channel)) = push.data.first()
                        && let Some(entry) = lock(&handler_channels).get(channel.as_slice())
                    {
                        entry.notify.notify_waiters();
                    }
                }
                // A lost connection may have lost a message: wake everyone, they look at their record again.
                PushKind::Disconnection => {
                    for entry in lock(&handler_channels).values() {
                        entry.notify.notify_waiters();
                    }
                }
                _ => {}
            }
            Ok(())
        };
        let subscriber = match target {
            Target::Node(url) => {
                let info = url.as_str().into_connection_info()?;
                let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
                let client = redis::Client::open(info.set_redis_settings(settings))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_push_sender(on_push)
                    .set_automatic_resubscription();
                Subscriber::Node(client.get_connection_manager_with_config(config).await?)
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .push_sender(on_push)
                    .build()?;
                Subscriber::Cluster(client.get_async_connection().await?)
            }
        };
        Ok(Self { subscriber: tokio::sync::Mutex::new(subscriber), channels })
    }

    /// Registers a waiter on `channel`, subscribing when it is the first; returns once the server confirmed.
    pub(super) async fn join(&self, channel: &[u8]) -> RedisResult<Subscription> {
        let mut subscriber = self.subscriber.lock().await;
        let (notify, first) = {
            let mut channels = lock(&self.channels);
            let entry = channels
                .entry(channel.to_vec())
                .or_insert_with(|| Channel { notify: Arc::new(Notify::new()), waiting: 0 });
            entry.waiting += 1;
            (Arc::clone(&entry.notify), entry.waiting == 1)
        };
        if first {
            let subscribed = match &mut *subscriber {
                Subscriber::Node(connection) => connection.subscribe(channel).await,
                Subscriber::Cluster(connection) => connection.ssubscribe(channel).await,
            };
            if let Err(error) = subscribed {
                forget(&mut lock(&self.channels), channel);
                return Err(error);
            }
        }
        Ok(Subscription { notify, channel: channel.to_vec() })
    }

    /// Ends a waiter's registration, unsubscribing when it was the last (a failure only leaves a subscription
    /// that delivers messages nobody waits for).
    pub(super) async fn leave(&self, subscription: Subscription) {
        let mut subscriber = self.subscriber.lock().await;
        if !forget(&mut lock(&self.channels), &subscription.channel) {
            return;
        }
        let unsubscribed = match &mut *subscriber {
            Subscriber::Node(connection) => connection.unsubscribe(&subscription.channel).await,
            Subscriber::Cluster(connection) => connection.sunsubscribe(&subscription.channel).await,
        };
        if let Err(error) = unsubscribed {
            tracing::debug!(%error, "could not unsubscribe from a record's channel");
        }
    }
}

/// Counts a waiter out; true when it was the channel's last.
fn forget(channels: &mut HashMap<Vec<u8>, Channel>, channel: &[u8]) -> bool {
    let Some(entry) = channels.get_mut(channel) else { return false };
    entry.waiting -= 1;
    if entry.waiting > 0 {
        return false;
    }
    channels.remove(channel);
    true
}
