//! The subjects of [`super`] round-trip through their parsers.
use super::*;

#[test]
fn per_room_subjects_round_trip() {
    assert_eq!(room_messages("r1"), "dyschat.msg.room.r1");
    assert_eq!(live("r1"), "dyschat.live.room.r1");
    assert_eq!(last_token(&live("r1")), Some("r1"));
    assert_eq!(parse_live(&live("r1")), Some("r1"));
    assert_eq!(parse_live(&room_messages("r1")), None);
    assert_eq!(parse_room_messages(&room_messages("r1")), Some("r1"));
    assert_eq!(member_count("r1"), "dyschat.count.members.r1");
    assert_eq!(parse_member_count(&member_count("r1")), Some("r1"));
    assert_eq!(parse_member_count(&live("r1")), None);
    assert!(member_count("r1").starts_with(COUNTERS_WILDCARD.trim_end_matches('>')));
    assert_eq!(
        EventSubject::parse(&membership("r1")),
        Some(EventSubject::Membership { room_id: "r1" })
    );
    assert_eq!(
        EventSubject::parse(&typing("r1")),
        Some(EventSubject::Typing { room_id: "r1" })
    );
    assert_eq!(
        EventSubject::parse(&presence("u1")),
        Some(EventSubject::Presence { user_id: "u1" })
    );
    assert_eq!(EventSubject::parse("dyschat.events.other.x"), None);
    assert_eq!(EventSubject::parse("dyschat.events.typing.a*"), None);
    assert_eq!(rooms::subject(rooms::JOIN), "dyschat.rooms.join");
    assert_eq!(owned_count("u1"), "dyschat.count.owned.u1");
    assert_eq!(joined_count("u1"), "dyschat.count.joined.u1");
    assert_eq!(parse_member_count(&owned_count("u1")), None);
    assert_eq!(room_events("r1"), "dyschat.events.room.r1");
    assert_eq!(parse_room_events(&room_events("r1")), Some("r1"));
    assert_eq!(EventSubject::parse(&room_events("r1")), None);
    assert_eq!(eviction("r1"), "dyschat.evict.r1");
    assert_eq!(parse_eviction(&eviction("r1")), Some("r1"));
    assert_eq!(parse_eviction(&room_events("r1")), None);
    assert!(eviction("r1").starts_with(EVICTION_WILDCARD.trim_end_matches('*')));
    assert_eq!(
        room_stream_filters("r1"),
        ["dyschat.msg.room.r1", "dyschat.msg.room.r1.chg.*"]
    );
    assert_eq!(room_change("r1", 7), "dyschat.msg.room.r1.chg.7");
    assert_eq!(parse_change(&room_change("r1", 7)), Some(("r1", 7)));
    assert_eq!(parse_change("dyschat.live.room.r1.chg.7"), Some(("r1", 7)));
    assert_eq!(parse_change(&room_messages("r1")), None);
    assert_eq!(parse_change("dyschat.msg.room.r*.chg.7"), None);
    assert_eq!(parse_live(&live_changes("r1")), None);
    let read = user_event("u1", UserEventKind::ReadMarker);
    assert_eq!(read, "dyschat.events.user.u1.read");
    assert_eq!(
        parse_user_event(&read),
        Some(("u1", UserEventKind::ReadMarker))
    );
    assert_eq!(
        parse_user_event("dyschat.events.user.u1.feed"),
        Some(("u1", UserEventKind::Notification))
    );
    assert_eq!(parse_user_event("dyschat.events.user.u1"), None);
    assert_eq!(parse_user_event("dyschat.events.user.u*.read"), None);
    assert_eq!(parse_user_event(&presence("u1")), None);
    assert_eq!(EventSubject::parse(&read), None);
    assert_eq!(user_events_filter("u1"), "dyschat.events.user.u1.*");
    assert!(read.starts_with(USER_EVENTS_WILDCARD.trim_end_matches('>')));
    // The stream's RePublish lands on the subject agents parse.
    assert_eq!(
        FEED_REPUBLISH_DEST.replace("{{wildcard(1)}}", "u1"),
        user_event("u1", UserEventKind::Notification)
    );
    assert_eq!(feed("u1"), "dyschat.feed.u1");
    assert_eq!(notified("r1", 7), "dyschat.notified.r1.7");
    assert_eq!(notified_in("r1"), "dyschat.notified.r1.*");
    assert_eq!(receipt("r1"), "dyschat.events.receipt.r1");
    assert_eq!(
        EventSubject::parse(&receipt("r1")),
        Some(EventSubject::Receipt { room_id: "r1" })
    );
    assert_eq!(
        format!("{}.{}", auth::GROUP, auth::SEARCH),
        auth::SEARCH_SUBJECT
    );
    assert_eq!(
        format!("{}.{}", auth::GROUP, auth::USER),
        auth::USER_SUBJECT
    );
    assert_eq!(
        format!("{}.{}", auth::GROUP, auth::LOGIN),
        auth::LOGIN_SUBJECT
    );
    assert_eq!(
        format!("{}.{}", auth::GROUP, auth::LOGOUT),
        auth::LOGOUT_SUBJECT
    );
    assert_eq!(
        format!("{}.{}", auth::GROUP, auth::USERS_BY_NAME),
        auth::USERS_BY_NAME_SUBJECT
    );
}
