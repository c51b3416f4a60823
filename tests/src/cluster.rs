//! A three-node NATS cluster on loopback, JetStream on every node, fsync on every write.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::{free_port, NatsServer};

pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    /// Kept alive for the nodes' configuration files.
    _config_dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts nodes `n1`, `n2`, `n3`, routed to each other, and waits until JetStream answers.
    pub async fn start() -> anyhow::Result<NatsCluster> {
        let dir = tempfile::tempdir()?;
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (i, port) in cluster_ports.iter().enumerate() {
            let path = dir.path().join(format!("n{}.conf", i + 1));
            std::fs::write(
                &path,
                format!(
                    "server_name: n{}\njetstream {{ sync_interval: always }}\n\
                     cluster {{ name: dyschat, listen: 127.0.0.1:{port}, routes: [{routes}] }}\n",
                    i + 1
                ),
            )?;
            let path = path.display().to_string();
            nodes.push(NatsServer::start_with_args(&["-c", &path]).await?);
        }
        let cluster = NatsCluster {
            nodes,
            _config_dir: dir,
        };
        cluster.wait_for_jetstream().await?;
        Ok(cluster)
    }

    /// All client URLs, comma-separated (the form `DYSCHAT_NATS_URL` takes for a cluster).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn wait_for_jetstream(&self) -> anyhow::Result<()> {
        let client = async_nats::connect(self.nodes[0].url()).await?;
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if js.query_account().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("JetStream never became available on the cluster")
    }

    /// The index of the node leading `stream` (`n1` is 0).
    pub async fn leader_of(&self, stream: &str) -> anyhow::Result<usize> {
        let client =
            async_nats::connect(self.urls().split(',').collect::<Vec<_>>().as_slice()).await?;
        let js = async_nats::jetstream::new(client);
        let info = js.get_stream(stream).await?.get_info().await?;
        let leader = info.cluster.and_then(|c| c.leader).unwrap_or_default();
        match leader
            .strip_prefix('n')
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if (1..=3).contains(&n) => Ok(n - 1),
            _ => bail!("stream {stream} has no known leader ({leader:?})"),
        }
    }
}
