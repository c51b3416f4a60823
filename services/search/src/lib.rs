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
    let stream = topology::ensure_messages_stream(&js, &config.topology).await?;
    // A replaced or restarted nats-server may have lost the stream: ensure it again after every
    // reconnection (the consumer is made again by the consumer loop, which fails meanwhile).
    let keeper = {
        let (js, topology) = (js.clone(), config.topology.clone());
        topology::keep(reconnects, shutdown.clone(), move || {
            let (js, topology) = (js.clone(), topology.clone());
            async move {
                topology::ensure_messages_stream(&js, &topology)
                    .await
                    .map(drop)
            }
        })
    };
    let dir = PathBuf::from(&config.search.search_index_dir);
    let index = tokio::task::spawn_blocking(move || index::SearchIndex::open(&dir))
        .await
        .map_err(|e| Error::Consume(e.to_string()))??;
    let indexer = index.indexer()?;
    let (caught_up_tx, mut caught_up) = tokio::sync::watch::channel(false);
    let consumer = consume::Consumer {
        client: client.clone(),
        stream,
        instance: config.search.search_instance.clone(),
        commit_every: std::time::Duration::from_millis(config.search.search_commit_ms),
        caught_up: caught_up_tx,
    };
    let consuming = tokio::spawn(consumer.run(indexer, shutdown.clone()));

    // Answer only once the index holds the stream as it was at start.
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = caught_up.wait_for(|c| *c) => {}
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
    let consumed = consuming.await;
    keeper.abort();
    match consumed {
        Ok(result) => result,
        Err(e) => Err(Error::Consume(e.to_string())),
    }
}
