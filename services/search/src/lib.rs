//! dyschat-search: message search over the messages stream (contract section 9).
//!
//! Each instance keeps an index of its own (tantivy, in `DYSCHAT_SEARCH_INDEX_DIR`) fed by its
//! own durable consumer `search-<instance>` on `DYSCHAT_MESSAGES` ([`consume`]): messages add a
//! document, change events (the message's whole new state) replace it, deletions leave a
//! tombstone, a room's deletion removes its documents. Entries are acked only after the index
//! commit holding them, every few hundred milliseconds. Once the index has caught up with the
//! stream as it was at start, the instance joins the micro service `dyschat-search` (queue
//! group), answering `dyschat.search.messages` ([`query`]).

pub mod config;
mod consume;
pub mod event;
pub mod index;
mod positions;
mod query;

use std::path::PathBuf;
use std::sync::Arc;

use async_nats::jetstream;
use dyschat_protocol::subjects;
use dyschat_runtime::service::{self, Endpoints, Identity, ServiceError};
use dyschat_runtime::{connect, topology};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("consumer: {0}")]
    Consume(String),
}

/// Runs the search instance until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let (client, reconnects) =
        connect::nats_with_reconnects(&config.common, &config.nats, subjects::search::SERVICE)
            .await?;
    let js = jetstream::new(client.clone());
    let streams = topology::ensure_message_streams(&js, &config.topology).await?;
    // A replaced or restarted nats-server may have lost the stream: ensure it again after every
    // reconnection (the consumer is made again by the consumer loop, which fails meanwhile).
    let keeper = {
        let (js, topology) = (js.clone(), config.topology.clone());
        topology::keep(reconnects, shutdown.clone(), move || {
            let (js, topology) = (js.clone(), topology.clone());
            async move {
                topology::ensure_message_streams(&js, &topology)
                    .await
                    .map(drop)
            }
        })
    };
    let dir = PathBuf::from(&config.search.search_index_dir);
    let index = tokio::task::spawn_blocking(move || index::SearchIndex::open(&dir))
        .await
        .map_err(|e| Error::Consume(e.to_string()))??;
    let layout = streams.layout();
    let indexer: consume::Shared = Arc::new(std::sync::Mutex::new(index.indexer_for(layout)?));
    // One follower per partition, all sharing the indexer.
    let mut consuming = Vec::new();
    let mut caught_up = Vec::new();
    for (k, stream) in (0u16..).zip(streams.all()) {
        let (caught_up_tx, caught_up_rx) = tokio::sync::watch::channel(false);
        let consumer = consume::Consumer {
            client: client.clone(),
            k,
            streams: layout,
            stream: stream.clone(),
            instance: config.search.search_instance.clone(),
            commit_every: std::time::Duration::from_millis(config.search.search_commit_ms),
            caught_up: caught_up_tx,
        };
        consuming.push(tokio::spawn(
            consumer.run(indexer.clone(), shutdown.clone()),
        ));
        caught_up.push(caught_up_rx);
    }

    // Answer only once the index holds every stream as it was at start.
    let all_caught_up = async {
        for rx in &mut caught_up {
            let _ = rx.wait_for(|c| *c).await;
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = all_caught_up => {}
    }
    let tracker = TaskTracker::new();
    if !shutdown.is_cancelled() {
        tracing::info!(
            instance = %config.search.search_instance,
            "search index caught up with the stream, serving"
        );
        let queries = Arc::new(query::Queries::new(index));
        let endpoints = Endpoints::new().route(subjects::search::MESSAGES, move |req| {
            let queries = queries.clone();
            async move { queries.answer(req).await }
        });
        service::run(
            client.clone(),
            Identity {
                name: subjects::search::SERVICE,
                description: "DYSCHAT message search",
                group: subjects::search::GROUP,
                metrics_addr: &config.search.search_metrics_addr,
            },
            endpoints,
            tracker,
            config.common.drain_timeout(),
            &shutdown,
        )
        .await?;
    }
    let mut consumed = Ok(());
    for follower in consuming {
        let outcome = match follower.await {
            Ok(result) => result,
            Err(e) => Err(Error::Consume(e.to_string())),
        };
        if consumed.is_ok() {
            consumed = outcome;
        }
    }
    keeper.abort();
    consumed
}
