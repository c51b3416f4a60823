//! What the rooms service stores, as JSON values of its buckets, and the contract's views of them.
//! Nothing here touches the network, so it is all unit-tested.
//!
//! Every field added after the first version of a record is `#[serde(default)]`, so records
//! written before it still read (a room of issue 9 is a public room of kind `room`).

use bytes::Bytes;
use dyschat_protocol::policy::{RoomKind, Visibility};
use dyschat_protocol::wire::{Ban, Member, Role, Room, UserView};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::store::StoreError;

/// A room, under its id in `dyschat_rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoomRecord {
    pub room_id: String,
    pub name: String,
    pub topic: String,
    pub owner_id: String,
    pub created_at: String,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub kind: RoomKind,
    /// Set first when the room is deleted: from then on the room is `not_found` everywhere,
    /// while its records are removed; the record itself goes last.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// A direct room's two users, in the order of their ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<UserView>,
}

impl RoomRecord {
    /// The contract's Room; the member count is a counter of its own, so the caller supplies it.
    pub fn view(self, member_count: u64) -> Room {
        Room {
            room_id: self.room_id,
            name: self.name,
            topic: self.topic,
            owner_id: self.owner_id,
            created_at: self.created_at,
            member_count,
            visibility: self.visibility,
            kind: self.kind,
        }
    }

    /// The other user of a direct room, `None` in a room or for a user who is not one of them.
    pub fn peer_of(&self, user_id: &str) -> Option<&UserView> {
        if self.kind != RoomKind::Direct || !self.peers.iter().any(|p| p.user_id == user_id) {
            return None;
        }
        self.peers.iter().find(|p| p.user_id != user_id)
    }

    /// The role a user joining this room gets: its creator is its owner, anyone else a member.
    pub fn role_of(&self, user_id: &str) -> Role {
        if self.owner_id == user_id {
            Role::Owner
        } else {
            Role::Member
        }
    }

    pub fn index_entry(&self) -> RoomIndexEntry {
        RoomIndexEntry {
            name: self.name.clone(),
            created_at: self.created_at.clone(),
            kind: self.kind,
        }
    }
}

/// One member of one room, under `<room_id>.<user_id>` in `dyschat_members`. Its KV revision
/// orders what happens to the pair (see `Access::revision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberRecord {
    pub user_id: String,
    pub username: String,
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub joined_at: String,
}

impl MemberRecord {
    pub fn view(self, online: bool) -> Member {
        Member {
            user_id: self.user_id,
            username: self.username,
            online,
            role: self.role,
        }
    }
}

/// The user's side of a membership, under `<user_id>.<room_id>` in `dyschat_memberships`: what
/// "my rooms" and the quota of rooms joined read, without touching any room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MembershipEntry {
    #[serde(default)]
    pub joined_at: String,
    #[serde(default)]
    pub kind: RoomKind,
}

/// A room's entry in `dyschat_room_index`, written once when the room is created: small, so a
/// list page reads little, and never rewritten, so the list's order (the index stream's
/// sequence) is creation order and stays stable across pages. What may change later (name,
/// visibility) is read from the room records of the page; `name` is what the room was created
/// as, for an operator. Direct rooms get no entry: the list never shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoomIndexEntry {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub kind: RoomKind,
}

/// An invitation, under `<room_id>.<user_id>` in `dyschat_invites`; joining uses it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InviteRecord {
    pub by: String,
    pub at: String,
}

/// A ban, under `<room_id>.<user_id>` in `dyschat_bans`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BanRecord {
    pub user_id: String,
    pub username: String,
    pub by: String,
    #[serde(default)]
    pub reason: String,
    pub at: String,
}

impl BanRecord {
    pub fn view(self) -> Ban {
        Ban {
            user_id: self.user_id,
            username: self.username,
            by: self.by,
            reason: self.reason,
            at: self.at,
        }
    }
}

/// The direct room of two users, under their sorted pair in `dyschat_dms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DmEntry {
    pub room_id: String,
}

/// A block, under `<blocker>.<blocked>` in `dyschat_blocks`: the blocked user's name, for the
/// blocker's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockRecord {
    pub username: String,
    pub at: String,
}

/// The payload of a NATS counter's last message, `{"val":"<decimal>"}`.
#[derive(Debug, Deserialize)]
struct CounterValue {
    val: String,
}

/// A counter's total; a count below zero (which only a lost increment could cause) reads as 0.
pub(crate) fn counter_total(key: &str, payload: &[u8]) -> Result<u64, StoreError> {
    let value: CounterValue = decode(key, payload)?;
    parse_total(key, &value.val)
}

