//! The hub over in-memory fakes: fan-out, delivery order and duplicates, gap settling.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;

use super::room::{CATCH_UP_EVERY, CATCH_UP_FIRST, EXPECT_GRACE};
use crate::socket::{OutFrame, SocketHandle, CLOSE_SLOW};
use crate::testing::{assert_chain, fixture, next_messages, Fixture};

const ROOM: &str = "room1";

/// A socket attached and live from the room's current position, as a join without `since`.
async fn live_socket(f: &Fixture, capacity: usize) -> (SocketHandle, Receiver<OutFrame>) {
    let (socket, rx) = SocketHandle::new("reader".into(), capacity);
    f.core.hub.attach(ROOM, &socket).await.unwrap();
    let last = f.stream.last_seq_now(ROOM);
    f.core.hub.note_position(ROOM, last);
    f.core.hub.activate(ROOM, socket.id(), last);
    (socket, rx)
}

/// Lets the room task run until it has nothing left to do.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn one_serialization_reaches_every_joined_socket_once() {
    let f = fixture();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(live_socket(&f, 16).await);
    }
    let seq = f.stream.post(ROOM, "hello");
    let mut texts = Vec::new();
    for (_, rx) in &mut sockets {
        let got = next_messages(rx, 1).await;
        assert_eq!(got[0]["seq"].as_u64(), Some(seq));
        settle().await;
        assert!(rx.try_recv().is_err(), "delivered twice");
    }
    for (socket, _) in &sockets {
        assert_eq!(socket.close_code(), None);
    }
    // One serialization: every socket holds the same bytes.
    f.stream.post(ROOM, "again");
    for (_, rx) in &mut sockets {
        let frame = rx.recv().await.unwrap();
        texts.push(frame.text.as_str().as_ptr());
    }
    assert!(
        texts.windows(2).all(|w| w[0] == w[1]),
        "frames were serialized per socket"
    );
    assert_eq!(
        f.bus.subscribes.load(Ordering::SeqCst),
        1,
        "one subscription per room"
    );
}

#[tokio::test]
async fn a_full_queue_closes_that_socket_with_1013_and_the_others_get_everything() {
    let f = fixture();
    let (fast, mut fast_rx) = live_socket(&f, 64).await;
    let (slow, _slow_rx) = live_socket(&f, 2).await;
    let mut seqs = Vec::new();
    for n in 0..20 {
        seqs.push(f.stream.post(ROOM, &format!("m{n}")));
    }
    let got = next_messages(&mut fast_rx, 20).await;
    assert_eq!(assert_chain(&got, 0), seqs);
    assert_eq!(slow.close_code(), Some(CLOSE_SLOW));
    assert_eq!(fast.close_code(), None);
}

#[tokio::test]
async fn live_messages_are_delivered_in_order_and_repeats_are_dropped() {
    let f = fixture();
    let (_socket, mut rx) = live_socket(&f, 64).await;
    f.stream.deaf.store(true, Ordering::SeqCst);
    let a = f.stream.post(ROOM, "a");
    f.stream.post("elsewhere", "another room's message");
    let b = f.stream.post(ROOM, "b");
    let c = f.stream.post(ROOM, "c");
    for seq in [a, a, b, a, b, c, c] {
        f.bus.inject(ROOM, f.stream.live_copy_of(seq));
    }
    let got = next_messages(&mut rx, 3).await;
    assert_eq!(assert_chain(&got, 0), vec![a, b, c]);
    settle().await;
    assert!(rx.try_recv().is_err(), "a repeat was delivered");
    assert_eq!(f.stream.replays.load(Ordering::SeqCst), 0, "no gap to fill");
}

