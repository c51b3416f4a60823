//! What the buckets hold and the pure logic on it: member-set changes, paging and presence.
//! Nothing here touches the network, so it is all unit-tested.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use dyschat_protocol::wire::{Member, Role, Room};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::store::StoreError;

/// A room as stored under its id in the rooms bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    pub room_id: String,
    pub name: String,
    pub topic: String,
    pub owner_id: String,
    pub created_at: String,
}

impl RoomRecord {
    /// The contract's Room; the member count lives in another bucket, so the caller supplies it.
    pub fn view(self, member_count: u64) -> Room {
        Room {
            room_id: self.room_id,
            name: self.name,
            topic: self.topic,
            owner_id: self.owner_id,
            created_at: self.created_at,
            member_count,
        }
    }
}

/// The members of one room, `user_id -> username`, stored as one JSON object under the room id.
/// A `BTreeMap` keeps the encoding and the member listing in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberSet(pub BTreeMap<String, String>);

impl MemberSet {
    pub fn with(user_id: &str, username: &str) -> Self {
        let mut set = MemberSet::default();
        set.0.insert(user_id.into(), username.into());
        set
    }

    pub fn len(&self) -> u64 {
        self.0.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.0.contains_key(user_id)
    }

    /// The members with whether each is online, in user id order.
    pub fn members(&self, online: &HashSet<String>) -> Vec<Member> {
        self.0
            .iter()
            .map(|(user_id, username)| Member {
                user_id: user_id.clone(),
                username: username.clone(),
                online: online.contains(user_id),
                role: Role::Member,
            })
            .collect()
    }
}

/// One membership change, applied to a member set inside a compare-and-set loop (so it may be
/// applied several times to successive versions of the set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Join { user_id: String, username: String },
    Leave { user_id: String },
}

impl Change {
    /// Applies the change; returns whether the set changed. Joining twice or leaving a room one
    /// is not in changes nothing, which is what makes join and leave idempotent.
    pub fn apply(&self, set: &mut MemberSet) -> bool {
        match self {
            Change::Join { user_id, username } => {
                if set.contains(user_id) {
                    false
                } else {
                    set.0.insert(user_id.clone(), username.clone());
                    true
                }
            }
            Change::Leave { user_id } => set.0.remove(user_id).is_some(),
        }
    }

    pub fn joined(&self) -> bool {
        matches!(self, Change::Join { .. })
    }
}

/// One page of room ids: those after `cursor` in ascending order (ULIDs, so creation order), at
/// most `limit`, and the cursor of the next page when more follow.
pub fn page(
    mut ids: Vec<String>,
    cursor: Option<&str>,
    limit: usize,
) -> (Vec<String>, Option<String>) {
    ids.sort_unstable();
    ids.dedup();
    let mut page: Vec<String> = ids
        .into_iter()
        .filter(|id| cursor.is_none_or(|c| id.as_str() > c))
        .take(limit.saturating_add(1))
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().cloned()
    } else {
        None
    };
    (page, next)
}

/// The users with at least one presence key (`<user_id>.<agent_id>`), i.e. an open socket on
/// some agent.
pub fn online_users<I: IntoIterator<Item = String>>(presence_keys: I) -> HashSet<String> {
    presence_keys
        .into_iter()
        .filter_map(|key| key.split_once('.').map(|(user, _)| user.to_string()))
        .collect()
}

pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Bytes, StoreError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| corrupt(key, e))
}

pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(key, e))
}

fn corrupt(key: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(user: &str) -> Change {
        Change::Join {
            user_id: user.into(),
            username: format!("name-{user}"),
        }
    }

    fn leave(user: &str) -> Change {
        Change::Leave {
            user_id: user.into(),
        }
    }

    #[test]
    fn changes_are_idempotent() {
        let mut set = MemberSet::with("owner", "Owner");
        assert!(join("u1").apply(&mut set));
        assert!(!join("u1").apply(&mut set));
        assert_eq!(set.len(), 2);
        assert!(leave("u1").apply(&mut set));
        assert!(!leave("u1").apply(&mut set));
        assert!(!leave("nobody").apply(&mut set));
        assert_eq!(set, MemberSet::with("owner", "Owner"));
    }

    #[test]
    fn member_sets_encode_as_a_json_map() {
        let mut set = MemberSet::with("b", "Bob");
        join("a").apply(&mut set);
        let bytes = encode("r", &set).unwrap();
        assert_eq!(&bytes[..], br#"{"a":"name-a","b":"Bob"}"#);
        assert_eq!(decode::<MemberSet>("r", &bytes).unwrap(), set);
        assert!(matches!(
            decode::<MemberSet>("r", b"[1]"),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn room_records_round_trip() {
        let record = RoomRecord {
            room_id: "01J".into(),
            name: "General".into(),
            topic: String::new(),
            owner_id: "u1".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
        };
        let bytes = encode("01J", &record).unwrap();
        assert_eq!(decode::<RoomRecord>("01J", &bytes).unwrap(), record);
        let room = record.view(3);
        assert_eq!((room.room_id.as_str(), room.member_count), ("01J", 3));
    }

    #[test]
    fn paging_walks_every_id_once_in_order() {
        let ids: Vec<String> = (0..7).rev().map(|i| format!("r{i}")).collect();
        let (first, next) = page(ids.clone(), None, 3);
        assert_eq!(first, ["r0", "r1", "r2"]);
        assert_eq!(next.as_deref(), Some("r2"));
        let (second, next) = page(ids.clone(), next.as_deref(), 3);
        assert_eq!(second, ["r3", "r4", "r5"]);
        let (third, next) = page(ids.clone(), next.as_deref(), 3);
        assert_eq!((third, next), (vec!["r6".to_string()], None));
        // An exact fit has no next page.
        let (all, next) = page(ids.clone(), None, 7);
        assert_eq!((all.len(), next), (7, None));
        // A cursor past the end is an empty last page.
        assert_eq!(page(ids, Some("z"), 3), (vec![], None));
    }

    #[test]
    fn presence_keys_name_online_users() {
        let online =
            online_users(["u1.agentA", "u1.agentB", "u2.agentA", "junk"].map(String::from));
        assert_eq!(online.len(), 2);
        assert!(online.contains("u1") && online.contains("u2"));
        let set = MemberSet::with("u2", "Two");
        let members = set.members(&online);
        assert!(members[0].online);
        assert!(!MemberSet::with("u3", "Three").members(&online)[0].online);
    }
}
