//! How one room's share of a chunk lands in its history sorted set, so that the set holds each
//! message's current state whatever order, and however often, messages and change events arrive.
//!
//! Every write at a message's `seq` has a version: 0 for the message as sent, the change event's
//! own stream sequence for a state a change produced. A write replaces what the set holds at that
//! `seq` only if the set holds nothing there or something of a lower version ([`replaces`]). That
//! makes the outcome the newest state of all writes seen, in any order, with any repetition. In
//! particular a redelivered or replayed original never brings back a text a change replaced, which
//! is what erasing a deleted message relies on.
//!
//! The rule runs twice: in Rust, to fold the writes of one chunk to one per `seq`
//! ([`crate::batch::group_by_room`]), and in Redis, in [`SCRIPT`], against what the set holds,
//! atomically (one `EVALSHA` per room and chunk, one key, so it also runs on Redis Cluster). Plain
//! messages appended to a room cost one `ZCOUNT` over their range and the `ZADD` of before.

use std::sync::LazyLock;

use dyschat_protocol::layout::history as layout;
use dyschat_runtime::redis_conn::{Batch, GroupReplies, RedisConn};

use crate::store::RoomWrite;

/// Whether a write of version `incoming` replaces what the set holds at its `seq` (`None`:
/// nothing). Originals have version 0, so they only fill an empty place.
pub(crate) fn replaces(current: Option<u64>, incoming: u64) -> bool {
    current.is_none_or(|v| v < incoming)
}

/// `KEYS[1]`: a room's history. `ARGV[1]`: how many originals follow, as `seq, payload` pairs in
/// ascending `seq`; then states, as `seq, version, state` triples, at most one per `seq`.
/// Returns how many members it wrote.
const SOURCE: &str = r#"
local key = KEYS[1]
local n = tonumber(ARGV[1])
local last = 1 + 2 * n
local written = 0
local function zadd(t, from, to)
  for a = from, to, 1000 do
    redis.call('ZADD', key, unpack(t, a, math.min(a + 999, to)))
  end
end
if n > 0 then
  if redis.call('ZCOUNT', key, ARGV[2], ARGV[last - 1]) == 0 then
    zadd(ARGV, 2, last)
    written = n
  else
    local missing = {}
    for i = 2, last, 2 do
      if redis.call('ZCOUNT', key, ARGV[i], ARGV[i]) == 0 then
        missing[#missing + 1] = ARGV[i]
        missing[#missing + 1] = ARGV[i + 1]
        written = written + 1
      end
    end
    if #missing > 0 then
      zadd(missing, 1, #missing)
    end
  end
end
for i = last + 1, #ARGV, 3 do
  local seq, version = ARGV[i], tonumber(ARGV[i + 1])
  local current = redis.call('ZRANGEBYSCORE', key, seq, seq)
  local newer = false
  for _, member in ipairs(current) do
    local ok, state = pcall(cjson.decode, member)
    local v = ok and type(state) == 'table' and tonumber(state.v) or 0
    if v >= version then
      newer = true
    end
  end
  if not newer then
    if #current > 0 then
      redis.call('ZREMRANGEBYSCORE', key, seq, seq)
    end
    redis.call('ZADD', key, seq, ARGV[i + 2])
    written = written + 1
  end
end
return written
"#;

/// The script, with its SHA-1 computed once.
pub(crate) static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SOURCE));

/// Queues the room's history writes on `pipe` as one `EVALSHA` (one reply). The command is built
/// directly (not through `ScriptInvocation`) so each payload is copied once, as by `ZADD` before.
pub(crate) fn queue_apply(pipe: &mut redis::Pipeline, room: &RoomWrite<'_>) {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(SCRIPT.get_hash())
        .arg(1)
        .arg(layout::key(room.room_id))
        .arg(room.messages.len());
    for (seq, payload) in &room.messages {
        cmd.arg(*seq).arg(*payload);
    }
    for (seq, version, state) in &room.states {
        cmd.arg(*seq).arg(*version).arg(*state);
    }
    pipe.add_command(cmd);
}

fn is_noscript(reply: &redis::RedisResult<redis::Value>) -> bool {
    matches!(reply, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

/// Sends `batch` and returns the replies. When Redis does not know the script (restarted,
/// `SCRIPT FLUSH`; on a cluster, any master), it is loaded (on every node) and the whole batch
/// sent once more: every write in it may be repeated harmlessly.
pub(crate) async fn query(conn: &mut RedisConn, batch: &Batch) -> redis::RedisResult<GroupReplies> {
    let replies = batch.query(conn).await?;
    if !replies.iter().flatten().any(is_noscript) {
        return Ok(replies);
    }
    tracing::info!("loading the history script into Redis");
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(SOURCE)
        .query_async(conn)
        .await?;
    batch.query(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_only_an_older_version() {
        assert!(replaces(None, 0), "an original fills an empty place");
        assert!(!replaces(Some(0), 0), "an original never replaces anything");
        assert!(
            !replaces(Some(9), 0),
            "nor does a late original bring back the text"
        );
        assert!(replaces(None, 9), "a change before its message is inserted");
        assert!(replaces(Some(0), 9));
        assert!(replaces(Some(7), 9));
        assert!(!replaces(Some(9), 9), "a repeated change is a no-op");
        assert!(
            !replaces(Some(12), 9),
            "a late change never replaces a newer state"
        );
    }

    /// Every order of the same writes, with repeats, ends with the newest: the rule is what
    /// makes the history independent of redeliveries and of chunks overtaking each other.
    #[test]
    fn any_order_of_writes_ends_with_the_newest() {
        let writes = [0u64, 9, 7, 0, 12, 9];
        let mut order: Vec<usize> = (0..writes.len()).collect();
        let mut orders = 0;
        // Heap's algorithm over all 720 orders.
        let mut c = vec![0; order.len()];
        let mut check = |order: &[usize]| {
            let mut held = None;
            for &i in order {
                if replaces(held, writes[i]) {
                    held = Some(writes[i]);
                }
            }
            assert_eq!(held, Some(12), "order {order:?}");
            orders += 1;
        };
        check(&order);
        let mut i = 0;
        while i < order.len() {
            if c[i] < i {
                let j = if i % 2 == 0 { 0 } else { c[i] };
                order.swap(j, i);
                check(&order);
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        assert_eq!(orders, 720);
    }

    #[test]
    fn the_command_carries_originals_then_states() {
        let room = RoomWrite {
            room_id: "r",
            messages: vec![(3, b"a"), (5, b"b")],
            states: vec![(4, 9, b"s")],
            ..RoomWrite::default()
        };
        let mut pipe = redis::pipe();
        queue_apply(&mut pipe, &room);
        let packed = String::from_utf8(pipe.get_packed_pipeline()).unwrap();
        let args: Vec<&str> = packed
            .split("\r\n")
            .filter(|l| !l.starts_with('*') && !l.starts_with('$') && !l.is_empty())
            .collect();
        assert_eq!(
            args,
            [
                "EVALSHA",
                SCRIPT.get_hash(),
                "1",
                "dyschat:history:{r}",
                "2",
                "3",
                "a",
                "5",
                "b",
                "4",
                "9",
                "s"
            ]
        );
    }
}