#[tokio::test]
async fn a_newer_prev_seq_fills_the_gap_from_the_stream_before_delivering() {
    let f = fixture();
    let (_socket, mut rx) = live_socket(&f, 64).await;
    f.stream.deaf.store(true, Ordering::SeqCst);
    let seqs: Vec<u64> = (0..4)
        .map(|n| f.stream.post(ROOM, &format!("m{n}")))
        .collect();
    // Only the first and the last come live: the two in between were dropped.
    f.bus.inject(ROOM, f.stream.live_copy_of(seqs[0]));
    f.bus.inject(ROOM, f.stream.live_copy_of(seqs[3]));
    let got = next_messages(&mut rx, 4).await;
    assert_eq!(assert_chain(&got, 0), seqs);
    assert_eq!(f.stream.replays.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_expected_seq_that_never_comes_live_is_read_after_the_grace_period() {
    let f = fixture();
    let (_socket, mut rx) = live_socket(&f, 64).await;
    // Past the subscription's first catch-up check; the next one is CATCH_UP_EVERY away.
    tokio::time::sleep(CATCH_UP_FIRST * 2).await;
    f.stream.deaf.store(true, Ordering::SeqCst);
    let seq = f.stream.post(ROOM, "lost live");
    let acked = tokio::time::Instant::now();
    f.core.hub.expect(ROOM, seq);
    let early = tokio::time::timeout(EXPECT_GRACE / 2, rx.recv()).await;
    assert!(early.is_err(), "read before the grace period ended");
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(got[0]["seq"].as_u64(), Some(seq));
    let waited = acked.elapsed();
    assert!(
        waited >= EXPECT_GRACE && waited < CATCH_UP_EVERY,
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_room_waits_for_an_expected_message_on_its_way() {
    let f = fixture();
    let (_socket, mut rx) = live_socket(&f, 64).await;
    tokio::time::sleep(CATCH_UP_FIRST * 2).await;
    f.stream.deaf.store(true, Ordering::SeqCst);
    let first = f.stream.post(ROOM, "on its way");
    let second = f.stream.post(ROOM, "also on its way");
    f.core.hub.expect(ROOM, second);
    // Live traffic keeps coming during the grace period: no JetStream read yet.
    tokio::time::sleep(EXPECT_GRACE / 2).await;
    f.bus.inject(ROOM, f.stream.live_copy_of(first));
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(got[0]["seq"].as_u64(), Some(first));
    tokio::time::sleep(EXPECT_GRACE).await;
    assert_eq!(
        f.stream.replays.load(Ordering::SeqCst),
        0,
        "read what was on its way"
    );
    // The second never comes live: the next period reads it.
    let got = next_messages(&mut rx, 1).await;
    assert_eq!(got[0]["seq"].as_u64(), Some(second));
    assert_eq!(got[0]["prev_seq"].as_u64(), Some(first));
}

#[tokio::test(start_paused = true)]
async fn the_last_socket_out_unsubscribes() {
    let f = fixture();
    let (a, _rx_a) = live_socket(&f, 8).await;
    let (b, _rx_b) = live_socket(&f, 8).await;
    assert_eq!(f.bus.subscribers(ROOM), 1);
    f.core.hub.detach(ROOM, a.id());
    assert_eq!(f.core.hub.room_ids(), vec![ROOM.to_string()]);
    f.core.hub.detach(ROOM, b.id());
    assert!(f.core.hub.room_ids().is_empty());
    settle().await;
    assert_eq!(f.bus.subscribers(ROOM), 0, "the live feed was dropped");
    // A new join subscribes afresh.
    let (_c, mut rx_c) = live_socket(&f, 8).await;
    let seq = f.stream.post(ROOM, "after");
    assert_eq!(
        next_messages(&mut rx_c, 1).await[0]["seq"].as_u64(),
        Some(seq)
    );
}

#[tokio::test]
async fn buffered_frames_newer_than_the_replay_are_released_once() {
    let f = fixture();
    let (socket, mut rx) = SocketHandle::new("joiner".into(), 64);
    let before = f.stream.post(ROOM, "before");
    f.core.hub.attach(ROOM, &socket).await.unwrap();
    f.core.hub.note_position(ROOM, before);
    // Arrive while the socket buffers: one the replay also covers, and two newer.
    let covered = f.stream.post(ROOM, "covered by the replay");
    let newer: Vec<u64> = (0..2)
        .map(|n| f.stream.post(ROOM, &format!("new {n}")))
        .collect();
    settle().await;
    assert!(rx.try_recv().is_err(), "delivered while buffering");
    f.core.hub.activate(ROOM, socket.id(), covered);
    let got = next_messages(&mut rx, 2).await;
    assert_eq!(assert_chain(&got, covered), newer);
    settle().await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn a_socket_that_buffers_too_much_is_closed_with_1013() {
    let f = fixture();
    let (socket, _rx) = SocketHandle::new("joiner".into(), 64);
    f.core.hub.attach(ROOM, &socket).await.unwrap();
    f.core.hub.note_position(ROOM, 0);
    // The buffer holds as much as a socket's queue (the fixture's 64).
    for n in 0..65 {
        f.stream.post(ROOM, &format!("m{n}"));
    }
    settle().await;
    for _ in 0..200 {
        if socket.close_code().is_some() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(socket.close_code(), Some(CLOSE_SLOW));
}

#[test]
fn catch_up_constants_leave_room_for_the_grace_period() {
    assert!(EXPECT_GRACE < CATCH_UP_EVERY);
    assert!(Duration::ZERO < CATCH_UP_FIRST);
}
