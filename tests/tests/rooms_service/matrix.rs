//! The decision matrix of contract section 5: every endpoint of a room, asked by an outsider,
//! an invitee, a member, a moderator, the owner and a banned user, in a public and in a
//! private room. Each probe runs in a room of its own (a "scene" with one user of each
//! standing), so a probe that changes the room changes nothing another probe sees.

use super::*;

use dyschat_protocol::policy::{decide, Action, Denied};
use dyschat_protocol::wire::Role;

/// The users of every scene, registered once.
struct Cast {
    owner: String,
    moderator: String,
    member: String,
    /// A member acted on (kicked, banned, promoted, handed ownership).
    target: String,
    invitee: String,
    banned: String,
    outsider: String,
    /// Registered, with no standing: who gets invited.
    stranger: String,
}

#[derive(Debug, Clone, Copy)]
enum Asker {
    Outsider,
    Invitee,
    Member,
    Moderator,
    Owner,
    Banned,
}

const ASKERS: [Asker; 6] = [
    Asker::Outsider,
    Asker::Invitee,
    Asker::Member,
    Asker::Moderator,
    Asker::Owner,
    Asker::Banned,
];

impl Cast {
    async fn register(h: &Harness) -> Cast {
        Cast {
            owner: h.user("owner").await,
            moderator: h.user("moderator").await,
            member: h.user("member").await,
            target: h.user("target").await,
            invitee: h.user("invitee").await,
            banned: h.user("banned").await,
            outsider: h.user("outsider").await,
            stranger: h.user("stranger").await,
        }
    }

    fn id(&self, asker: Asker) -> &str {
        match asker {
            Asker::Outsider => &self.outsider,
            Asker::Invitee => &self.invitee,
            Asker::Member => &self.member,
            Asker::Moderator => &self.moderator,
            Asker::Owner => &self.owner,
            Asker::Banned => &self.banned,
        }
    }

    /// A new room with one user of each standing.
    async fn scene(&self, h: &Harness, visibility: Visibility) -> String {
        let room = h
            .create_with(&self.owner, "Scene", visibility)
            .await
            .unwrap()
            .room_id;
        for user in [&self.moderator, &self.member, &self.target] {
            // Members of a private room come in by invitation.
            h.invite(&room, &self.owner, user).await.unwrap();
            h.join(&room, user).await.unwrap();
        }
        h.set_role(&room, &self.owner, &self.moderator, Role::Moderator)
            .await
            .unwrap();
        h.invite(&room, &self.owner, &self.invitee).await.unwrap();
        h.ban(&room, &self.owner, &self.banned, "spam")
            .await
            .unwrap();
        room
    }
}

/// What one endpoint answers each asker in a public room (`None`: success), in the order of
/// [`ASKERS`]. In a private room, outsiders and banned users get `not_found` instead, for
/// everything.
struct Row {
    endpoint: &'static str,
    public: [Option<ErrorCode>; 6],
}

const OK: Option<ErrorCode> = None;
const NO: Option<ErrorCode> = Some(ErrorCode::Forbidden);
const CONFLICT: Option<ErrorCode> = Some(ErrorCode::Conflict);

const ROWS: &[Row] = &[
    Row {
        endpoint: "get",
        public: [OK, OK, OK, OK, OK, OK],
    },
    Row {
        endpoint: "join",
        public: [OK, OK, OK, OK, OK, NO],
    },
    Row {
        endpoint: "leave",
        public: [OK, OK, OK, OK, CONFLICT, OK],
    },
    Row {
        endpoint: "members",
        public: [NO, NO, OK, OK, OK, NO],
    },
    Row {
        endpoint: "update",
        public: [NO, NO, NO, OK, OK, NO],
    },
    Row {
        endpoint: "delete",
        public: [NO, NO, NO, NO, OK, NO],
    },
    Row {
        endpoint: "invite",
        public: [NO, NO, NO, OK, OK, NO],
    },
    Row {
        endpoint: "uninvite",
        public: [NO, NO, NO, OK, OK, NO],
    },
    Row {
        endpoint: "set_role",
        public: [NO, NO, NO, NO, OK, NO],
    },
    Row {
        endpoint: "transfer_owner",
        public: [NO, NO, NO, NO, OK, NO],
    },
    Row {
        endpoint: "kick",
        public: [NO, NO, NO, OK, OK, NO],
    },
    Row {
        endpoint: "ban",
        public: [NO, NO, NO, OK, OK, NO],
    },
    Row {
        endpoint: "unban",
        public: [NO, NO, NO, OK, OK, NO],
    },
    Row {
        endpoint: "bans",
        public: [NO, NO, NO, OK, OK, NO],
    },
];

