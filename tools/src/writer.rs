//! msg-writer: its lag (what the durable consumer still has to store) over time, and how fast it
//! drains a backlog built while it was stopped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream::{self, message::PublishMessage, stream::Stream};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Serialize;

use crate::env::Env;
use dyschat_protocol::layout::{MESSAGES_STREAM, WRITER_CONSUMER};

/// Messages the writer has not finished: not yet delivered plus delivered and not acked.
pub async fn pending(stream: &Stream) -> anyhow::Result<u64> {
    let info = stream.consumer_info(WRITER_CONSUMER).await?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

pub async fn messages_stream(nats_url: &str) -> anyhow::Result<Stream> {
    let client = async_nats::connect(nats_url).await?;
    let js = jetstream::new(client);
    Ok(js.get_stream(MESSAGES_STREAM).await?)
}

#[derive(Default)]
struct LagState {
    current: u64,
    max: u64,
}

/// Polls the writer's consumer every 250 ms in the background.
pub struct LagSampler {
    state: Arc<Mutex<LagState>>,
    task: tokio::task::JoinHandle<()>,
}

impl LagSampler {
    pub fn start(stream: Stream) -> LagSampler {
        let state = Arc::new(Mutex::new(LagState::default()));
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(p) = pending(&stream).await {
                    let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
                    st.current = p;
                    st.max = st.max.max(p);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        LagSampler { state, task }
    }

    pub fn reset_max(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.max = st.current;
    }

    /// (max since the last reset, current).
    pub fn snapshot(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.max, st.current)
    }
}

impl Drop for LagSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the writer has stored everything, up to `timeout`; returns how long it took.
pub async fn wait_caught_up(stream: &Stream, timeout: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        // A request that times out while the server is busy is simply asked again.
        if matches!(pending(stream).await, Ok(0)) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("msg-writer still behind after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    pub messages: u64,
    pub rooms: usize,
    /// How fast the bench built the backlog (raw JetStream async publish into our stream).
    pub publish_per_sec: f64,
    /// From the writer's start to nothing pending.
    pub drain_secs: f64,
    pub drain_msgs_per_sec: f64,
    /// (seconds since the writer started, messages pending), about one sample a second.
    pub pending_over_time: Vec<(f64, u64)>,
    pub history_missing: u64,
    pub history_extra: u64,
}

/// Stops the msg-writer, publishes `messages` stored messages over `rooms` rooms straight into
/// the stream, starts the writer again and times it until nothing is pending; then checks that
/// history holds every message.
pub async fn drain(
    env: &mut Env,
    tag: &str,
    messages: u64,
    rooms: usize,
    body_bytes: usize,
) -> anyhow::Result<Drain> {
    let client = async_nats::connect(&env.nats_url).await?;
    let js = jetstream::new(client.clone());
    let mut attempt = 0;
    let stream = loop {
        attempt += 1;
        match js.get_stream(MESSAGES_STREAM).await {
            Ok(s) => break s,
            Err(e) if attempt >= 10 => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    wait_caught_up(&stream, Duration::from_secs(60)).await?;
    env.writer.stop(Duration::from_secs(15)).await;

    let room_ids: Vec<String> = (0..rooms).map(|r| format!("{tag}r{r}")).collect();
    let start = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for n in 0..messages {
        let r = (n % rooms as u64) as usize;
        if inflight.len() >= 4096 {
            if let Some(ack) = inflight.next().await {
                ack?;
            }
        }
        // Every message distinct (history is a set of payloads): the id varies, the size does not.
        let payload = crate::ceiling::stored_payload(&room_ids[r], n, body_bytes);
        let msg = PublishMessage::build()
            .payload(payload)
            .message_id(format!("{tag}-{n}"));
        inflight.push(std::future::IntoFuture::into_future(
            js.send_publish(dyschat_protocol::subjects::room_messages(&room_ids[r]), msg)
                .await?,
        ));
    }
    while let Some(ack) = inflight.next().await {
        ack?;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let backlog = match pending(&stream).await {
        Ok(p) => p,
        Err(_) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            pending(&stream).await?
        }
    };
    if backlog < messages {
        bail!("the writer consumer has {backlog} pending, expected at least {messages}");
    }

    env.writer.restart().context("restarting msg-writer")?;
    let started = Instant::now();
    let timeout = Duration::from_secs(120 + messages / 5_000);
    let mut samples = Vec::new();
    let mut last_sample = 0.0f64;
    loop {
        let p = match pending(&stream).await {
            Ok(p) => p,
            // Busy server: ask again (the loop is bounded by `timeout`).
            Err(_) if started.elapsed() < timeout => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let t = started.elapsed().as_secs_f64();
        if t - last_sample >= 1.0 || p == 0 {
            samples.push((t, p));
            last_sample = t;
        }
        if p == 0 {
            break;
        }
        if started.elapsed() > timeout {
            bail!("msg-writer did not drain {messages} messages within {timeout:?} ({p} left)");
        }
        if !env.writer.is_running() {
            bail!(
                "msg-writer exited while draining:\n{}",
                env.writer.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_secs = started.elapsed().as_secs_f64();

    let redis = redis::Client::open(format!("redis://{}/", env.redis_addr))?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let mut stored = 0u64;
    for r in &room_ids {
        let n: u64 = redis::cmd("ZCARD")
            .arg(dyschat_protocol::layout::history::key(r))
            .query_async(&mut conn)
            .await?;
        stored += n;
    }
    Ok(Drain {
        messages,
        rooms,
        publish_per_sec: messages as f64 / publish_secs,
        drain_secs,
        drain_msgs_per_sec: messages as f64 / drain_secs,
        pending_over_time: samples,
        history_missing: messages.saturating_sub(stored),
        history_extra: stored.saturating_sub(messages),
    })
}
