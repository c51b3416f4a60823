//! The ceiling: what raw JetStream does on the same nats-server in the same run, measured with
//! async-nats on a stream configured like `DYSCHAT_MESSAGES` (file storage, de-duplication,
//! RePublish on) but with its own name and subjects.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream::Republish};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Serialize;

use crate::stats::{self, Latency};

const STREAM: &str = "BENCH_CEILING";
/// Publishes in flight in the async measurement (async-nats allows 5,000 by default).
const WINDOW: usize = 4096;
/// Distinct subjects, like rooms, so RePublish tracks a last sequence per subject as ours does.
const SUBJECTS: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub payload_bytes: usize,
    pub async_publish_per_sec: f64,
    pub async_published: u64,
    pub sync_publish: Latency,
    /// Sync publishes 10 ms apart (100/s, the pace of the 100 msg/s run), so every process is
    /// idle when each one starts: the raw cost of waking the client, the server and the client
    /// again, without the back-to-back run's warm threads.
    pub paced_publish: Latency,
}

/// The gap between paced publishes.
const PACE: Duration = Duration::from_millis(10);
/// Paced publishes measured, at most.
const PACED_COUNT: usize = 200;

/// A payload shaped and sized like a stored message with a body of `body_bytes`.
pub fn stored_payload(room: &str, n: u64, body_bytes: usize) -> Bytes {
    let stored = dyschat_protocol::wire::StoredMessage::sent(
        room.to_string(),
        format!("01BENCH{n:019}"),
        format!("bench-{n}"),
        "01BENCHSENDER0000000000000".into(),
        "bench-sender".into(),
        "x".repeat(body_bytes.max(1)),
        "2026-11-23T00:00:00.000Z".into(),
    );
    Bytes::from(serde_json::to_vec(&stored).unwrap_or_default())
}

pub async fn measure(
    nats_url: &str,
    body_bytes: usize,
    duration: Duration,
    sync_count: usize,
) -> anyhow::Result<Ceiling> {
    let client = async_nats::connect(nats_url).await?;
    let js = jetstream::new(client.clone());
    let mut config = dyschat_runtime::topology::messages_stream_config(&Default::default());
    config.name = STREAM.into();
    config.subjects = vec!["bench.ceiling.*".into()];
    config.republish = Some(Republish {
        source: "bench.ceiling.*".into(),
        destination: "bench.ceilinglive.{{wildcard(1)}}".into(),
        headers_only: false,
    });
    let _ = js.delete_stream(STREAM).await;
    js.create_stream(config).await?;
    let payload = stored_payload("r0", 0, body_bytes);

    let outcome = async {
        // Async publish: keep WINDOW publishes in flight for `duration`.
        let mut inflight = FuturesUnordered::new();
        let mut n = 0u64;
        let mut acked = 0u64;
        let start = Instant::now();
        let end = start + duration;
        while Instant::now() < end {
            while inflight.len() < WINDOW {
                let subject = format!("bench.ceiling.r{}", n % SUBJECTS as u64);
                let msg = PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(format!("a{n}"));
                inflight.push(std::future::IntoFuture::into_future(
                    js.send_publish(subject, msg).await?,
                ));
                n += 1;
            }
            if let Some(ack) = inflight.next().await {
                ack?;
                acked += 1;
            }
        }
        while let Some(ack) = inflight.next().await {
            ack?;
            acked += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();

        // Sync publish: one at a time, the round trip of each.
        let mut h = stats::histogram();
        for i in 0..sync_count {
            let t = Instant::now();
            let msg = PublishMessage::build()
                .payload(payload.clone())
                .message_id(format!("s{i}"));
            js.send_publish(format!("bench.ceiling.r{}", i % SUBJECTS), msg)
                .await?
                .await?;
            stats::record(&mut h, t.elapsed());
        }
        let mut paced = stats::histogram();
        let mut next = Instant::now();
        for i in 0..sync_count.min(PACED_COUNT) {
            next += PACE;
            tokio::time::sleep_until(next.into()).await;
            let t = Instant::now();
            let msg = PublishMessage::build()
                .payload(payload.clone())
                .message_id(format!("p{i}"));
            js.send_publish(format!("bench.ceiling.r{}", i % SUBJECTS), msg)
                .await?
                .await?;
            stats::record(&mut paced, t.elapsed());
        }
        anyhow::Ok(Ceiling {
            payload_bytes: payload.len(),
            async_publish_per_sec: acked as f64 / elapsed,
            async_published: acked,
            sync_publish: Latency::of(&h),
            paced_publish: Latency::of(&paced),
        })
    }
    .await;
    let _ = js.delete_stream(STREAM).await;
    outcome
}
