//! Where the mesh keeps things: the names and shapes of streams, consumers, KV buckets and Redis
//! keys, and the keys inside them, defined once.
//!
//! Only names, numbers and key formats live here (no client library), so every crate can agree on
//! them; `dyschat-runtime::topology` turns them into JetStream configurations and ensures them.
//! Every key builder has its parser next to it, so a key written by one service is read by
//! another through the same code.

use std::time::Duration;

use crate::ids::is_valid_id;

/// The stream of room messages (one subject per room, see [`crate::subjects`]).
pub const MESSAGES_STREAM: &str = "DYSCHAT_MESSAGES";
/// msg-writer's durable pull consumer on [`MESSAGES_STREAM`].
pub const WRITER_CONSUMER: &str = "msg-writer";
/// The largest entry the messages stream stores: a message is at most a frame (64 KiB), but a
/// change event carries the message's whole state, reactions and who made them included. A
/// change whose state would be larger is refused (409).
pub const MAX_STORED_BYTES: usize = 512 * 1024;
/// The stream's own de-duplication window: it catches retries racing each other and the short
/// while before msg-writer indexes a send; older retries are found in the retried-send index
/// (see [`history::dedupe_key`]), so the server never holds a day of message ids in memory.
pub const STREAM_DEDUPE_WINDOW: Duration = Duration::from_secs(120);
/// Messages msg-writer could never store, with the reason.
pub const DEAD_LETTER_STREAM: &str = "DYSCHAT_DEADLETTER";
/// How long dead letters are kept.
pub const DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Users by lower-cased username (auth only: it holds password hashes).
pub const USERS_BUCKET: &str = "dyschat_users";
/// Room records by room id.
pub const ROOMS_BUCKET: &str = "dyschat_rooms";
/// One record per (room, member): see [`member_key`].
pub const MEMBERS_BUCKET: &str = "dyschat_members";
/// One entry per (user, room joined): see [`membership_key`]. Each user's rooms without a scan of
/// every room; the member record stays the truth.
pub const MEMBERSHIPS_BUCKET: &str = "dyschat_memberships";
/// One small entry per room, written once at creation: the room list pages this bucket's stream
/// in creation order (a room record may be rewritten later, which would move it in its own
/// bucket's stream, so the list does not page the rooms bucket).
pub const ROOM_INDEX_BUCKET: &str = "dyschat_room_index";
/// One entry per (user, agent) with an open socket: see [`presence_key`].
pub const PRESENCE_BUCKET: &str = "dyschat_presence";
/// One entry per live ws-agent (its id), refreshed like presence: how many agents share the
/// mesh-wide limits, and which agents must confirm that a kicked user's sockets stopped.
pub const AGENTS_BUCKET: &str = "dyschat_agents";
/// Revoked access tokens (logout): key = the token's id (its `jti`, see [`revoked_key`]), value =
/// its expiry in unix seconds (decimal text). Written by auth only, each entry with a per-message
/// TTL that ends a little after the token expires (a revocation is needed exactly as long as the
/// token would be accepted); watched by every ws-agent.
pub const REVOKED_BUCKET: &str = "dyschat_revoked";
/// How long the marker the server leaves when a revocation's TTL ends is kept (the bucket's
/// `limit_markers`): watchers see the key go, then the marker goes too.
pub const REVOKED_MARKER_TTL: Duration = Duration::from_secs(60);
/// How long a revocation outlives its token: covers clocks of auth and the agents that disagree
/// by up to this much.
pub const REVOKED_GRACE: Duration = Duration::from_secs(60);