/// The total in an increment's ack (`val`), parsed like [`counter_total`].
pub(crate) fn parse_total(key: &str, value: &str) -> Result<u64, StoreError> {
    let total: i128 = value.trim().parse().map_err(|_| StoreError::Corrupt {
        key: key.to_string(),
        detail: format!("counter value {value:?} is not a number"),
    })?;
    Ok(u64::try_from(total.max(0)).unwrap_or(u64::MAX))
}

pub(crate) fn encode<T: Serialize>(key: &str, value: &T) -> Result<Bytes, StoreError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| corrupt(key, e))
}

pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
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

    fn room() -> RoomRecord {
        RoomRecord {
            room_id: "01J".into(),
            name: "General".into(),
            topic: String::new(),
            owner_id: "u1".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            visibility: Visibility::Public,
            kind: RoomKind::Room,
            deleted: false,
            peers: Vec::new(),
        }
    }

    #[test]
    fn rooms_of_issue_nine_read_as_public_rooms() {
        let old: RoomRecord = decode(
            "01J",
            br#"{"room_id":"01J","name":"General","topic":"","owner_id":"u1","created_at":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            (old.visibility, old.kind),
            (Visibility::Public, RoomKind::Room)
        );
        assert!(!old.deleted && old.peers.is_empty());
        // Defaults are not written, so a record stays as small as it was.
        let bytes = encode("01J", &room()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("deleted"));
        let entry: RoomIndexEntry = decode("01J", br#"{"name":"General"}"#).unwrap();
        assert_eq!(entry.kind, RoomKind::Room);
    }

    #[test]
    fn a_direct_room_knows_each_users_peer() {
        let view = |id: &str| UserView {
            user_id: id.into(),
            username: format!("name-{id}"),
        };
        let dm = RoomRecord {
            kind: RoomKind::Direct,
            visibility: Visibility::Private,
            owner_id: String::new(),
            peers: vec![view("a"), view("b")],
            ..room()
        };
        assert_eq!(dm.peer_of("a").map(|p| p.user_id.as_str()), Some("b"));
        assert_eq!(dm.peer_of("b").map(|p| p.user_id.as_str()), Some("a"));
        assert_eq!(dm.peer_of("c"), None);
        assert_eq!(room().peer_of("u1"), None);
        let shown = dm.view(2);
        assert_eq!(
            (shown.kind, shown.visibility),
            (RoomKind::Direct, Visibility::Private)
        );
    }

    #[test]
    fn room_records_round_trip_and_view() {
        let record = room();
        let bytes = encode("01J", &record).unwrap();
        assert_eq!(decode::<RoomRecord>("01J", &bytes).unwrap(), record);
        assert_eq!(record.role_of("u1"), Role::Owner);
        assert_eq!(record.role_of("u2"), Role::Member);
        let entry = record.index_entry();
        assert_eq!(entry.name, "General");
        let room = record.view(3);
        assert_eq!((room.room_id.as_str(), room.member_count), ("01J", 3));
    }

    #[test]
    fn member_records_encode_their_role_and_read_without_new_fields() {
        let record = MemberRecord {
            user_id: "u1".into(),
            username: "alice".into(),
            role: Role::Owner,
            joined_at: "2026-01-01T00:00:00.000Z".into(),
        };
        let bytes = encode("r.u1", &record).unwrap();
        assert_eq!(
            &bytes[..],
            br#"{"user_id":"u1","username":"alice","role":"owner","joined_at":"2026-01-01T00:00:00.000Z"}"#
        );
        assert_eq!(decode::<MemberRecord>("r.u1", &bytes).unwrap(), record);
        // A record without the later fields (and with fields from a later version) still reads.
        let old: MemberRecord =
            decode("r.u2", br#"{"user_id":"u2","username":"bob","muted":true}"#).unwrap();
        assert_eq!((old.role, old.joined_at.as_str()), (Role::Member, ""));
        let member = old.view(true);
        assert!(member.online && member.role == Role::Member);
        assert!(matches!(
            decode::<MemberRecord>("r.u3", b"[1]"),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn small_entries_tolerate_missing_fields() {
        assert_eq!(
            decode::<MembershipEntry>("u.r", b"{}").unwrap().joined_at,
            ""
        );
        assert_eq!(decode::<RoomIndexEntry>("r", b"{}").unwrap().name, "");
    }

    #[test]
    fn counters_read_as_totals() {
        assert_eq!(counter_total("c", br#"{"val":"6"}"#).unwrap(), 6);
        assert_eq!(counter_total("c", br#"{"val":"-2"}"#).unwrap(), 0);
        assert_eq!(parse_total("c", "100000").unwrap(), 100_000);
        assert!(counter_total("c", br#"{"val":"x"}"#).is_err());
        assert!(counter_total("c", b"6").is_err());
    }
}
