//! Where a room's messages are stored: the message stream(s), partitioned or not, defined once.
//!
//! With one partition (the default) there is one stream, `DYSCHAT_MESSAGES`, storing
//! `dyschat.msg.room.<room>` and `dyschat.msg.room.<room>.chg.<seq>` exactly as published.
//!
//! With `N > 1` partitions there are `N` streams, `DYSCHAT_MESSAGES_P<k>`, each with its own
//! leader (so the rooms of the world no longer share one). Publishers keep publishing to
//! `dyschat.msg.room.<room>[.chg.<seq>]`; the NATS account's subject mapping ([`Self::mappings`],
//! written into the server configuration) rewrites that to
//! `dyschat.msg.part.<k>.room.<room>[.chg.<seq>]` with `k = partition(room)`, and stream `k`
//! stores that subject. So everything that reads a stream (direct gets, consumers' filters,
//! purges, the expected-last-subject of a change's compare-and-set) names the **stored**
//! subject, which this type builds. A nats-server function token cannot share a token with a
//! literal, hence `part.<k>` as two tokens.
//!
//! [`partition`] is nats-server's `{{partition(N,1)}}`: FNV-1a (32 bit) of the room id's bytes,
//! modulo `N` (`server/subject_transform.go`, `getHashPartition`). A test against a real server
//! proves they agree.
//!
//! A message is identified by (room, seq), the stream sequence of its partition; a room never
//! moves between partitions while `N` stays, which is why `N` is fixed for a deployment.

use crate::ids::is_valid_id;
use crate::layout::MESSAGES_STREAM;
use crate::subjects;

/// The most partitions a mesh may have: the NATS permissions (generated once, not per
/// deployment) name every stream up to this many.
pub const MAX_STREAM_PARTITIONS: u16 = 8;

/// The prefix of a partitioned stored subject, followed by `.<k>.room.<room>`.
pub(crate) const PARTITION_PREFIX: &str = "dyschat.msg.part";

/// Every partitioned message subject (what a send becomes after the server's mapping).
pub const PARTITIONED_MESSAGES_WILDCARD: &str = "dyschat.msg.part.*.room.*";
/// Every partitioned change subject.
pub const PARTITIONED_CHANGES_WILDCARD: &str = "dyschat.msg.part.*.room.*.chg.*";

/// nats-server's `{{partition(n,1)}}` of a room: FNV-1a 32 of its id, modulo `n` (`n >= 1`).
pub fn partition(room_id: &str, n: u16) -> u16 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let hash = room_id
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME));
    // `n` is at least 1 and at most u16::MAX, so the remainder fits.
    (hash % u32::from(n.max(1))) as u16
}

/// The message streams of a mesh with a given number of partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageStreams {
    partitions: u16,
}

impl Default for MessageStreams {
    fn default() -> Self {
        MessageStreams::SINGLE
    }
}

impl MessageStreams {
    /// One stream, `DYSCHAT_MESSAGES`, no mapping: the layout before partitions.
    pub const SINGLE: MessageStreams = MessageStreams { partitions: 1 };

    /// `None` unless `1 <= partitions <= MAX_STREAM_PARTITIONS`.
    pub fn new(partitions: u16) -> Option<MessageStreams> {
        (1..=MAX_STREAM_PARTITIONS)
            .contains(&partitions)
            .then_some(MessageStreams { partitions })
    }

    /// How many streams (partitions) there are.
    pub fn count(self) -> u16 {
        self.partitions
    }

    pub fn is_partitioned(self) -> bool {
        self.partitions > 1
    }

    /// Every partition, in order.
    pub fn all(self) -> impl Iterator<Item = u16> {
        0..self.partitions
    }

    /// The partition of a room (0 when there is one).
    pub fn partition_of(self, room_id: &str) -> u16 {
        partition(room_id, self.partitions)
    }

    /// The stream of partition `k`.
    pub fn stream_name(self, k: u16) -> String {
        if self.is_partitioned() {
            format!("{MESSAGES_STREAM}_P{k}")
        } else {
            MESSAGES_STREAM.to_string()
        }
    }

    /// Every stream's name (what the NATS permissions of one deployment need): the unpartitioned
    /// stream and every partition stream up to [`MAX_STREAM_PARTITIONS`].
    pub fn every_possible_stream() -> Vec<String> {
        let max = MessageStreams {
            partitions: MAX_STREAM_PARTITIONS,
        };
        std::iter::once(MESSAGES_STREAM.to_string())
            .chain(max.all().map(|k| max.stream_name(k)))
            .collect()
    }

    /// The stream holding `room_id`'s messages.
    pub fn room_stream(self, room_id: &str) -> String {
        self.stream_name(self.partition_of(room_id))
    }

    /// The subject prefix of partition `k`'s stored subjects (`dyschat.msg.room` unpartitioned).
    fn prefix(self, k: u16) -> String {
        if self.is_partitioned() {
            format!("{PARTITION_PREFIX}.{k}.room")
        } else {
            "dyschat.msg.room".to_string()
        }
    }

    fn room_prefix(self, room_id: &str) -> String {
        debug_assert!(
            is_valid_id(room_id),
            "unvalidated id in a subject: {room_id:?}"
        );
        format!("{}.{room_id}", self.prefix(self.partition_of(room_id)))
    }

    /// The subject a message of `room_id` is stored under.
    pub fn stored_message(self, room_id: &str) -> String {
        self.room_prefix(room_id)
    }

