//! One message stream (partition) as the writer sees it: the stream, where its subjects are
//! stored, and the Redis keys that describe its history (marker, rebuild lock, high water).
//!
//! Each partition is written, checked and rebuilt on its own, exactly as the single stream is
//! when there is one: its sequences are its own, so its high water is compared with its own
//! consumer's ack floor.

use async_nats::jetstream::stream::Stream;
use dyschat_protocol::layout::history::{meta_keys, MetaKeys};
use dyschat_protocol::streams::MessageStreams;

#[derive(Clone)]
pub(crate) struct Partition {
    pub k: u16,
    pub streams: MessageStreams,
    pub stream: Stream,
    pub meta: MetaKeys,
}

impl Partition {
    pub(crate) fn new(streams: MessageStreams, k: u16, stream: Stream) -> Partition {
        Partition {
            k,
            streams,
            stream,
            meta: meta_keys(streams, k),
        }
    }

    /// Whether `room_id`'s messages are in this partition.
    pub(crate) fn holds_room(&self, room_id: &str) -> bool {
        self.streams.partition_of(room_id) == self.k
    }
}
