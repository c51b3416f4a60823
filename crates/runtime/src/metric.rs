//! Every metric name of the mesh, defined once. Dashboards (`deploy/grafana/`) and alerts use
//! these names, and a test checks the dashboards against what the services really export.
//!
//! Every series starts with `dyschat_`; labels are small fixed sets (frame types, endpoints,
//! routes, error codes), never room or user ids.

// Requests between services (rpc) and at the HTTP edge.
pub const REQUESTS_TOTAL: &str = "dyschat_requests_total";
pub const REQUEST_SECONDS: &str = "dyschat_request_seconds";
pub const REQUESTS_SHED_TOTAL: &str = "dyschat_requests_shed_total";
pub const HTTP_REQUESTS_TOTAL: &str = "dyschat_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "dyschat_http_request_seconds";
pub const ERRORS_TOTAL: &str = "dyschat_errors_total";
pub const RATE_LIMITED_TOTAL: &str = "dyschat_rate_limited_total";
pub const ORIGIN_REFUSED_TOTAL: &str = "dyschat_origin_refused_total";
/// Connections closed at once because their client address held too many.
pub const CONNECTIONS_REFUSED_TOTAL: &str = "dyschat_connections_refused_total";

// Messages through the agent.
pub const MESSAGES_PUBLISHED_TOTAL: &str = "dyschat_messages_published_total";
pub const PUBLISH_ACK_SECONDS: &str = "dyschat_publish_ack_seconds";
pub const DELIVERY_LATENCY_SECONDS: &str = "dyschat_delivery_latency_seconds";
/// One hop of a message through an agent, labelled `hop` (see [`hop`]): where the time between a
/// client's frame and its ack, or between the live copy and the member's socket, goes. Finer
/// buckets than the other latencies ([`crate::prometheus::HOP_BUCKETS`]): hops are microseconds.
pub const HOP_SECONDS: &str = "dyschat_hop_seconds";

/// The `hop` label values of [`HOP_SECONDS`], in the order a message takes them.
pub mod hop {
    /// A `send` handled → its publish starts (validation, limits, authorization, lookups),
    /// [`DEDUPE`] included.
    pub const CHECKS: &str = "checks";
    /// Of [`CHECKS`]: whether a `client_msg_id` was sent before (the retried-send index in
    /// Redis, and the stream when the index cannot vouch).
    pub const DEDUPE: &str = "dedupe";
    /// The publish call itself (handing the message to the NATS connection).
    pub const PUBLISH: &str = "publish";
    /// The publish on the wire → the stream's acknowledgement received.
    pub const STORE_ACK: &str = "store_ack";
    /// An `ack` frame queued on its socket → its write begins.
    pub const ACK_QUEUED: &str = "ack_queued";
    /// A live copy received from NATS → queued on every member socket of the agent.
    pub const LIVE_FAN_OUT: &str = "live_fan_out";
    /// A `message` frame queued on a socket → its write begins.
    pub const MESSAGE_QUEUED: &str = "message_queued";
}

// WebSockets.
pub const WS_SOCKETS_OPEN: &str = "dyschat_ws_sockets_open";
pub const WS_FRAMES_IN_TOTAL: &str = "dyschat_ws_frames_in_total";
pub const WS_FRAMES_OUT_TOTAL: &str = "dyschat_ws_frames_out_total";
pub const WS_MESSAGES_DELIVERED_TOTAL: &str = "dyschat_ws_messages_delivered_total";
pub const WS_ROOM_SUBSCRIPTIONS: &str = "dyschat_ws_room_subscriptions";
pub const WS_SLOW_CONSUMER_CLOSED_TOTAL: &str = "dyschat_ws_slow_consumer_closed_total";
pub const WS_GAP_FILLS_TOTAL: &str = "dyschat_ws_gap_fills_total";
/// Sockets dropped because a write blocked past `DYSCHAT_WRITE_TIMEOUT_SECS`.
pub const WS_WRITE_TIMEOUTS_TOTAL: &str = "dyschat_ws_write_timeouts_total";
/// Frames sent per socket write: queued frames leave together (one flush), so under load this
/// rises above 1 and the kernel sees fewer, larger writes.
pub const WS_FRAMES_PER_WRITE: &str = "dyschat_ws_frames_per_write";

/// Sends with a `client_msg_id` whose retry check had more unindexed messages to read than the
/// recovery limit (only the stream's short window protected them).
pub const DEDUPE_SCANS_OVERFLOWED_TOTAL: &str = "dyschat_dedupe_scans_overflowed_total";

// Redis.
pub const REDIS_SECONDS: &str = "dyschat_redis_seconds";

// msg-writer.
pub const WRITER_MESSAGES_STORED_TOTAL: &str = "dyschat_writer_messages_stored_total";
pub const WRITER_BATCH_SIZE: &str = "dyschat_writer_batch_size";
/// Attempts to write a chunk that the store refused (out of memory, read-only, gone...): the
/// messages are kept and written again.
pub const WRITER_STORE_REFUSED_TOTAL: &str = "dyschat_writer_store_refused_total";
pub const WRITER_DEAD_LETTERED_TOTAL: &str = "dyschat_writer_dead_lettered_total";
pub const WRITER_REBUILDS_TOTAL: &str = "dyschat_writer_rebuilds_total";
pub const WRITER_CONSUMER_PENDING: &str = "dyschat_writer_consumer_pending";
pub const WRITER_CONSUMER_ACK_PENDING: &str = "dyschat_writer_consumer_ack_pending";

// search.
/// Message states written to the index (new, edited, deleted).
pub const SEARCH_INDEXED_TOTAL: &str = "dyschat_search_indexed_total";
/// States not written: no newer than what the index holds, or of a deleted room.
pub const SEARCH_SKIPPED_TOTAL: &str = "dyschat_search_skipped_total";
/// The highest stream sequence the index's last commit holds.
pub const SEARCH_APPLIED_SEQ: &str = "dyschat_search_applied_seq";
pub const SEARCH_COMMIT_SECONDS: &str = "dyschat_search_commit_seconds";
pub const SEARCH_QUERY_SECONDS: &str = "dyschat_search_query_seconds";

/// Exports each counter at 0, so dashboards and `increase()` see the first real event of a rare
/// counter (a series that does not exist yet has no increase).
pub fn export_at_zero(counters: &[&'static str]) {
    for name in counters {
        metrics::counter!(*name).increment(0);
    }
}