    /// The subject the change events of `room_id`'s message `seq` are stored under.
    pub fn stored_change(self, room_id: &str, seq: u64) -> String {
        format!("{}.chg.{seq}", self.room_prefix(room_id))
    }

    /// Every stored change subject of `room_id` (its last change; a change's compare-and-set).
    pub fn stored_changes(self, room_id: &str) -> String {
        format!("{}.chg.*", self.room_prefix(room_id))
    }

    /// Every stored subject of `room_id`: its messages and change events (room purge, replays).
    pub fn room_filters(self, room_id: &str) -> [String; 2] {
        [self.stored_message(room_id), self.stored_changes(room_id)]
    }

    /// What stream `k` stores: its messages and their change events.
    pub fn stream_subjects(self, k: u16) -> Vec<String> {
        let p = self.prefix(k);
        vec![format!("{p}.*"), format!("{p}.*.chg.*")]
    }

    /// What stream `k` re-publishes (everything it stores) to [`subjects::LIVE_REPUBLISH_DEST`].
    pub fn republish_source(self, k: u16) -> String {
        format!("{}.>", self.prefix(k))
    }

    /// The account subject mappings the NATS server needs (`mappings { "<from>": "<to>" }`):
    /// none unpartitioned.
    pub fn mappings(self) -> Vec<(String, String)> {
        if !self.is_partitioned() {
            return Vec::new();
        }
        let n = self.partitions;
        let to = format!("{PARTITION_PREFIX}.{{{{partition({n},1)}}}}.room.{{{{wildcard(1)}}}}");
        vec![
            (subjects::ROOM_MESSAGES_WILDCARD.to_string(), to.clone()),
            (
                subjects::ROOM_CHANGES_WILDCARD.to_string(),
                format!("{to}.chg.{{{{wildcard(2)}}}}"),
            ),
        ]
    }

    /// The `mappings` block of a NATS account configuration (empty unpartitioned).
    pub fn mappings_config(self) -> String {
        let mappings = self.mappings();
        if mappings.is_empty() {
            return String::new();
        }
        let mut out = String::from("mappings {\n");
        for (from, to) in mappings {
            out.push_str(&format!("  \"{from}\": \"{to}\"\n"));
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_partition_is_the_old_layout() {
        let s = MessageStreams::SINGLE;
        assert_eq!(s.room_stream("r1"), "DYSCHAT_MESSAGES");
        assert_eq!(s.stored_message("r1"), subjects::room_messages("r1"));
        assert_eq!(s.stored_change("r1", 7), subjects::room_change("r1", 7));
        assert_eq!(s.stored_changes("r1"), subjects::room_changes("r1"));
        assert_eq!(s.room_filters("r1"), subjects::room_stream_filters("r1"));
        assert_eq!(
            s.stream_subjects(0),
            [
                subjects::ROOM_MESSAGES_WILDCARD,
                subjects::ROOM_CHANGES_WILDCARD
            ]
        );
        assert_eq!(s.republish_source(0), subjects::LIVE_REPUBLISH_SOURCE);
        assert!(s.mappings().is_empty() && s.mappings_config().is_empty());
    }

    #[test]
    fn the_partition_is_fnv1a_modulo_n() {
        // FNV-1a 32 of "abc" is 0x1a47e90b; of "" the offset basis 0x811c9dc5.
        assert_eq!(partition("abc", 3), (0x1a47_e90b_u32 % 3) as u16);
        assert_eq!(partition("", 7), (0x811c_9dc5_u32 % 7) as u16);
        assert_eq!(partition("anything", 1), 0);
    }

    #[test]
    fn partitioned_subjects_name_the_partition() {
        let s = MessageStreams::new(3).unwrap();
        let k = s.partition_of("abc");
        assert_eq!(k, 2);
        assert_eq!(s.room_stream("abc"), "DYSCHAT_MESSAGES_P2");
        assert_eq!(s.stored_message("abc"), "dyschat.msg.part.2.room.abc");
        assert_eq!(
            s.stored_change("abc", 5),
            "dyschat.msg.part.2.room.abc.chg.5"
        );
        assert_eq!(s.stream_subjects(1)[1], "dyschat.msg.part.1.room.*.chg.*");
        assert_eq!(s.republish_source(0), "dyschat.msg.part.0.room.>");
        assert_eq!(
            s.mappings()[0].1,
            "dyschat.msg.part.{{partition(3,1)}}.room.{{wildcard(1)}}"
        );
        assert!(MessageStreams::new(0).is_none());
        assert!(MessageStreams::new(MAX_STREAM_PARTITIONS + 1).is_none());
        assert_eq!(
            MessageStreams::every_possible_stream().len(),
            usize::from(MAX_STREAM_PARTITIONS) + 1
        );
        for subject in [s.stored_message("abc"), s.stored_change("abc", 5)] {
            assert_eq!(
                subjects::parse_room_messages(&subject)
                    .or(subjects::parse_change(&subject).map(|(r, _)| r)),
                Some("abc")
            );
        }
        assert_eq!(
            subjects::parse_change(&s.stored_change("abc", 5)),
            Some(("abc", 5))
        );
        assert_eq!(
            subjects::parse_room_messages(&s.stored_change("abc", 5)),
            None
        );
        assert_eq!(
            subjects::parse_room_messages("dyschat.msg.part.x.room.abc"),
            None
        );
    }
}
