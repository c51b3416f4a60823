//! `dyschat-bench search`: how fast a search instance indexes, and how fast the HTTP route
//! answers.
//!
//! A backlog of stored messages (the stream's own format, published straight into JetStream) is
//! laid into rooms of one user, then a search instance starts on an empty index: the time until
//! its consumer has nothing pending gives the rebuild's messages per second. Then messages keep
//! coming at a sustained rate while queries of two words run over `GET /api/v1/search/messages`:
//! the consumer's lag and the index's throughput behind that ingest, and the query latency.
//! Every message holds a word of its own, and a sample of them must each find exactly their
//! message: the accounting of this scenario.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use async_nats::jetstream::{self, message::PublishMessage, stream::Stream};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Serialize;

use crate::client::{BenchUser, Http};
use crate::env::Env;
use crate::stats::{self, Latency};
use dyschat_protocol::layout::MESSAGES_STREAM;
use dyschat_protocol::wire::StoredMessage;

/// Distinct words the bodies are made of.
const VOCABULARY: u64 = 2_000;
/// Frequent words: each body starts with one of them, so a query of one frequent and one other
/// word finds a page of hits in a large index.
const FREQUENT: u64 = 20;
/// Other words per body (plus the message's own word).
const WORDS: u64 = 7;
/// Messages published at once while the backlog is laid.
const IN_FLIGHT: usize = 4096;

#[derive(Debug, Clone, Serialize)]
pub struct SearchBench {
    pub messages: u64,
    pub rooms: usize,
    pub backlog_publish_per_sec: f64,
    /// Entries of the stream the new instance indexed before it had nothing pending.
    pub rebuild_entries: u64,
    pub rebuild_secs: f64,
    pub rebuild_msgs_per_sec: f64,
    pub rebuild_pending_over_time: Vec<(f64, u64)>,
    pub live_rate: f64,
    pub live_published: u64,
    pub live_secs: f64,
    /// Messages indexed per second from the start of the sustained ingest until the consumer had
    /// nothing pending.
    pub live_index_msgs_per_sec: f64,
    pub live_max_pending: u64,
    pub query: Latency,
    pub query_errors: u64,
    pub mean_hits: f64,
    /// Messages looked up by their own word, and how many of those did not find exactly them.
    pub checked: u64,
    pub check_failures: u64,
}

/// The body of message `n`: a frequent word and others picked by `n`, and `u<n>`, a word of its
/// own.
fn body(n: u64) -> String {
    let mut x = n
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut words = Vec::with_capacity(WORDS as usize + 2);
    words.push(format!("f{}", (x >> 33) % FREQUENT));
    for _ in 0..WORDS {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        words.push(format!("w{}", (x >> 33) % VOCABULARY));
    }
    words.push(format!("u{n}"));
    words.join(" ")
}

fn payload(room: &str, n: u64, base_ms: i64) -> Bytes {
    let sent = chrono::DateTime::from_timestamp_millis(base_ms + n as i64)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let stored = StoredMessage::sent(
        room.to_string(),
        format!("01SEARCH{n:018}"),
        format!("search-{n}"),
        "01BENCHSEARCHER00000000000".into(),
        "bench-searcher".into(),
        body(n),
        sent,
    );
    Bytes::from(serde_json::to_vec(&stored).unwrap_or_default())
}

