//! One Redis or a Redis Cluster behind one connection type, [`RedisConn`].
//!
//! History works on both: every per-room key carries the room's hash tag (see
//! `dyschat_protocol::layout::history`), so a room's commands stay on one slot, and redis-rs's
//! own cluster client (`cluster_async`) routes each command to the master of its slot, follows
//! `MOVED`/`ASK` and reconnects. What a cluster cannot do is run one pipeline over several
//! slots, so code that used to send one pipeline over several rooms or over a room and a global
//! key builds a [`Batch`] of groups, each on one slot: on one Redis the groups still leave in
//! one pipeline (one round trip, as before); on a cluster each group is a pipeline of its own,
//! all sent at once. Nothing DYSCHAT writes relies on a pipeline being atomic (a pipeline is
//! not `MULTI`; see msg-writer's `redis_store`), so splitting changes no outcome. A pattern
//! `SCAN` ([`RedisConn::scan_keys`]) visits every master of a cluster, since each holds only
//! its own slots' keys.

use std::collections::HashSet;

use futures::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to one Redis (the default) or to a Redis Cluster; both reconnect by themselves.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// The replies of a [`Batch`]: per group, per command, in the order queued. A group a cluster
/// node could not answer at all has every reply the node's error.
pub type GroupReplies = Vec<Vec<RedisResult<Value>>>;

/// Commands in groups, each group's keys on one slot (one room's keys, or one global key).
/// Queue a group's commands on the pipeline [`Batch::group`] returns; no command may be
/// `ignore()`d (every command has its reply). Errors are answered per command.
pub struct Batch {
    cluster: bool,
    pipes: Vec<Pipeline>,
    /// On one Redis: where each group starts in the one pipeline.
    starts: Vec<usize>,
}

impl Batch {
    /// An empty batch for `conn`.
    pub fn new(conn: &RedisConn) -> Self {
        let cluster = matches!(conn, RedisConn::Cluster(_));
        Batch {
            cluster,
            pipes: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// Starts a group; its commands are queued on the returned pipeline.
    pub fn group(&mut self) -> &mut Pipeline {
        if self.cluster || self.pipes.is_empty() {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            self.pipes.push(pipe);
        }
        let last = self.pipes.len() - 1;
        self.starts.push(self.pipes[last].len());
        &mut self.pipes[last]
    }

    /// Sends the batch (it can be sent again, e.g. after loading a script). `Err` only when
    /// one Redis could not be asked at all; on a cluster a node that fails answers its groups'
    /// commands with its error and the other groups are answered.
    pub async fn query(&self, conn: &mut RedisConn) -> RedisResult<GroupReplies> {
        if self.pipes.is_empty() {
            return Ok(Vec::new());
        }
        if !self.cluster {
            let mut replies: Vec<RedisResult<Value>> = self.pipes[0].query_async(conn).await?;
            let mut groups = Vec::with_capacity(self.starts.len());
            for start in self.starts.iter().rev() {
                groups.push(replies.split_off((*start).min(replies.len())));
            }
            groups.reverse();
            return Ok(groups);
        }
        let sent = self.pipes.iter().map(|pipe| {
            let mut conn = conn.clone();
            async move {
                let answer: RedisResult<Vec<RedisResult<Value>>> =
                    pipe.query_async(&mut conn).await;
                match answer {
                    Ok(replies) => replies,
                    Err(e) => (0..pipe.len()).map(|_| Err(e.clone())).collect(),
                }
            }
        });
        Ok(join_all(sent).await)
    }
}

/// Where a pattern `SCAN` looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanScope<'a> {
    /// Every master of a cluster (one Redis: all of it).
    Everywhere,
    /// Only the master holding the slot of this key (its hash tag): every key of one room.
    SlotOf(&'a str),
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// The keys matching `pattern` within `scope`, taking at most `max_steps` `SCAN` steps of
    /// about `count` keys each per master (so a caller bounds the work; a partial answer is
    /// the keys of the steps taken).
    pub async fn scan_keys(
        &mut self,
        pattern: &str,
        scope: ScanScope<'_>,
        count: usize,
        max_steps: usize,
    ) -> RedisResult<Vec<String>> {
        let nodes = match (&mut *self, scope) {
            (RedisConn::Single(_), _) => vec![None],
            (RedisConn::Cluster(_), ScanScope::SlotOf(key)) => vec![Some(
                SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master)),
            )],
            (RedisConn::Cluster(c), ScanScope::Everywhere) => masters(c)
                .await?
                .into_iter()
                .map(|(host, port)| Some(SingleNodeRoutingInfo::ByAddress { host, port }))
                .collect(),
        };
        let mut keys = Vec::new();
        for node in nodes {
            let mut cursor = 0u64;
            for _ in 0..max_steps {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count);
                let (next, found): (u64, Vec<String>) = match (&mut *self, &node) {
                    (RedisConn::Cluster(c), Some(route)) => redis::from_redis_value(
                        c.route_command(scan, RoutingInfo::SingleNode(route.clone()))
                            .await?,
                    )?,
                    (conn, _) => scan.query_async(conn).await?,
                };
                keys.extend(found);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(keys)
    }
}

/// The `(host, port)` of every master, from `CLUSTER SLOTS` (each slot range names its master
/// first).
async fn masters(conn: &mut ClusterConnection) -> RedisResult<Vec<(String, u16)>> {
    let slots: Vec<Vec<Value>> = redis::from_redis_value(
        conn.route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?,
    )?;
    let mut seen = HashSet::new();
    let mut masters = Vec::new();
    for range in slots {
        let Some(master) = range.into_iter().nth(2) else {
            continue;
        };
        let node: Vec<Value> = redis::from_redis_value(master)?;
        let mut fields = node.into_iter();
        let (Some(host), Some(port)) = (fields.next(), fields.next()) else {
            continue;
        };
        let host: String = redis::from_redis_value(host)?;
        let port: u16 = redis::from_redis_value(port)?;
        if seen.insert((host.clone(), port)) {
            masters.push((host, port));
        }
    }
    Ok(masters)
}
