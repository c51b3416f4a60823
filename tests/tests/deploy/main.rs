//! The deployment files against the real thing: what `make deploy_check` cannot see without
//! running something.
//!
//! * The Grafana dashboards name only metrics a running mesh really exports: a mesh with some
//!   traffic (sends, deliveries, errors, a rate limit), its live `/metrics` (ws-agent's port and
//!   the other services' metrics addresses), and every `dyschat_*` series a dashboard queries must
//!   be there; the NATS exporter's names must be ones prometheus-nats-exporter produces.
//! * `deploy/nats/nats-prod.conf` runs a real three-node cluster on loopback (ports overridden by
//!   flags, everything else as in production): credentials required, fsync always, and the
//!   services work on it with R3 streams.
//! * `deploy/nginx/nginx.conf` in front of two real agents: HTTP, WebSocket upgrade, messages
//!   across agents, the per-address login limit answering in the contract's error shape.
//! * `deploy/healthcheck.sh` (the image's HEALTHCHECK) against a live agent.
//!
//! A test needing a tool that is not installed (nginx) says so and passes, except under
//! `CI=true`, where `make test` has installed it (scripts/ensure-deploy-tools.sh).
//!
//! One test target (`cargo test --test deploy`) split by theme; this file holds the shared
//! helpers.

mod cluster;
mod dashboards;
mod generated;
mod healthcheck;
mod nginx;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dyschat_runtime::Env;
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::{free_port, nats_server_bin, repo_root, wait_until, RedisServer};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

async fn get_text(url: &str) -> anyhow::Result<(u16, String)> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

async fn get_json(url: &str) -> anyhow::Result<(u16, Value)> {
    let (status, text) = get_text(url).await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}
