//! The rules of the rooms service that are not authorization (that is
//! [`dyschat_protocol::policy::decide`], applied through [`check`]): what a standing is made of,
//! which rooms a list shows, the shapes of names, topics, reasons and queries, quotas, direct
//! rooms. Pure, so each is a unit test.

use dyschat_protocol::policy::{decide, Action, RoomKind, Standing, Visibility};
use dyschat_protocol::text;
use dyschat_protocol::wire::{Role, UpdateRoomBody, UserView};
use dyschat_protocol::{ids, ApiError};

use crate::error::RoomsError;
use crate::records::RoomRecord;
use crate::store::Presence;

/// The longest kick or ban reason, in characters (as long as a topic).
pub(crate) const MAX_REASON_CHARS: usize = 500;
/// The longest room-name query: no longer string is in a room name.
pub(crate) const MAX_QUERY_CHARS: usize = 100;

/// Refuses `action` unless the policy allows it for `standing`.
pub(crate) fn check(standing: &Standing, action: Action) -> Result<(), RoomsError> {
    decide(standing, action).map_err(RoomsError::Denied)
}

/// A user's standing in `room` from what the stores said. A member is never reported banned
/// (a ban removes the member first), and invitations only matter to non-members.
pub(crate) fn standing(
    room: &RoomRecord,
    role: Option<Role>,
    invited: bool,
    banned: bool,
    blocked: bool,
) -> Standing {
    let member = role.is_some();
    Standing {
        visibility: room.visibility,
        kind: room.kind,
        role,
        banned: banned && !member,
        invited: invited && !member,
        blocked: blocked && room.kind == RoomKind::Direct,
    }
}

/// Whether the room list shows `room` to a user who is, in it, as `presence` says: never a
/// deleted or direct room, never a room whose name lacks `query`, and a private room only to
/// those who may see it.
pub(crate) fn listed(room: &RoomRecord, presence: Presence, query: Option<&str>) -> bool {
    if room.deleted || room.kind == RoomKind::Direct {
        return false;
    }
    if query.is_some_and(|q| !name_matches(&room.name, q)) {
        return false;
    }
    let role = presence.member.then_some(Role::Member);
    let standing = standing(room, role, presence.invited, presence.banned, false);
    decide(&standing, Action::See).is_ok()
}

