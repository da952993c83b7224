//! One node or a Redis Cluster behind one connection type: the store's scripts run on either unchanged.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult, Value};

/// Where the records live.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// One Redis (or Valkey) server, e.g. `redis://127.0.0.1:6379`.
    Node(String),
    /// The seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

/// One master, to address commands that are not about a key (`SCAN`) to each master in turn.
#[derive(Debug, Clone)]
pub(super) enum Master {
    /// The one node.
    Node,
    /// A cluster's master, by address.
    Address { host: String, port: u16 },
}

impl Master {
    fn routing(&self) -> SingleNodeRoutingInfo {
        match self {
            Self::Node => SingleNodeRoutingInfo::Random,
            Self::Address { host, port } => SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port },
        }
    }
}

/// A multiplexed connection to the target: a `ConnectionManager` that reconnects by itself, or a cluster
/// connection that follows the slot map through failovers. Both are cheap to clone.
#[derive(Clone)]
pub(super) enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Connects with every network step bounded by `timeout` (a down node fails fast instead of hanging), and each
    /// request's answer by `response_timeout`.
    pub(super) async fn open(target: &Target, timeout: Duration, response_timeout: Duration) -> RedisResult<Self> {
        match target {
            Target::Node(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(1);
                Ok(Self::Node(client.get_connection_manager_with_config(config).await?))
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(response_timeout)
                    .build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Runs a keyless command on the master that owns `key`'s slot (on one node, on the node): `WAIT` must run on
    /// the connection and node that made the write it waits for.
    pub(super) async fn on_master_of(&mut self, key: &[u8], command: Cmd) -> RedisResult<Value> {
        match self {
            Self::Node(connection) => command.query_async(connection).await,
            Self::Cluster(connection) => {
                let route = Route::with_key(key, SlotAddr::Master);
                connection
                    .route_command(command, RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)))
                    .await
            }
        }
    }

    /// Runs a pipeline on the master that owns `key`'s slot, returning each command's answer.
    pub(super) async fn pipeline_on_master_of(&mut self, key: &[u8], pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Self::Node(connection) => pipeline.query_async(connection).await,
            Self::Cluster(connection) => {
                let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
                connection.route_pipeline(pipeline.clone(), 0, pipeline.len(), route).await
            }
        }
    }

    /// Runs a command on every master, returning each one's answer.
    pub(super) async fn on_every_master(&mut self, command: Cmd) -> RedisResult<Vec<Value>> {
        match self {
            Self::Node(connection) => Ok(vec![command.query_async(connection).await?]),
            Self::Cluster(connection) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let answers = connection.route_command(command, routing).await?;
                Ok(match answers {
                    Value::Map(pairs) => pairs.into_iter().map(|(_node, answer)| answer).collect(),
                    other => vec![other],
                })
            }
        }
    }

    /// Every master: the node, or each master of the cluster by its address.
    pub(super) async fn masters(&mut self) -> RedisResult<Vec<Master>> {
        let Self::Cluster(connection) = self else { return Ok(vec![Master::Node]) };
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        // Without a response policy, a command on every master answers a map from each one's `host:port`.
        let Value::Map(answers) = connection.route_command(redis::cmd("PING"), routing).await? else {
            return Err((ErrorKind::UnexpectedReturnType, "PING on every master did not answer per master").into());
        };
        answers
            .into_iter()
            .map(|(address, _pong)| {
                let address = match address {
                    Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                    Value::SimpleString(text) => Some(text),
                    _ => None,
                };
                address
                    .as_deref()
                    .and_then(|address| address.rsplit_once(':'))
                    .and_then(|(host, port)| Some(Master::Address { host: host.to_owned(), port: port.parse().ok()? }))
                    .ok_or_else(|| (ErrorKind::UnexpectedReturnType, "a master's address is not host:port").into())
            })
            .collect()
    }

    /// Runs a command on one master.
    pub(super) async fn on(&mut self, master: &Master, command: Cmd) -> RedisResult<Value> {
        match self {
            Self::Node(connection) => command.query_async(connection).await,
            Self::Cluster(connection) => {
                connection.route_command(command, RoutingInfo::SingleNode(master.routing())).await
            }
        }
    }

    /// Runs a pipeline on one master, returning each command's answer.
    pub(super) async fn pipeline_on(&mut self, master: &Master, pipeline: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Self::Node(connection) => pipeline.query_async(connection).await,
            Self::Cluster(connection) => {
                connection.route_pipeline(pipeline.clone(), 0, pipeline.len(), master.routing()).await
            }
        }
    }

    /// The command that wakes waiters: sharded pub/sub on a cluster (the message stays on the record's shard),
    /// classic pub/sub on one node (the same thing there).
    pub(super) fn publish_command(&self) -> &'static str {
        match self {
            Self::Node(_) => "PUBLISH",
            Self::Cluster(_) => "SPUBLISH",
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
