//! Who may do what in a room: the one place authorization is decided.
//!
//! The rooms service, which owns every membership, ban and invitation, answers with a
//! [`Standing`] (what is known of one user in one room, with a revision); the rooms service
//! decides its own requests with [`decide`], and ws-agent decides every frame and route it
//! serves (send, typing, history, `since` replays, members, presence) with the same function over
//! the standing it cached, never with a rule of its own. Pure, so every row of the contract's
//! rules is a unit test here.
//!
//! The rules (contract sections 5 and 6):
//! - A private room is invisible to whoever is neither a member nor invited: every action is
//!   `NotFound`, exactly as for a room that does not exist. A user banned from a private room is
//!   such an outsider even if invited.
//! - In a public room, a banned user may see the room but is `Forbidden` to join, post, read or
//!   list members; anyone else may join; only members read and post.
//! - Roles: owner > moderator > member. Acting on another member needs a higher role.
//! - A direct room has no owner: it cannot be managed, moderated or left (`Forbidden`).
//! - The owner cannot leave (`Conflict`) until ownership passes to someone else.
//! - While the other member of a direct room blocks the user, the user reads it but does not
//!   post into it (nor opens it: opening a direct room is the first step of posting).

use serde::{Deserialize, Serialize};

use crate::wire::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Public,
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    #[default]
    Room,
    Direct,
}

/// What is known of one user in one existing room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Standing {
    pub visibility: Visibility,
    pub kind: RoomKind,
    /// The user's role; `None` when not a member.
    pub role: Option<Role>,
    pub banned: bool,
    pub invited: bool,
    /// In a direct room: the other member blocks this user.
    #[serde(default)]
    pub blocked: bool,
}

/// What a user wants to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the room: get it, find it in lists, learn that it exists.
    See,
    Join,
    Leave,
    /// Read the room: history, `since` replays, live messages and events, members, receipts.
    Read,
    /// Take part: send, typing, reactions, read markers.
    Post,
    /// Change the room itself: name, topic, visibility (owner, moderator).
    Update,
    /// Delete the room (owner).
    Delete,
    /// Invite a user or take an invitation back; unban; list bans (owner, moderator).
    Manage,
    /// Set a member's role or pass ownership (owner).
    Appoint,
    /// Kick or ban someone whose role is `target` (`None`: not a member): needs a higher role.
    Moderate {
        target: Option<Role>,
    },
}

/// Why an action is refused; each maps to one error code of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// 404: the room does not exist for this user.
    NotFound,
    /// 403.
    Forbidden,
    /// 409: the owner leaving.
    Conflict,
}

impl Standing {
    /// Whether the room's existence is hidden from this user.
    pub fn is_outsider(&self) -> bool {
        self.visibility == Visibility::Private
            && self.role.is_none()
            && (!self.invited || self.banned)
    }
}

impl Denied {
    /// The error a refusal answers. A hidden room's message is the one of a room that does not
    /// exist, so nothing tells the two apart.
    pub fn error(self) -> crate::ApiError {
        match self {
            Denied::NotFound => crate::ApiError::not_found(ROOM_NOT_FOUND),
            Denied::Forbidden => crate::ApiError::forbidden("not allowed in this room"),
            Denied::Conflict => crate::ApiError::conflict(
                "the owner cannot leave; pass ownership on or delete the room",
            ),
        }
    }
}

impl From<Denied> for crate::ApiError {
    fn from(denied: Denied) -> Self {
        denied.error()
    }
}

/// The message of every `not_found` about a room, hidden or missing alike.
pub const ROOM_NOT_FOUND: &str = "room not found";

