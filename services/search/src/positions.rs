//! The index's position in each message stream (partition): the highest stream sequence each
//! partition's entries reached, kept in the commit payload. With one stream the payload is the
//! one it always was (`{"applied": n}`); with `N` it also lists every partition's
//! (`{"applied": p0, "partitions": [p0, .., pN-1]}`). A payload that does not list `N`
//! partitions (an index of another layout) holds no position: everything is indexed again.

use dyschat_protocol::search_layout::APPLIED_KEY;
use dyschat_protocol::streams::MessageStreams;

const PARTITIONS_KEY: &str = "partitions";

/// Every partition's position, read from a commit payload.
pub(crate) fn decode(payload: Option<&str>, streams: MessageStreams) -> Vec<u64> {
    let n = usize::from(streams.count());
    let value = payload.and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
    let Some(value) = value else {
        return vec![0; n];
    };
    if !streams.is_partitioned() {
        return vec![value.get(APPLIED_KEY).and_then(|v| v.as_u64()).unwrap_or(0)];
    }
    let listed: Vec<u64> = value
        .get(PARTITIONS_KEY)
        .and_then(|v| v.as_array())
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default();
    if listed.len() == n {
        listed
    } else {
        vec![0; n]
    }
}

/// The commit payload of `positions`.
pub(crate) fn encode(positions: &[u64], streams: MessageStreams) -> String {
    let first = positions.first().copied().unwrap_or(0);
    if streams.is_partitioned() {
        serde_json::json!({ APPLIED_KEY: first, PARTITIONS_KEY: positions }).to_string()
    } else {
        serde_json::json!({ APPLIED_KEY: first }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_keeps_the_old_payload_and_partitions_list_theirs() {
        let one = MessageStreams::SINGLE;
        assert_eq!(encode(&[7], one), r#"{"applied":7}"#);
        assert_eq!(decode(Some(r#"{"applied":7}"#), one), [7]);
        let three = MessageStreams::new(3).unwrap();
        let payload = encode(&[4, 0, 9], three);
        assert_eq!(decode(Some(&payload), three), [4, 0, 9]);
        // Another layout's payload holds no position for this one.
        assert_eq!(decode(Some(r#"{"applied":7}"#), three), [0, 0, 0]);
        assert_eq!(decode(None, three), [0, 0, 0]);
    }
}