/// One ban per (room, user): `<room_id>.<user_id>` (see [`room_user_key`]), so a room's bans are
/// one filter and a ban check one get.
pub const BANS_BUCKET: &str = "dyschat_bans";
/// One invitation per (room, user): `<room_id>.<user_id>`; joining uses it up.
pub const INVITES_BUCKET: &str = "dyschat_invites";
/// The one direct room of two users: [`dm_key`] of the pair -> its room id, written with a KV
/// `create`, so both orders and any race agree on one room.
pub const DMS_BUCKET: &str = "dyschat_dms";
/// Who blocks whom: `<blocker>.<blocked>` (see [`block_key`]).
pub const BLOCKS_BUCKET: &str = "dyschat_blocks";
/// The public usernames index (auth writes it, anyone may read it: no password hashes), keyed by
/// [`username_index_key`] so that a username prefix is a subject filter.
pub const USERNAMES_BUCKET: &str = "dyschat_usernames";
/// The public user directory by id (auth writes it): `<user_id>` -> `{user_id, username}`.
pub const USER_IDS_BUCKET: &str = "dyschat_user_ids";
/// Read markers: [`read_key`] -> the `seq` read up to (decimal text), moved forward only by
/// compare-and-set; written and read by the agents. A user's markers are one filter
/// ([`read_filter`]), so `GET /api/v1/me/rooms` reads them all in one batch.
pub const READ_BUCKET: &str = "dyschat_read";
/// Each user's feed marker: `<user_id>` -> the `notification_id` read up to (decimal text),
/// moved forward only by compare-and-set; written and read by the agents.
pub const FEED_READ_BUCKET: &str = "dyschat_feed_read";

/// Every user's notifications, one subject per user (`dyschat.feed.<user_id>`), written by
/// rooms; the stream sequence is the `notification_id`.
pub const FEED_STREAM: &str = "DYSCHAT_FEED";
/// The rooms service's durable consumer of room messages, which makes the notifications.
pub const FEED_CONSUMER: &str = "feed";
/// How long a notification is kept (the contract: at least 30 days).
pub const FEED_MAX_AGE: Duration = Duration::from_secs(31 * 24 * 3600);
/// The newest notifications kept per user; older ones go first.
pub const FEED_MAX_PER_USER: i64 = 10_000;
/// How long the feed stream remembers a `Nats-Msg-Id` (`<room>:<seq>:<user>`): a message the
/// feed consumer is given again within it makes no second notification.
pub const FEED_DEDUPE_WINDOW: Duration = Duration::from_secs(600);
/// How long the server waits for the feed consumer's ack before redelivering.
pub const FEED_ACK_WAIT: Duration = Duration::from_secs(30);
/// Times a message is given to the feed consumer at most (a notification is best effort past
/// that; the message itself is safe in the stream).
pub const FEED_MAX_DELIVER: i64 = 10;
/// Messages given to the feed consumers and not acknowledged yet, at most.
pub const FEED_MAX_ACK_PENDING: i64 = 1_000;

/// The `Nats-Msg-Id` of the notification of `user_id` about message `seq` of `room_id`.
pub fn feed_dedupe_id(room_id: &str, seq: u64, user_id: &str) -> String {
    format!("{room_id}:{seq}:{user_id}")
}

/// NATS counters (a stream with `allow_msg_counter`): one subject per counted thing, see
/// [`crate::subjects::member_count`]. A counter needs no compare-and-set, so a room of 100,000
/// members counts its joins without contention.
pub const COUNTERS_STREAM: &str = "DYSCHAT_COUNTERS";

/// The stream behind a KV bucket (`KV_<bucket>`), for reads the KV API lacks (batched direct get).
pub fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// The stream subject of `key` in `bucket` (`$KV.<bucket>.<key>`); `key` may be a filter such as
/// [`members_filter`].
pub fn kv_subject(bucket: &str, key: &str) -> String {
    format!("$KV.{bucket}.{key}")
}

/// The KV key of a stream subject of `bucket`, `None` for a subject of another bucket.
pub fn kv_key<'a>(bucket: &str, subject: &'a str) -> Option<&'a str> {
    subject
        .strip_prefix("$KV.")?
        .strip_prefix(bucket)?
        .strip_prefix('.')
}

/// How long a presence entry lives unless its agent refreshes it; an agent that dies takes its
/// users offline after at most this long.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);
/// How often an agent refreshes its presence entries.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(10);

/// How many times the writer's consumer delivers a message: without limit (-1). A limit would
/// make the server stop delivering a message the writer could not store yet (during a long
/// Redis outage) without anyone noticing; the writer itself decides what can never be stored.
pub const WRITER_MAX_DELIVER: i64 = -1;
/// How long the server waits for the writer's ack before redelivering.
pub const WRITER_ACK_WAIT: Duration = Duration::from_secs(30);
/// Messages delivered to the writers and not yet acknowledged, at most.
pub const WRITER_MAX_ACK_PENDING: i64 = 20_000;

/// The key of a presence entry: `<user_id>.<agent_id>`.
pub fn presence_key(user_id: &str, agent_id: &str) -> String {
    debug_assert!(is_valid_id(user_id) && is_valid_id(agent_id));
    format!("{user_id}.{agent_id}")
}

