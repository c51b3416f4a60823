//! `mentions` (what a send asks for its `@names`): the members among the names, in the order
//! asked, each once, resolved by auth's `users_by_name` ignoring case; bounded.

use dyschat_protocol::wire::{MentionsReply, MentionsRequest, UserList, UsersByNameRequest};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_name_the_members_among_the_names_in_order() {
    let h = Harness::start(1).await;
    let alice = h.user("Alice_M").await;
    let bob = h.user("bob.m").await;
    let carol = h.user("Carol-M").await;
    let room_id = h.create(&alice, "Mentions").await.unwrap().room_id;
    h.join(&room_id, &bob).await.unwrap();

    // Auth: exact names ignoring case, in the order asked, unknown ones left out.
    let users: UserList = rpc::request(
        &h.client,
        subjects::auth::USERS_BY_NAME_SUBJECT.to_string(),
        &UsersByNameRequest {
            names: vec!["carol-m".into(), "nobody".into(), "ALICE_M".into()],
        },
        TIMEOUT,
    )
    .await
    .unwrap();
    let ids: Vec<&str> = users.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids, [carol.as_str(), alice.as_str()]);

    // Rooms: only members, in the order of the names, each once (carol is not a member).
    let ask = |names: &[&str]| MentionsRequest {
        room_id: room_id.clone(),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    let reply: MentionsReply = h
        .call(
            subjects::rooms::MENTIONS,
            &ask(&["bob.m", "carol-m", "nobody", "alice_m", "bob.m", "bob"]),
        )
        .await
        .unwrap();
    assert_eq!(reply.user_ids, [bob.clone(), alice.clone()]);
    let none: MentionsReply = h.call(subjects::rooms::MENTIONS, &ask(&[])).await.unwrap();
    assert!(none.user_ids.is_empty());

    // Bounded, and a room that does not exist is not_found.
    let many: Vec<String> = (0..101).map(|i| format!("name{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let refused: Result<MentionsReply, ApiError> =
        h.call(subjects::rooms::MENTIONS, &ask(&many)).await;
    assert_eq!(code(refused), ErrorCode::BadRequest);
    let gone: Result<MentionsReply, ApiError> = h
        .call(
            subjects::rooms::MENTIONS,
            &MentionsRequest {
                room_id: "no-such-room".into(),
                names: vec!["bob.m".into()],
            },
        )
        .await;
    assert_eq!(code(gone), ErrorCode::NotFound);
    h.stop().await;
}
