//! The search service's part of the layout: one durable pull consumer per search instance on the
//! messages stream (`search-<instance>`), which delivers messages and change events alike.
//!
//! An instance's index remembers the highest stream sequence it holds (its commit payload). At
//! start the consumer is made to agree with it: a consumer whose ack floor is past what the index
//! holds (the index was lost or replaced by an older copy) is deleted and made again from the
//! index's position, so the index is rebuilt from the stream instead of missing what was acked.
//! So is one holding deliveries not acked yet: the consumer is the instance's alone, so those
//! went to its previous life (killed before its commit) and would only come again after the ack
//! wait; made again from the index's position, they come at once.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream,
};
use dyschat_protocol::search_layout;

use super::{classify, retrying, TopologyError};

/// Longer than the slowest index commit; an entry unacked for this long comes again.
pub const SEARCH_ACK_WAIT: Duration = Duration::from_secs(60);
/// More entries in flight than two commits' batches.
pub const SEARCH_MAX_ACK_PENDING: i64 = 20_000;

/// The consumer of `instance`, delivering from the stream sequence after `applied`.
pub fn search_consumer_config(instance: &str, applied: u64) -> pull::Config {
    pull::Config {
        durable_name: Some(search_layout::consumer(instance)),
        description: Some("search: indexes room messages and their changes".into()),
        deliver_policy: if applied == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: applied + 1,
            }
        },
        ack_policy: AckPolicy::Explicit,
        ack_wait: SEARCH_ACK_WAIT,
        // Redelivered until indexed: an entry the index cannot take is acked, never refused.
        max_deliver: -1,
        max_ack_pending: SEARCH_MAX_ACK_PENDING,
        ..Default::default()
    }
}

/// The consumer of `instance`, made to deliver everything after `applied` (see the module
/// documentation). Returns it and whether it was made afresh.
pub async fn ensure_search_consumer(
    stream: &stream::Stream,
    instance: &str,
    applied: u64,
) -> Result<(jetstream::consumer::Consumer<pull::Config>, bool), TopologyError> {
    let name = search_layout::consumer(instance);
    retrying(|| async {
        if let Ok(mut existing) = stream.get_consumer::<pull::Config>(&name).await {
            let info = existing
                .info()
                .await
                .map_err(|e| classify("consumer", &name, &e))?;
            let floor = info.ack_floor.stream_sequence;
            if floor <= applied && info.num_ack_pending == 0 {
                return Ok((existing, false));
            }
            tracing::info!(
                consumer = %name,
                floor,
                applied,
                unacked = info.num_ack_pending,
                "consuming again from the index's position"
            );
            stream
                .delete_consumer(&name)
                .await
                .map_err(|e| classify("consumer", &name, &e))?;
        }
        let consumer = stream
            .create_consumer(search_consumer_config(instance, applied))
            .await
            .map_err(|e| classify("consumer", &name, &e))?;
        Ok((consumer, true))
    })
    .await
}