/// The list's `q`, lower-cased for [`name_matches`]; `None` (or empty) lists every name.
pub(crate) fn name_query(q: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(format!(
            "q must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    if text::forbidden_control(q).is_some() {
        return Err(ApiError::bad_request(
            "q must not contain control characters",
        ));
    }
    Ok(Some(q.to_lowercase()))
}

/// Whether `name` holds `query` (lower-cased by [`name_query`]), ignoring case.
pub(crate) fn name_matches(name: &str, query: &str) -> bool {
    name.to_lowercase().contains(query)
}

/// A kick or ban reason: at most [`MAX_REASON_CHARS`], no control characters; one of only
/// white space or invisible characters counts as none.
pub(crate) fn reason(reason: &str) -> Result<String, ApiError> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_request(format!(
            "reason must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    if text::forbidden_control(reason).is_some() {
        return Err(ApiError::bad_request(
            "reason must not contain control characters",
        ));
    }
    Ok(if text::is_blank(reason) {
        String::new()
    } else {
        reason.to_string()
    })
}

/// The role the role route may give: `moderator` or `member` (ownership moves only by the owner
/// route).
pub(crate) fn appointable(role: Role) -> Result<Role, ApiError> {
    match role {
        Role::Moderator | Role::Member => Ok(role),
        Role::Owner => Err(ApiError::bad_request(
            "role must be moderator or member; ownership passes with POST .../owner",
        )),
    }
}

/// Whether a quota counter's total after taking one more is past `max`.
pub(crate) fn over_quota(total: u64, max: u64) -> bool {
    total > max
}

/// Applies a PATCH to `room`: validates each field given and returns whether anything changed.
pub(crate) fn apply_update(
    room: &mut RoomRecord,
    changes: &UpdateRoomBody,
) -> Result<bool, ApiError> {
    let mut changed = false;
    if let Some(name) = &changes.name {
        ids::validate_room_name(name)?;
        changed |= *name != room.name;
        room.name.clone_from(name);
    }
    if let Some(topic) = &changes.topic {
        ids::validate_topic(topic)?;
        changed |= *topic != room.topic;
        room.topic.clone_from(topic);
    }
    if let Some(visibility) = changes.visibility {
        changed |= visibility != room.visibility;
        room.visibility = visibility;
    }
    Ok(changed)
}

/// The record of a new direct room of two users: private, no owner, the two users in the order
/// of their ids, named after them (a direct room cannot be renamed).
pub(crate) fn direct_room(
    room_id: String,
    a: UserView,
    b: UserView,
    created_at: String,
) -> RoomRecord {
    let mut peers = vec![a, b];
    peers.sort_by(|x, y| x.user_id.cmp(&y.user_id));
    RoomRecord {
        room_id,
        name: format!("{}, {}", peers[0].username, peers[1].username),
        topic: String::new(),
        owner_id: String::new(),
        created_at,
        visibility: Visibility::Private,
        kind: RoomKind::Direct,
        deleted: false,
        peers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dyschat_protocol::policy::Denied;

    fn room(visibility: Visibility) -> RoomRecord {
        RoomRecord {
            room_id: "r".into(),
            name: "Rust Lovers".into(),
            topic: String::new(),
            owner_id: "o".into(),
            created_at: "t".into(),
            visibility,
            kind: RoomKind::Room,
            deleted: false,
            peers: Vec::new(),
        }
    }

    fn view(id: &str) -> UserView {
        UserView {
            user_id: id.into(),
            username: format!("n{id}"),
        }
    }

    const NOBODY: Presence = Presence {
        member: false,
        invited: false,
        banned: false,
    };

    #[test]
    fn a_standing_never_has_a_banned_or_invited_member() {
        let public = room(Visibility::Public);
        let s = standing(&public, Some(Role::Member), true, true, true);
        assert!(!s.banned && !s.invited && !s.blocked);
        let s = standing(&public, None, true, true, false);
        assert!(s.banned && s.invited);
        assert_eq!(
            check(&s, Action::Join).unwrap_err().to_string(),
            "refused: Forbidden"
        );
        let dm = direct_room("d".into(), view("b"), view("a"), "t".into());
        assert!(standing(&dm, Some(Role::Member), false, false, true).blocked);
    }

    #[test]
    fn the_list_shows_what_each_user_may_see() {
        let public = room(Visibility::Public);
        let private = room(Visibility::Private);
        assert!(listed(&public, NOBODY, None));
        assert!(!listed(&private, NOBODY, None));
        let member = Presence {
            member: true,
            ..NOBODY
        };
        let invitee = Presence {
            invited: true,
            ..NOBODY
        };
        let banned_invitee = Presence {
            invited: true,
            banned: true,
            ..NOBODY
        };
        assert!(listed(&private, member, None));
        assert!(listed(&private, invitee, None));
        assert!(!listed(&private, banned_invitee, None));
        let banned = Presence {
            banned: true,
            ..NOBODY
        };
        assert!(
            listed(&public, banned, None),
            "banned from a public room: 403, not hidden"
        );
        let gone = RoomRecord {
            deleted: true,
            ..public.clone()
        };
        assert!(!listed(&gone, member, None));
        let dm = direct_room("d".into(), view("a"), view("b"), "t".into());
        assert!(!listed(&dm, member, None));
    }

    #[test]
    fn queries_match_any_part_of_the_name_ignoring_case() {
        let q = name_query(Some("LOVE")).unwrap().unwrap();
        assert!(name_matches("Rust Lovers", &q));
        assert!(!name_matches("Rust", &q));
        assert!(listed(&room(Visibility::Public), NOBODY, Some(&q)));
        assert!(!listed(&room(Visibility::Public), NOBODY, Some("haters")));
        assert_eq!(name_query(None).unwrap(), None);
        assert_eq!(name_query(Some("")).unwrap(), None);
        assert_eq!(name_query(Some("ÉTÉ")).unwrap().as_deref(), Some("été"));
        assert!(name_query(Some(&"x".repeat(101))).is_err());
        assert!(name_query(Some("a\u{7}")).is_err());
    }

    #[test]
    fn reasons_are_short_and_clean() {
        assert_eq!(reason("spam").unwrap(), "spam");
        assert_eq!(reason("").unwrap(), "");
        assert_eq!(reason(" \u{200B} ").unwrap(), "", "blank is no reason");
        assert!(reason(&"x".repeat(501)).is_err());
        assert!(reason("a\u{1}b").is_err());
        assert_eq!(reason("line\nbreak").unwrap(), "line\nbreak");
    }

    #[test]
    fn only_moderator_and_member_are_appointed() {
        assert_eq!(appointable(Role::Moderator).unwrap(), Role::Moderator);
        assert_eq!(appointable(Role::Member).unwrap(), Role::Member);
        assert!(appointable(Role::Owner).is_err());
    }

    #[test]
    fn quotas_allow_exactly_the_maximum() {
        assert!(!over_quota(100, 100));
        assert!(over_quota(101, 100));
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let mut r = room(Visibility::Public);
        let none = UpdateRoomBody::default();
        assert!(!apply_update(&mut r, &none).unwrap());
        let rename = UpdateRoomBody {
            name: Some("New".into()),
            visibility: Some(Visibility::Private),
            ..Default::default()
        };
        assert!(apply_update(&mut r, &rename).unwrap());
        assert_eq!(
            (r.name.as_str(), r.visibility),
            ("New", Visibility::Private)
        );
        assert!(!apply_update(&mut r, &rename).unwrap(), "the same again");
        for bad in [
            UpdateRoomBody {
                name: Some(" ".into()),
                ..Default::default()
            },
            UpdateRoomBody {
                topic: Some("t".repeat(501)),
                ..Default::default()
            },
        ] {
            assert!(apply_update(&mut r, &bad).is_err());
        }
    }

    #[test]
    fn a_direct_room_is_private_ownerless_and_the_same_in_either_order() {
        let ab = direct_room("d".into(), view("a"), view("b"), "t".into());
        let ba = direct_room("d".into(), view("b"), view("a"), "t".into());
        assert_eq!(ab, ba);
        assert_eq!(ab.name, "na, nb");
        assert_eq!(
            (ab.visibility, ab.kind),
            (Visibility::Private, RoomKind::Direct)
        );
        assert!(ab.owner_id.is_empty());
        let outsider = standing(&ab, None, false, false, false);
        assert_eq!(decide(&outsider, Action::See), Err(Denied::NotFound));
    }
}
