//! The feed, receipts and the read announcement over fakes: pages newest first with a cursor,
//! a forward-only feed marker and the unread count, notifications on every socket of the user,
//! receipts only in small rooms, and one `read_marker` for the socket that read.

use dyschat_protocol::wire::{NotificationKind, ReadMarkerEvent, StoredNotification, UserView};
use dyschat_protocol::ApiError;

use crate::socket::SocketHandle;
use crate::testing::{fixture, json, next_frame, user, Fixture};

const ROOM: &str = "room1";

fn notification(seq: u64) -> StoredNotification {
    StoredNotification {
        kind: NotificationKind::Mention,
        room_id: ROOM.into(),
        seq,
        from: UserView {
            user_id: "id-bob".into(),
            username: "bob".into(),
        },
        preview: format!("hi {seq}"),
        created_at: "2026-11-23T00:00:00.000Z".into(),
    }
}

fn with_feed(n: u64) -> (Fixture, Vec<u64>) {
    let f = fixture();
    let alice = user("alice").user_id;
    let mut ids = Vec::new();
    for seq in 1..=n {
        ids.push(f.feed.add(&alice, notification(seq)));
        f.feed.add("id-someone-else", notification(seq));
    }
    (f, ids)
}

#[tokio::test]
async fn pages_go_newest_first_and_the_last_has_no_cursor() {
    let (f, ids) = with_feed(5);
    let alice = user("alice");
    let first = f.core.notifications(&alice, None, Some(2)).await.unwrap();
    let got: Vec<String> = first
        .notifications
        .iter()
        .map(|n| n.notification_id.clone())
        .collect();
    assert_eq!(got, [ids[4].to_string(), ids[3].to_string()]);
    assert_eq!(first.next_cursor, Some(ids[3].to_string()));
    let last = f
        .core
        .notifications(&alice, first.next_cursor, Some(3))
        .await
        .unwrap();
    assert_eq!(last.notifications.len(), 3);
    assert_eq!(last.next_cursor, None);
    for bad in [Some(0), Some(101)] {
        let e: ApiError = f
            .core
            .notifications(&alice, None, bad)
            .await
            .unwrap_err()
            .into();
        assert_eq!(e.code.as_str(), "bad_request");
    }
    let e: ApiError = f
        .core
        .notifications(&alice, Some("x".into()), None)
        .await
        .unwrap_err()
        .into();
    assert_eq!(e.code.as_str(), "bad_request");
}

#[tokio::test]
async fn marking_read_moves_forward_only_and_counts_what_is_left() {
    let (f, ids) = with_feed(4);
    let alice = user("alice");
    assert_eq!(f.core.unread_notifications(&alice).await.unwrap(), 4);
    let read = f
        .core
        .read_notifications(&alice, &ids[1].to_string())
        .await
        .unwrap();
    assert_eq!(read.unread_notifications, 2);
    // Older: nothing moves back.
    let again = f
        .core
        .read_notifications(&alice, &ids[0].to_string())
        .await
        .unwrap();
    assert_eq!(again.up_to, ids[1].to_string());
    assert_eq!(f.core.unread_notifications(&alice).await.unwrap(), 2);
    let page = f.core.notifications(&alice, None, None).await.unwrap();
    let read_flags: Vec<bool> = page.notifications.iter().map(|n| n.read).collect();
    assert_eq!(read_flags, [false, false, true, true]);
    let e: ApiError = f
        .core
        .read_notifications(&alice, &(ids[3] + 100).to_string())
        .await
        .unwrap_err()
        .into();
    assert_eq!(e.code.as_str(), "bad_request");
}

#[tokio::test]
async fn a_notification_reaches_every_socket_of_its_user() {
    let f = fixture();
    let alice = user("alice");
    let (phone, mut phone_rx) = SocketHandle::new(alice.user_id.clone(), 8);
    let (laptop, mut laptop_rx) = SocketHandle::new(alice.user_id.clone(), 8);
    let (bob, mut bob_rx) = SocketHandle::new("id-bob".into(), 8);
    for socket in [&phone, &laptop, &bob] {
        f.core.user_sockets.attach(socket).await;
    }
    f.user_events
        .inject_notification(&alice.user_id, 42, &notification(7));
    for rx in [&mut phone_rx, &mut laptop_rx] {
        let frame = json(&next_frame(rx).await);
        assert_eq!(frame["type"], "notification");
        assert_eq!(frame["notification"]["notification_id"], "42");
        assert_eq!(frame["notification"]["kind"], "mention");
        assert_eq!(frame["notification"]["seq"], 7);
        assert_eq!(frame["notification"]["read"], false);
    }
    assert!(bob_rx.try_recv().is_err());
}

#[tokio::test]
async fn the_socket_that_read_gets_no_second_read_marker() {
    let f = fixture();
    f.rooms.create(ROOM, &user("alice"));
    for n in 0..3 {
        f.stream.post(ROOM, &format!("m{n}"));
    }
    let alice = user("alice");
    let (reader, mut reader_rx) = SocketHandle::new(alice.user_id.clone(), 8);
    let (other, mut other_rx) = SocketHandle::new(alice.user_id.clone(), 8);
    f.core.user_sockets.attach(&reader).await;
    f.core.user_sockets.attach(&other).await;
    let seq = f.stream.last_seq_now(ROOM);
    f.core
        .read(&alice, ROOM, seq, Some(reader.id()))
        .await
        .unwrap();
    assert_eq!(
        json(&next_frame(&mut other_rx).await)["type"],
        "read_marker"
    );
    let published = f.user_events.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    assert!(published[0].origin.is_some());
    // Another agent's socket with the same number is not this one.
    f.user_events.inject(&ReadMarkerEvent {
        origin: Some(format!("another-agent/{}", reader.id())),
        ..published[0].clone()
    });
    assert_eq!(
        json(&next_frame(&mut reader_rx).await)["type"],
        "read_marker"
    );
    assert!(reader_rx.try_recv().is_err());
}

#[tokio::test]
async fn receipts_only_in_rooms_of_at_most_a_hundred() {
    let f = fixture();
    let alice = user("alice");
    f.rooms.create(ROOM, &alice);
    f.rooms.add(ROOM, &user("bob"));
    let seq = f.stream.post(ROOM, "m");
    f.core.read(&alice, ROOM, seq, None).await.unwrap();
    let sent = f.bus.receipts.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].user_id.as_str(), sent[0].seq), ("id-alice", seq));
    let list = f.core.receipts(&user("bob"), ROOM).await.unwrap();
    let mut got: Vec<(String, u64)> = list
        .receipts
        .into_iter()
        .map(|r| (r.username, r.last_read_seq))
        .collect();
    got.sort();
    assert_eq!(got, [("alice".to_string(), seq), ("bob".to_string(), 0)]);
    let e: ApiError = f
        .core
        .receipts(&user("carol"), ROOM)
        .await
        .unwrap_err()
        .into();
    assert_eq!(e.code.as_str(), "forbidden");

    const BIG: &str = "big";
    f.rooms.create(BIG, &alice);
    for n in 0..100 {
        f.rooms.add(BIG, &user(&format!("m{n}")));
    }
    let seq = f.stream.post(BIG, "m");
    f.core.read(&alice, BIG, seq, None).await.unwrap();
    assert_eq!(f.bus.receipts.lock().unwrap().len(), 1);
    assert!(f
        .core
        .receipts(&alice, BIG)
        .await
        .unwrap()
        .receipts
        .is_empty());
}