/// The key filter of every presence entry of `user_id` (one per agent it has a socket on).
pub fn presence_filter(user_id: &str) -> String {
    format!("{user_id}.*")
}

/// The user of a presence key, `None` for a key not made by [`presence_key`].
pub fn presence_user(key: &str) -> Option<&str> {
    let (user, agent) = key.split_once('.')?;
    (is_valid_id(user) && is_valid_id(agent)).then_some(user)
}

/// The key of a read marker: `<user_id>.<room_id>`.
pub fn read_key(user_id: &str, room_id: &str) -> String {
    debug_assert!(is_valid_id(user_id) && is_valid_id(room_id));
    format!("{user_id}.{room_id}")
}

/// The key filter of every read marker of `user_id`.
pub fn read_filter(user_id: &str) -> String {
    format!("{user_id}.*")
}

/// The room of `user_id`'s read marker key, `None` for a key not made by [`read_key`] for them.
pub fn read_room<'a>(user_id: &str, key: &'a str) -> Option<&'a str> {
    let room = key.strip_prefix(user_id)?.strip_prefix('.')?;
    is_valid_id(room).then_some(room)
}

/// The key of one member record: `<room_id>.<user_id>`, so that every member of a room is one
/// subject filter (`<room_id>.*`) of the bucket's stream.
pub fn member_key(room_id: &str, user_id: &str) -> String {
    debug_assert!(is_valid_id(room_id) && is_valid_id(user_id));
    format!("{room_id}.{user_id}")
}

/// The KV key filter of every member record of `room_id`.
pub fn members_filter(room_id: &str) -> String {
    format!("{room_id}.*")
}

/// `(room_id, user_id)` of a member key.
pub fn parse_member_key(key: &str) -> Option<(&str, &str)> {
    let (room, user) = key.split_once('.')?;
    (is_valid_id(room) && is_valid_id(user)).then_some((room, user))
}

/// The key of a revoked token in [`REVOKED_BUCKET`]: its id, which must be a valid id (a token
/// whose id is not one is refused before it gets here).
pub fn revoked_key(token_id: &str) -> &str {
    debug_assert!(is_valid_id(token_id), "unvalidated token id: {token_id:?}");
    token_id
}

