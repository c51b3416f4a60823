//! Files (contract section 9) against real servers and the whole mesh on two agents: uploads
//! streamed into the shared object store and downloaded byte for byte from another agent, the
//! size bound (declared and streamed), ranges, the headers that keep a browser from running a
//! file, who may upload and read, attachments in sends, and removal with the message, with the
//! room, and by the sweep of files no message attached.

mod attach;
mod removal;
mod serve;

use anyhow::{ensure, Context};
use dyschat_tests::client::{create_room_with as create, expect, Api, LoggedIn, WsClient};
use dyschat_tests::mesh::Mesh;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The default largest file.
const MAX: usize = 10 * 1024 * 1024;

struct Setup {
    mesh: Mesh,
    apis: Vec<Api>,
    http: reqwest::Client,
}

/// A download: status, headers, bytes.
struct Got {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Setup {
    async fn start(agents: usize) -> anyhow::Result<Setup> {
        Self::start_with(agents, Vec::new()).await
    }

    async fn start_with(agents: usize, extra: Vec<(String, String)>) -> anyhow::Result<Setup> {
        let mesh = Mesh::start_with(agents, extra).await?;
        let apis = (0..agents)
            .map(|i| Api::new(mesh.agent(i).http()))
            .collect();
        Ok(Setup {
            mesh,
            apis,
            http: reqwest::Client::new(),
        })
    }

    fn api(&self) -> &Api {
        &self.apis[0]
    }

    async fn user(&self, name: &str) -> anyhow::Result<LoggedIn> {
        self.api().register_and_login(name).await
    }

    async fn ws(&self, agent: usize, user: &LoggedIn) -> anyhow::Result<WsClient> {
        WsClient::connect(&self.mesh.agent(agent).ws(), &user.token).await
    }

    /// Uploads `body` through agent `agent`; returns the status and the JSON answer.
    async fn upload(
        &self,
        agent: usize,
        user: &LoggedIn,
        room: &str,
        name: &str,
        content_type: Option<&str>,
        body: reqwest::Body,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .post(format!(
                "{}/api/v1/rooms/{room}/files",
                self.apis[agent].base
            ))
            .query(&[("name", name)])
            .bearer_auth(&user.token)
            .body(body);
        if let Some(t) = content_type {
            req = req.header("Content-Type", t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Uploads `bytes` (with a Content-Length) and expects 201; returns the File.
    async fn uploaded(
        &self,
        user: &LoggedIn,
        room: &str,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let (status, file) = self
            .upload(0, user, room, name, Some(content_type), bytes.into())
            .await?;
        ensure!(status == 201, "upload of {name}: {status} {file}");
        Ok(file)
    }

    async fn download(
        &self,
        agent: usize,
        user: &LoggedIn,
        file_id: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Got> {
        let mut req = self
            .http
            .get(format!("{}/api/v1/files/{file_id}", self.apis[agent].base))
            .bearer_auth(&user.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        Ok(Got {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await?.to_vec(),
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.mesh.stop_all().await
    }
}

/// `n` bytes that are not all alike (a xorshift sequence).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn id_of(file: &Value) -> anyhow::Result<String> {
    Ok(file["file_id"].as_str().context("file_id")?.to_string())
}