/// Asks `endpoint` of `room` as `asker`; the error code, `None` for success.
async fn probe(
    h: &Harness,
    cast: &Cast,
    room: &str,
    endpoint: &str,
    asker: Asker,
) -> Option<ErrorCode> {
    let me = cast.id(asker);
    let outcome: Result<(), ApiError> = match endpoint {
        "get" => h.get_as(room, me).await.map(drop),
        "join" => h.join(room, me).await.map(drop),
        "leave" => h.leave(room, me).await.map(drop),
        "members" => {
            let req = MembersRequest {
                room_id: room.into(),
                limit: 0,
                cursor: None,
                user_id: me.into(),
            };
            h.call::<_, MemberList>(subjects::rooms::MEMBERS, &req)
                .await
                .map(drop)
        }
        "update" => h.set_topic(room, me, "new topic").await.map(drop),
        "delete" => h.delete(room, me).await.map(drop),
        "invite" => h.invite(room, me, &cast.stranger).await.map(drop),
        "uninvite" => h.uninvite(room, me, &cast.invitee).await.map(drop),
        "set_role" => h
            .set_role(room, me, &cast.target, Role::Moderator)
            .await
            .map(drop),
        "transfer_owner" => h.transfer(room, me, &cast.target).await.map(drop),
        "kick" => h.kick(room, me, &cast.target, "").await.map(drop),
        "ban" => h.ban(room, me, &cast.target, "").await.map(drop),
        "unban" => h.unban(room, me, &cast.banned).await.map(drop),
        "bans" => h.bans(room, me).await.map(drop),
        other => panic!("no probe for {other}"),
    };
    outcome.err().map(|e| e.code)
}

fn expected(row: &Row, visibility: Visibility, i: usize) -> Option<ErrorCode> {
    let hidden = matches!(ASKERS[i], Asker::Outsider | Asker::Banned);
    if visibility == Visibility::Private && hidden {
        Some(ErrorCode::NotFound)
    } else {
        row.public[i]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_each_standing_as_the_contract_says() {
    let h = Harness::start_with(
        1,
        &[
            ("DYSCHAT_MAX_ROOMS_PER_USER", "1000"),
            ("DYSCHAT_MAX_ROOMS_JOINED", "10000"),
        ],
    )
    .await;
    let cast = Cast::register(&h).await;
    let mut cases = Vec::new();
    for visibility in [Visibility::Public, Visibility::Private] {
        for row in ROWS {
            for i in 0..ASKERS.len() {
                cases.push((visibility, row, i));
            }
        }
    }
    let results: Vec<_> = futures::stream::iter(cases)
        .map(|(visibility, row, i)| {
            let (h, cast) = (&h, &cast);
            async move {
                let room = cast.scene(h, visibility).await;
                let got = probe(h, cast, &room, row.endpoint, ASKERS[i]).await;
                (
                    visibility,
                    row.endpoint,
                    ASKERS[i],
                    got,
                    expected(row, visibility, i),
                )
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let wrong: Vec<_> = results
        .iter()
        .filter(|(_, _, _, got, want)| got != want)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} wrong: {wrong:#?}",
        wrong.len(),
        results.len()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_answers_each_standing_for_the_agents_to_decide_with() {
    let h = Harness::start(1).await;
    let cast = Cast::register(&h).await;
    for visibility in [Visibility::Public, Visibility::Private] {
        let room = cast.scene(&h, visibility).await;
        for asker in ASKERS {
            let access = h.access(&room, cast.id(asker)).await.unwrap();
            let s = access.standing;
            assert_eq!(s.visibility, visibility);
            assert_eq!(access.role, s.role, "role is the standing's");
            let (role, invited, banned) = match asker {
                Asker::Outsider => (None, false, false),
                Asker::Invitee => (None, true, false),
                Asker::Member => (Some(Role::Member), false, false),
                Asker::Moderator => (Some(Role::Moderator), false, false),
                Asker::Owner => (Some(Role::Owner), false, false),
                Asker::Banned => (None, false, true),
            };
            assert_eq!(
                (s.role, s.invited, s.banned),
                (role, invited, banned),
                "{asker:?}"
            );
            assert!(access.room_revision > 0);
            // The agent's decision over the standing is the service's.
            let hidden = visibility == Visibility::Private
                && matches!(asker, Asker::Outsider | Asker::Banned);
            assert_eq!(decide(&s, Action::See).is_err(), hidden, "{asker:?}");
            if hidden {
                assert_eq!(decide(&s, Action::Read), Err(Denied::NotFound));
            }
        }
    }
    h.stop().await;
}