/// The expiry (unix seconds) a revocation entry holds, `None` for a value not written by auth.
pub fn parse_revoked_value(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The key of a record about one user in one room (`<room_id>.<user_id>`): bans, invitations.
/// Same shape as [`member_key`], so [`members_filter`] and [`parse_member_key`] serve them too.
pub fn room_user_key(room_id: &str, user_id: &str) -> String {
    member_key(room_id, user_id)
}

/// The key of the direct room of two users: their ids in sorted order, so either user asking
/// finds the same key.
pub fn dm_key(a: &str, b: &str) -> String {
    debug_assert!(is_valid_id(a) && is_valid_id(b));
    if a <= b {
        format!("{a}.{b}")
    } else {
        format!("{b}.{a}")
    }
}

/// The key of `blocker` blocking `blocked`.
pub fn block_key(blocker: &str, blocked: &str) -> String {
    debug_assert!(is_valid_id(blocker) && is_valid_id(blocked));
    format!("{blocker}.{blocked}")
}

/// The KV key filter of everyone `blocker` blocks.
pub fn blocks_filter(blocker: &str) -> String {
    format!("{blocker}.*")
}

/// The blocked user of a block key.
pub fn parse_block_key(key: &str) -> Option<(&str, &str)> {
    parse_member_key(key)
}

/// The key of a username in [`USERNAMES_BUCKET`]: one token per lower-cased character, `.` as
/// `=` (a `.` would split tokens), so `Al.ic` is `a.l.=.i.c` and every name starting with `al`
/// matches the filter `a.l.>`. `None` for a string that holds a character no username has.
pub fn username_index_key(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let mut key = String::with_capacity(name.len() * 2);
    for b in name.bytes() {
        let token = match b {
            b'.' => b'=',
            b'_' | b'-' => b,
            b if b.is_ascii_alphanumeric() => b.to_ascii_lowercase(),
            _ => return None,
        };
        if !key.is_empty() {
            key.push('.');
        }
        key.push(char::from(token));
    }
    Some(key)
}

/// The index keys of usernames starting with `prefix`: the exact key, and the filter of every
/// longer name (`<exact>.>`). `None` when no username can start with `prefix`.
pub fn username_prefix(prefix: &str) -> Option<(String, String)> {
    let exact = username_index_key(prefix)?;
    let longer = format!("{exact}.>");
    Some((exact, longer))
}

/// The Redis key of a shared rate-limit bucket named `bucket` (`<limit>:<user or address>`);
/// the braces are a hash tag, so a bucket stays on one slot of a Redis Cluster.
pub fn rate_key(bucket: &str) -> String {
    format!("dyschat:rate:{{{bucket}}}")
}

/// The key of a user's membership index entry: `<user_id>.<room_id>`, so that every room of a user
/// is one filter (`<user_id>.*`).
pub fn membership_key(user_id: &str, room_id: &str) -> String {
    debug_assert!(is_valid_id(user_id) && is_valid_id(room_id));
    format!("{user_id}.{room_id}")
}

/// The KV key filter of every membership index entry of `user_id`.
pub fn memberships_filter(user_id: &str) -> String {
    format!("{user_id}.*")
}

/// The Redis layout of room history, shared by msg-writer (writes) and ws-agent (reads).
///
/// One sorted set per room, `dyschat:history:<room_id>`, scored by `seq`, one member per `seq`:
/// the message's current state. That is the payload bytes stored in JetStream for a message
/// never changed, and the state of its newest change event (with `v`, the event's stream
/// sequence) for one edited, reacted to or deleted. msg-writer replaces a member only with a
/// newer version, so redelivered, replayed or late entries change nothing.
pub mod history {
    /// Default and largest page of a history read.
    pub const DEFAULT_PAGE: usize = 50;
    pub const MAX_PAGE: usize = 100;

    /// Present with the value [`MARKER_COMPLETE`] while Redis holds the whole history. A Redis
    /// that was emptied or replaced lacks it, which tells msg-writer to rebuild from JetStream.
    pub const MARKER_KEY: &str = "dyschat:meta:history-marker";
    /// The value names the layout: a history written before the per-sender sets
    /// ([`sent_key`]) existed says `complete`, one written before change events were applied
    /// says `complete-v2`, one written before every per-room key carried the room's hash tag
    /// (`{<room_id>}`, so that a Redis Cluster keeps a room's keys on one slot) says
    /// `complete-v3`; none is this value, so msg-writer rebuilds it from the stream (into the
    /// keys of this layout, then removes the keys of the old one, [`LEGACY_PATTERNS`]) and
    /// agents read the stream meanwhile.
    pub const MARKER_COMPLETE: &str = "complete-v4";
    pub const MARKER_REBUILDING: &str = "rebuilding";
    /// Held (with a TTL) by the one writer rebuilding, so several writers do not all rebuild.
    pub const REBUILD_LOCK_KEY: &str = "dyschat:meta:rebuild-lock";

    /// A sorted set with one member, [`HIGH_WATER_MEMBER`], scored by the highest stream
    /// sequence ever stored (raised with `ZADD GT` in the same pipeline as the messages). Every
    /// message the writer acked is at or below it, so a Redis whose high water is below the
    /// writer consumer's ack floor has lost acknowledged writes (restored from an old AOF, say)
    /// and is rebuilt.
    pub const HIGH_WATER_KEY: &str = "dyschat:meta:high-water";
    pub const HIGH_WATER_MEMBER: &str = "seq";

    /// The keys that describe the history of one message stream (partition): its marker, its
    /// rebuild lock and its high water, compared against that stream's writer consumer. A
    /// partition is rebuilt, trusted and checked on its own, since its sequences are its own.
    /// Unpartitioned they are the keys above, so a deployment of one stream needs no migration.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MetaKeys {
        pub marker: String,
        pub rebuild_lock: String,
        pub high_water: String,
    }

    /// The [`MetaKeys`] of partition `k` of `streams`.
    pub fn meta_keys(streams: crate::streams::MessageStreams, k: u16) -> MetaKeys {
        if streams.is_partitioned() {
            MetaKeys {
                marker: format!("{MARKER_KEY}:p{k}"),
                rebuild_lock: format!("{REBUILD_LOCK_KEY}:p{k}"),
                high_water: format!("{HIGH_WATER_KEY}:p{k}"),
            }
        } else {
            MetaKeys {
                marker: MARKER_KEY.to_string(),
                rebuild_lock: REBUILD_LOCK_KEY.to_string(),
                high_water: HIGH_WATER_KEY.to_string(),
            }
        }
    }

    /// The [`MetaKeys`] of the partition holding `room_id`.
    pub fn room_meta_keys(streams: crate::streams::MessageStreams, room_id: &str) -> MetaKeys {
        meta_keys(streams, streams.partition_of(room_id))
    }

    /// The sorted set of one room. Every per-room key carries the room's hash tag `{<room_id>}`:
    /// on a Redis Cluster all of a room's keys share one slot, so the commands that touch
    /// several of them (one `ZCOUNT` each of the unread count, `RENAME` to [`corrupt_key`], the
    /// pipelines of one room) stay on one master; on one Redis the braces are only characters.
    pub fn key(room_id: &str) -> String {
        format!("dyschat:history:{{{room_id}}}")
    }

    /// The keys of the layout before `complete-v4` (no hash tag), as `SCAN MATCH` patterns:
    /// after a rebuild into the new keys, msg-writer deletes what matches them. Room ids never
    /// hold `{`, so a key of the new layout never matches.
    pub const LEGACY_PATTERNS: [&str; 3] = [
        "dyschat:history:[^{]*",
        "dyschat:meta:deleted:[^{]*",
        "dyschat:meta:rebuilding:[^{]*",
    ];

    /// The retried-send index of one room for one UTC day (days since 1970-01-01): field
    /// [`dedupe_field`] -> the stream sequence of the first send with that id. msg-writer fills
    /// it with the history and expires a day's hash after the dedupe window and a day more, so
    /// an agent finds a retry of any age within the window by looking at the days it spans,
    /// without the stream holding a day of ids in memory.
    pub fn dedupe_key(room_id: &str, day: u64) -> String {
        format!("dyschat:dedupe:{{{room_id}}}:{day}")
    }

    /// The sorted set of the seqs of one sender's messages in one room (score = member = seq),
    /// beside the history: a user's unread count is `ZCOUNT` of the history minus `ZCOUNT` of
    /// their own set above the read marker, two O(log n) calls whatever the room's size.
    pub fn sent_key(room_id: &str, sender_id: &str) -> String {
        format!("dyschat:sent:{{{room_id}}}:{sender_id}")
    }

    /// The sorted set of the seqs of the room's messages that mention `user_id` (score = member
    /// = seq), written by msg-writer beside the per-sender sets: a user's mention
    /// count above the read marker is one `ZCOUNT`, whatever the room's size.
    pub fn mentioned_key(room_id: &str, user_id: &str) -> String {
        format!("dyschat:mentioned:{{{room_id}}}:{user_id}")
    }

    /// The pattern of every mention set of a room (for the room's deletion).
    pub fn mentioned_pattern(room_id: &str) -> String {
        format!("dyschat:mentioned:{{{room_id}}}:*")
    }

    /// The pattern of every per-sender set of a room (for the room's deletion).
    pub fn sent_pattern(room_id: &str) -> String {
        format!("dyschat:sent:{{{room_id}}}:*")
    }

    /// The pattern of every day of a room's retried-send index (for the room's deletion).
    pub fn dedupe_pattern(room_id: &str) -> String {
        format!("dyschat:dedupe:{{{room_id}}}:*")
    }

    /// Present once a room was deleted: its messages are never stored again (a late delivery
    /// of one of them is acknowledged and dropped).
    pub fn deleted_key(room_id: &str) -> String {
        format!("dyschat:meta:deleted:{{{room_id}}}")
    }

    /// The sender of a send field ([`dedupe_field`]); ids hold no `:`.
    pub fn sender_of(field: &str) -> &str {
        field.split_once(':').map_or(field, |(sender, _)| sender)
    }

    /// The field of a send in [`dedupe_key`]: `<sender_id>:<client_msg_id>`.
    pub fn dedupe_field(sender_id: &str, client_msg_id: &str) -> String {
        format!("{sender_id}:{client_msg_id}")
    }

    /// The UTC day (days since 1970-01-01) of a time given in milliseconds since then.
    pub fn day_of(unix_ms: i64) -> u64 {
        u64::try_from(unix_ms.div_euclid(86_400_000)).unwrap_or(0)
    }

    /// Present while one room's history is being rebuilt from the stream (after its key was
    /// found corrupt and set aside); readers must not trust the room's history meanwhile.
    pub fn room_rebuilding_key(room_id: &str) -> String {
        format!("dyschat:meta:rebuilding:{{{room_id}}}")
    }

    /// The pattern of every room's [`room_rebuilding_key`] (looked for on every master).
    pub const ROOM_REBUILDING_PATTERN: &str = "dyschat:meta:rebuilding:{*}";

    /// The room a [`room_rebuilding_key`] names.
    pub fn rebuilding_room(key: &str) -> Option<&str> {
        key.strip_prefix("dyschat:meta:rebuilding:{")?
            .strip_suffix('}')
    }

    /// Where a corrupt room key is moved, for an operator to look at.
    pub fn corrupt_key(room_id: &str, at_unix_ms: i64) -> String {
        format!("dyschat:corrupt:{{{room_id}}}:{at_unix_ms}")
    }

    /// The pattern of every [`corrupt_key`] of a room.
    pub fn corrupt_pattern(room_id: &str) -> String {
        format!("dyschat:corrupt:{{{room_id}}}:*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(presence_key("u1", "a1"), "u1.a1");
        assert_eq!(presence_user("u1.a1"), Some("u1"));
        assert_eq!(presence_user("junk"), None);
        assert_eq!(presence_user("u1.a.b"), None);
        assert_eq!(read_key("u1", "r1"), "u1.r1");
        assert_eq!(read_room("u1", &read_key("u1", "r1")), Some("r1"));
        assert_eq!(read_room("u1", "u2.r1"), None);
        assert_eq!(read_room("u1", "u1.r.x"), None);
        assert_eq!(member_key("r1", "u1"), "r1.u1");
        assert_eq!(parse_member_key("r1.u1"), Some(("r1", "u1")));
        assert_eq!(parse_member_key("r1"), None);
        assert_eq!(members_filter("r1"), "r1.*");
        assert_eq!(membership_key("u1", "r1"), "u1.r1");
        assert_eq!(memberships_filter("u1"), "u1.*");
        assert_eq!(kv_stream(MEMBERS_BUCKET), "KV_dyschat_members");
        let subject = kv_subject(MEMBERS_BUCKET, &member_key("r1", "u1"));
        assert_eq!(subject, "$KV.dyschat_members.r1.u1");
        assert_eq!(kv_key(MEMBERS_BUCKET, &subject), Some("r1.u1"));
        assert_eq!(kv_key(PRESENCE_BUCKET, &subject), None);
        assert_eq!(kv_key("dyschat", &subject), None);
        assert_eq!(history::key("r1"), "dyschat:history:{r1}");
        let flag = history::room_rebuilding_key("r1");
        assert_eq!(history::rebuilding_room(&flag), Some("r1"));
        assert_eq!(history::rebuilding_room("dyschat:meta:rebuilding:r1"), None);
        assert_eq!(revoked_key("0123abcd"), "0123abcd");
        assert_eq!(parse_revoked_value(b"1700000000"), Some(1_700_000_000));
        assert_eq!(parse_revoked_value(b"soon"), None);
        assert_eq!(parse_revoked_value(&[0xff]), None);
    }

    #[test]
    fn pair_keys_sort_and_parse() {
        assert_eq!(dm_key("b", "a"), "a.b");
        assert_eq!(dm_key("a", "b"), "a.b");
        assert_eq!(room_user_key("r", "u"), "r.u");
        assert_eq!(block_key("alice", "bob"), "alice.bob");
        assert_eq!(blocks_filter("alice"), "alice.*");
        assert_eq!(parse_block_key("alice.bob"), Some(("alice", "bob")));
    }

    #[test]
    fn username_keys_make_prefixes_filters() {
        assert_eq!(username_index_key("Al.ic").as_deref(), Some("a.l.=.i.c"));
        assert_eq!(username_index_key("x_Y-9").as_deref(), Some("x._.y.-.9"));
        assert_eq!(username_index_key(""), None);
        for bad in ["a b", "a*", "a>", "é"] {
            assert_eq!(username_index_key(bad), None, "{bad}");
        }
        let (exact, longer) = username_prefix("AL").unwrap();
        assert_eq!((exact.as_str(), longer.as_str()), ("a.l", "a.l.>"));
        assert!(username_index_key("alice").unwrap().starts_with("a.l."));
    }
}
