//! A Redis Cluster on loopback: `masters` redis-servers in cluster mode (each a
//! [`RedisServer`]: free port, own temporary directory, append-only with every write fsynced),
//! optionally `replicas` replicas of each, joined from Rust (no `redis-cli` needed): the slots
//! split evenly with `CLUSTER ADDSLOTSRANGE`, every node introduced with `CLUSTER MEET`,
//! replicas attached with `CLUSTER REPLICATE`, then waited for until every node says
//! `cluster_state:ok`. Dropping it kills every node (each by its own process).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;

use crate::RedisServer;

/// How long the cluster may take to form, or to heal after a node came back.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
/// Slots in a Redis Cluster.
const SLOTS: u32 = 16_384;

pub struct RedisCluster {
    /// The masters first (`0..masters`), then the replicas.
    pub nodes: Vec<RedisServer>,
    pub masters: usize,
}

impl RedisCluster {
    /// Starts and joins the cluster; `cluster-node-timeout` is 1 s so a killed master is marked
    /// failed (or failed over to its replica) quickly.
    pub async fn start(masters: usize, replicas: usize) -> anyhow::Result<RedisCluster> {
        anyhow::ensure!(masters >= 1, "a cluster needs a master");
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            nodes.push(
                RedisServer::start_with_args(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                ])
                .await?,
            );
        }
        let cluster = RedisCluster { nodes, masters };
        let mut conns = Vec::new();
        for i in 0..cluster.nodes.len() {
            conns.push(cluster.node_connection(i).await?);
        }
        let per = SLOTS / masters as u32;
        for (i, conn) in conns.iter_mut().take(masters).enumerate() {
            let first = per * i as u32;
            let last = if i + 1 == masters {
                SLOTS - 1
            } else {
                first + per - 1
            };
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query_async(conn)
                .await
                .context("CLUSTER ADDSLOTSRANGE")?;
        }
        for node in cluster.nodes.iter().skip(1) {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .query_async(&mut conns[0])
                .await
                .context("CLUSTER MEET")?;
        }
        cluster.wait_known(&mut conns).await?;
        for r in 0..replicas {
            for m in 0..masters {
                let master_id: String = redis::cmd("CLUSTER")
                    .arg("MYID")
                    .query_async(&mut conns[m])
                    .await?;
                let replica = masters + r * masters + m;
                let _: () = redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&master_id)
                    .query_async(&mut conns[replica])
                    .await
                    .context("CLUSTER REPLICATE")?;
            }
        }
        cluster.wait_ok().await?;
        Ok(cluster)
    }

    /// `DYSCHAT_REDIS_CLUSTER_NODES` for this cluster: every node's URL.
    pub fn nodes_var(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A plain connection to node `i` (not cluster-aware: for `CLUSTER ...` and inspection).
    pub async fn node_connection(&self, i: usize) -> anyhow::Result<MultiplexedConnection> {
        let client = redis::Client::open(self.nodes[i].url())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    /// A cluster connection of the test's own, through redis-rs's cluster client.
    pub async fn connection(&self) -> anyhow::Result<redis::cluster_async::ClusterConnection> {
        let urls: Vec<String> = self.nodes.iter().map(|n| n.url()).collect();
        let client = redis::cluster::ClusterClient::new(urls)?;
        Ok(client.get_async_connection().await?)
    }

    /// Waits until every node says `cluster_state:ok` and knows every node.
    pub async fn wait_ok(&self) -> anyhow::Result<()> {
        self.wait_ok_except(&[]).await
    }

    /// Waits until every node but those of `down` (killed: a replica took over) says
    /// `cluster_state:ok` and knows every node.
    pub async fn wait_ok_except(&self, down: &[usize]) -> anyhow::Result<()> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let mut ok = true;
            for i in (0..self.nodes.len()).filter(|i| !down.contains(i)) {
                let info = match self.node_connection(i).await {
                    Ok(mut conn) => redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async::<String>(&mut conn)
                        .await
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
                ok &= info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()));
            }
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the Redis Cluster did not reach cluster_state:ok within {FORM_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until some running node says `cluster_state:fail` (a master it cannot reach).
    pub async fn wait_failed(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            for i in 0..self.nodes.len() {
                if let Ok(mut conn) = self.node_connection(i).await {
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    if info.contains("cluster_state:fail") {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("no node of the Redis Cluster saw it fail within {FORM_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_known(&self, conns: &mut [MultiplexedConnection]) -> anyhow::Result<()> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let mut known = true;
            for conn in conns.iter_mut() {
                let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(conn).await?;
                known &=
                    nodes.lines().filter(|l| !l.contains("handshake")).count() == self.nodes.len();
            }
            if known {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the Redis Cluster's nodes did not meet within {FORM_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