/// Publishes messages `from..to` round-robin over `rooms`, at most `rate` per second (0: as fast
/// as acks come); returns the `seq` of each message's own word.
async fn publish(
    js: &jetstream::Context,
    rooms: &[String],
    from: u64,
    to: u64,
    rate: f64,
    base_ms: i64,
) -> anyhow::Result<Vec<(u64, String, u64)>> {
    let started = Instant::now();
    let mut inflight = FuturesUnordered::new();
    let mut acked = Vec::new();
    for n in from..to {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64((n - from) as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        while inflight.len() >= IN_FLIGHT {
            if let Some(done) = inflight.next().await {
                acked.push(done?);
            }
        }
        let room = rooms[(n % rooms.len() as u64) as usize].clone();
        let msg = PublishMessage::build()
            .payload(payload(&room, n, base_ms))
            .message_id(format!("search-bench-{n}"));
        let ack = js
            .send_publish(dyschat_protocol::subjects::room_messages(&room), msg)
            .await?;
        inflight.push(async move {
            let ack = ack.await?;
            anyhow::Ok((n, room, ack.sequence))
        });
    }
    while let Some(done) = inflight.next().await {
        acked.push(done?);
    }
    Ok(acked)
}

/// What the search consumer still has to index.
async fn pending(stream: &Stream, consumer: &str) -> anyhow::Result<u64> {
    let info = stream.consumer_info(consumer).await?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

/// Waits until the consumer has nothing pending; the samples `(secs, pending)` on the way.
async fn until_indexed(
    stream: &Stream,
    consumer: &str,
    timeout: Duration,
) -> anyhow::Result<(Duration, Vec<(f64, u64)>)> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last = -1.0f64;
    loop {
        let p = match pending(stream, consumer).await {
            Ok(p) => p,
            // Not made yet (the instance is starting) or a busy server: ask again.
            Err(_) if started.elapsed() < timeout => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let t = started.elapsed().as_secs_f64();
        if t - last >= 1.0 || p == 0 {
            samples.push((t, p));
            last = t;
        }
        if p == 0 && !samples.is_empty() && t > 0.0 {
            return Ok((started.elapsed(), samples));
        }
        ensure!(
            started.elapsed() < timeout,
            "search did not index within {timeout:?} ({p} left)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One query over HTTP: its latency and the results.
async fn query(
    http: &reqwest::Client,
    base: &str,
    user: &BenchUser,
    q: &str,
) -> anyhow::Result<(Duration, Vec<u64>)> {
    let started = Instant::now();
    let resp = http
        .get(format!("{base}/api/v1/search/messages"))
        .query(&[("q", q), ("limit", "20")])
        .bearer_auth(&user.token)
        .send()
        .await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let took = started.elapsed();
    if !status.is_success() {
        bail!("search {q:?}: {status} {body}");
    }
    let seqs = body["results"]
        .as_array()
        .context("results")?
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .collect();
    Ok((took, seqs))
}

pub struct Plan {
    pub messages: u64,
    pub rooms: usize,
    pub live_rate: f64,
    pub live_secs: f64,
    pub queries: usize,
}

pub async fn run(env: &mut Env, tag: &str, plan: &Plan) -> anyhow::Result<SearchBench> {
    let client = async_nats::connect(&env.nats_url).await?;
    let js = jetstream::new(client);
    let stream = js.get_stream(MESSAGES_STREAM).await?;
    let user = BenchUser::mint(format!("{tag}searcher"), format!("{tag}_searcher"))?;
    let setup = Http::new();
    let mut rooms = Vec::with_capacity(plan.rooms);
    for r in 0..plan.rooms {
        rooms.push(
            setup
                .create_room(&env.http(0), &user, &format!("{tag} search {r}"))
                .await?,
        );
    }
    let base_ms = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let mut acked = publish(&js, &rooms, 0, plan.messages, 0.0, base_ms).await?;
    let backlog_publish_per_sec = plan.messages as f64 / started.elapsed().as_secs_f64();
    crate::say(&format!("search: {} messages laid at {backlog_publish_per_sec:.0} msg/s; starting a search instance on an empty index", plan.messages));

    let instance = format!("{tag}bench");
    let consumer = dyschat_protocol::search_layout::consumer(&instance);
    let dir = std::env::temp_dir().join(format!(
        "dyschat-bench-search-{}-{instance}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let entries = stream.clone().info().await?.state.messages;
    let mut search = env.start_service(
        "dyschat-search",
        vec![
            ("DYSCHAT_SEARCH_INSTANCE".into(), instance.clone()),
            (
                "DYSCHAT_SEARCH_INDEX_DIR".into(),
                dir.to_string_lossy().into_owned(),
            ),
            ("DYSCHAT_SEARCH_LOG_LEVEL".into(), "warn".into()),
        ],
        "search",
    )?;
    let timeout = Duration::from_secs(120 + plan.messages / 2_000);
    let outcome = async {
        let (rebuild, rebuild_samples) = until_indexed(&stream, &consumer, timeout).await?;
        let rebuild_secs = rebuild.as_secs_f64();
        crate::say(&format!(
            "search: {entries} entries indexed in {rebuild_secs:.1}s = {:.0}/s",
            entries as f64 / rebuild_secs
        ));
        let nats = async_nats::connect(&env.nats_url).await?;
        dyschat_tests::wait_for_service(&nats, dyschat_protocol::subjects::search::SERVICE).await?;

        // Sustained ingest, queries alongside, lag sampled.
        let live_total = (plan.live_rate * plan.live_secs) as u64;
        let live_started = Instant::now();
        let ingest = {
            let (js, rooms) = (js.clone(), rooms.clone());
            let (from, rate) = (plan.messages, plan.live_rate);
            tokio::spawn(async move {
                publish(&js, &rooms, from, from + live_total, rate, base_ms).await
            })
        };
        let http = reqwest::Client::new();
        let base = env.http(0);
        let mut latency = stats::histogram();
        let (mut errors, mut hits, mut max_pending) = (0u64, 0u64, 0u64);
        for i in 0..plan.queries {
            let q = format!(
                "f{} w{}",
                i as u64 % FREQUENT,
                (i as u64 * 13 + 1) % VOCABULARY
            );
            match query(&http, &base, &user, &q).await {
                Ok((took, seqs)) => {
                    stats::record(&mut latency, took);
                    hits += seqs.len() as u64;
                }
                Err(e) => {
                    errors += 1;
                    if errors <= 3 {
                        crate::say(&format!("search: {e:#}"));
                    }
                }
            }
            if i % 10 == 0 {
                if let Ok(p) = pending(&stream, &consumer).await {
                    max_pending = max_pending.max(p);
                }
            }
        }
        let live = ingest.await.context("ingest task")??;
        let live_secs = live_started.elapsed().as_secs_f64();
        let (_, _) = until_indexed(&stream, &consumer, timeout).await?;
        let live_index_secs = live_started.elapsed().as_secs_f64();
        acked.extend(live);

        // Every sampled message is found by its own word, and only it.
        let step = (acked.len() / 200).max(1);
        let (mut checked, mut failures) = (0u64, 0u64);
        for (n, _room, seq) in acked.iter().step_by(step) {
            checked += 1;
            match query(&http, &base, &user, &format!("u{n}")).await {
                Ok((_, seqs)) if seqs == vec![*seq] => {}
                Ok((_, seqs)) => {
                    failures += 1;
                    if failures <= 3 {
                        crate::say(&format!("search: u{n} found {seqs:?}, expected [{seq}]"));
                    }
                }
                Err(_) => failures += 1,
            }
        }
        let answered = plan.queries as u64 - errors;
        anyhow::Ok(SearchBench {
            messages: plan.messages,
            rooms: plan.rooms,
            backlog_publish_per_sec,
            rebuild_entries: entries,
            rebuild_secs,
            rebuild_msgs_per_sec: entries as f64 / rebuild_secs,
            rebuild_pending_over_time: rebuild_samples,
            live_rate: plan.live_rate,
            live_published: live_total,
            live_secs,
            live_index_msgs_per_sec: live_total as f64 / live_index_secs,
            live_max_pending: max_pending,
            query: Latency::of(&latency),
            query_errors: errors,
            mean_hits: if answered > 0 {
                hits as f64 / answered as f64
            } else {
                0.0
            },
            checked,
            check_failures: failures,
        })
    }
    .await;
    if outcome.is_err() {
        crate::say(&format!("search log:\n{}", search.log_tail(20)));
    }
    search.stop(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Whether every sampled message was found by its own word, and every query answered.
pub fn clean(s: &SearchBench) -> bool {
    s.check_failures == 0 && s.query_errors == 0 && s.checked > 0
}

/// The report's lines.
pub fn lines(s: &SearchBench) -> Vec<String> {
    vec![
        format!(
            "search: {} messages over {} rooms (laid at {:.0} msg/s); a new instance indexed {} entries in {:.1}s = {:.0}/s",
            s.messages, s.rooms, s.backlog_publish_per_sec, s.rebuild_entries, s.rebuild_secs, s.rebuild_msgs_per_sec
        ),
        format!(
            "  behind {:.0} msg/s for {:.1}s: {:.0} msg/s indexed until nothing pending, max pending {}",
            s.live_rate, s.live_secs, s.live_index_msgs_per_sec, s.live_max_pending
        ),
        format!("  query (a frequent and another word, limit 20, {:.1} hits on average): {}", s.mean_hits, s.query.row()),
        format!(
            "  accounting: {} messages looked up by their own word, {} not found exactly; {} query errors",
            s.checked, s.check_failures, s.query_errors
        ),
    ]
}