/// The decision for `action` by a user whose standing in the room is `standing`.
pub fn decide(standing: &Standing, action: Action) -> Result<(), Denied> {
    if standing.is_outsider() {
        return Err(Denied::NotFound);
    }
    let role = standing.role;
    let member = role.is_some();
    let direct = standing.kind == RoomKind::Direct;
    let at_least = |needed: Role| role.is_some_and(|r| r >= needed);
    let allow = |ok: bool| if ok { Ok(()) } else { Err(Denied::Forbidden) };
    match action {
        Action::See => Ok(()),
        Action::Join => {
            if member {
                Ok(())
            } else if standing.banned || direct {
                Err(Denied::Forbidden)
            } else {
                // Public: anyone; private: the invited (outsiders were refused above).
                Ok(())
            }
        }
        Action::Leave => {
            if direct {
                Err(Denied::Forbidden)
            } else if role == Some(Role::Owner) {
                Err(Denied::Conflict)
            } else {
                Ok(())
            }
        }
        Action::Read => allow(member && !standing.banned),
        Action::Post => allow(member && !standing.banned && !(direct && standing.blocked)),
        Action::Update | Action::Manage => allow(!direct && at_least(Role::Moderator)),
        Action::Delete | Action::Appoint => allow(!direct && at_least(Role::Owner)),
        Action::Moderate { target } => allow(!direct && at_least(Role::Moderator) && role > target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn standing(visibility: Visibility, role: Option<Role>) -> Standing {
        Standing {
            visibility,
            kind: RoomKind::Room,
            role,
            banned: false,
            invited: false,
            blocked: false,
        }
    }

    const PUBLIC: Visibility = Visibility::Public;
    const PRIVATE: Visibility = Visibility::Private;
    const ALL: [Action; 12] = [
        See,
        Join,
        Leave,
        Read,
        Post,
        Update,
        Delete,
        Manage,
        Appoint,
        Moderate { target: None },
        Moderate {
            target: Some(Role::Member),
        },
        Moderate {
            target: Some(Role::Owner),
        },
    ];

    #[test]
    fn a_private_room_does_not_exist_for_outsiders() {
        let outsider = standing(PRIVATE, None);
        for action in ALL {
            assert_eq!(
                decide(&outsider, action),
                Err(Denied::NotFound),
                "{action:?}"
            );
        }
        // Banned outweighs invited.
        let banned_invitee = Standing {
            banned: true,
            invited: true,
            ..outsider
        };
        assert!(banned_invitee.is_outsider());
        assert_eq!(decide(&banned_invitee, Join), Err(Denied::NotFound));
    }

    #[test]
    fn an_invitee_sees_and_joins_but_does_not_read_before_joining() {
        let invitee = Standing {
            invited: true,
            ..standing(PRIVATE, None)
        };
        assert_eq!(decide(&invitee, See), Ok(()));
        assert_eq!(decide(&invitee, Join), Ok(()));
        assert_eq!(decide(&invitee, Read), Err(Denied::Forbidden));
        assert_eq!(decide(&invitee, Post), Err(Denied::Forbidden));
        assert_eq!(decide(&invitee, Update), Err(Denied::Forbidden));
    }

    #[test]
    fn public_rooms_are_seen_and_joined_by_anyone_but_read_by_members() {
        let visitor = standing(PUBLIC, None);
        assert_eq!(decide(&visitor, See), Ok(()));
        assert_eq!(decide(&visitor, Join), Ok(()));
        assert_eq!(decide(&visitor, Leave), Ok(()), "leaving is idempotent");
        assert_eq!(decide(&visitor, Read), Err(Denied::Forbidden));
        assert_eq!(decide(&visitor, Post), Err(Denied::Forbidden));
        let member = standing(PUBLIC, Some(Role::Member));
        assert_eq!(decide(&member, Read), Ok(()));
        assert_eq!(decide(&member, Post), Ok(()));
    }

    #[test]
    fn banned_from_a_public_room_is_forbidden_to_take_part() {
        let banned = Standing {
            banned: true,
            ..standing(PUBLIC, None)
        };
        assert_eq!(decide(&banned, See), Ok(()));
        for action in [Join, Read, Post] {
            assert_eq!(
                decide(&banned, action),
                Err(Denied::Forbidden),
                "{action:?}"
            );
        }
    }

    #[test]
    fn roles_rank_owner_moderator_member() {
        let owner = standing(PUBLIC, Some(Role::Owner));
        let moderator = standing(PUBLIC, Some(Role::Moderator));
        let member = standing(PUBLIC, Some(Role::Member));
        for action in [Update, Manage] {
            assert_eq!(decide(&owner, action), Ok(()));
            assert_eq!(decide(&moderator, action), Ok(()));
            assert_eq!(decide(&member, action), Err(Denied::Forbidden));
        }
        for action in [Delete, Appoint] {
            assert_eq!(decide(&owner, action), Ok(()));
            assert_eq!(decide(&moderator, action), Err(Denied::Forbidden));
        }
        let on = |target| Moderate { target };
        assert_eq!(decide(&owner, on(Some(Role::Moderator))), Ok(()));
        assert_eq!(decide(&moderator, on(Some(Role::Member))), Ok(()));
        assert_eq!(decide(&moderator, on(None)), Ok(()), "banning a non-member");
        assert_eq!(
            decide(&moderator, on(Some(Role::Moderator))),
            Err(Denied::Forbidden),
            "equal roles"
        );
        assert_eq!(
            decide(&moderator, on(Some(Role::Owner))),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            decide(&member, on(Some(Role::Member))),
            Err(Denied::Forbidden)
        );
        assert_eq!(decide(&member, on(None)), Err(Denied::Forbidden));
    }

    #[test]
    fn the_owner_cannot_leave() {
        let owner = standing(PRIVATE, Some(Role::Owner));
        assert_eq!(decide(&owner, Leave), Err(Denied::Conflict));
        assert_eq!(
            decide(&standing(PRIVATE, Some(Role::Moderator)), Leave),
            Ok(())
        );
    }

    #[test]
    fn a_direct_room_is_used_but_never_managed_or_left() {
        let peer = Standing {
            kind: RoomKind::Direct,
            ..standing(PRIVATE, Some(Role::Member))
        };
        for action in [See, Join, Read, Post] {
            assert_eq!(decide(&peer, action), Ok(()), "{action:?}");
        }
        for action in [
            Leave,
            Update,
            Delete,
            Manage,
            Appoint,
            Moderate { target: None },
        ] {
            assert_eq!(decide(&peer, action), Err(Denied::Forbidden), "{action:?}");
        }
        let stranger = Standing {
            kind: RoomKind::Direct,
            ..standing(PRIVATE, None)
        };
        assert_eq!(decide(&stranger, Read), Err(Denied::NotFound));
    }

    #[test]
    fn a_blocked_peer_reads_but_does_not_post() {
        let blocked = Standing {
            kind: RoomKind::Direct,
            blocked: true,
            ..standing(PRIVATE, Some(Role::Member))
        };
        assert_eq!(decide(&blocked, Read), Ok(()));
        assert_eq!(decide(&blocked, Join), Ok(()));
        assert_eq!(decide(&blocked, Post), Err(Denied::Forbidden));
        // Blocking is about direct rooms only.
        let in_a_room = Standing {
            kind: RoomKind::Room,
            ..blocked
        };
        assert_eq!(decide(&in_a_room, Post), Ok(()));
    }

    #[test]
    fn refusals_map_to_the_contract_codes() {
        use crate::ErrorCode;
        assert_eq!(Denied::NotFound.error().code, ErrorCode::NotFound);
        assert_eq!(Denied::NotFound.error().message, ROOM_NOT_FOUND);
        assert_eq!(Denied::Forbidden.error().code, ErrorCode::Forbidden);
        assert_eq!(Denied::Conflict.error().code, ErrorCode::Conflict);
    }

    #[test]
    fn standings_read_without_later_fields() {
        let old: Standing = serde_json::from_str(
            r#"{"visibility":"private","kind":"room","role":null,"banned":false,"invited":true}"#,
        )
        .unwrap();
        assert!(old.invited && !old.blocked && !old.is_outsider());
    }
}
