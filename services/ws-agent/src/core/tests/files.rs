//! Files over fakes: an upload's bound (declared and streamed), its digest and record, who may
//! read, attachments marked before the publish and refused when they name anything else, a
//! deletion refusing its files before the tombstone, and the upload slots.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use dyschat_protocol::wire::FileState;
use dyschat_protocol::ErrorCode;
use futures::StreamExt;

use crate::core::{CoreError, Edit, Outgoing, Reply, Upload};
use crate::ports::ByteStream;
use crate::testing::{fixture_with, settings, user, Fixture};

const ROOM: &str = "room1";
const OTHER: &str = "room2";
const MAX: u64 = 64;

fn fixture() -> Fixture {
    let f = fixture_with(crate::config::AgentSettings {
        max_file_bytes: MAX,
        ..settings()
    });
    f.rooms.create(ROOM, &user("alice"));
    f.rooms.create(OTHER, &user("alice"));
    f
}

fn body(parts: Vec<&'static [u8]>) -> ByteStream {
    futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed()
}

fn upload(room: &str, name: &str, declared: Option<u64>, parts: Vec<&'static [u8]>) -> Upload {
    Upload {
        room_id: room.into(),
        name: name.into(),
        content_type: Some("text/plain".into()),
        declared,
        body: body(parts),
    }
}

fn code(e: CoreError) -> ErrorCode {
    dyschat_protocol::ApiError::from(e).code
}

fn send(files: Vec<String>) -> Outgoing {
    Outgoing {
        room_id: ROOM.into(),
        body: "see".into(),
        client_msg_id: Some("c1".into()),
        reply_to: None,
        attachments: files,
    }
}

#[tokio::test]
async fn an_upload_is_stored_hashed_and_pending() {
    let f = fixture();
    let file = f
        .core
        .upload(
            &user("alice"),
            upload(ROOM, "a.txt", None, vec![b"ab", b"c"]),
        )
        .await
        .unwrap();
    assert_eq!(file.size, 3);
    assert_eq!(
        file.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(file.content_type, "text/plain");
    assert!(file.file_id.starts_with("room1-"));
    let stored = f.files.stored(&file.file_id).unwrap();
    assert_eq!(stored.state, FileState::Pending);
    // Listed for the sweep from its upload on.
    assert!(f.files.marked.lock().unwrap().contains(&file.file_id));
    assert_eq!(stored.file, file);
    let read = f.core.file(&user("alice"), &file.file_id).await.unwrap();
    assert_eq!(read, file);
    let bytes: Vec<_> = f
        .core
        .file_bytes(&file.file_id, 1, 2)
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(bytes[0].as_ref().unwrap().as_ref(), b"bc");
}

#[tokio::test]
async fn the_bound_holds_declared_and_streamed_and_nothing_stays() {
    let f = fixture();
    let alice = user("alice");
    // Exactly the bound is fine.
    let exact: &'static [u8] = &[b'x'; 64];
    assert!(f
        .core
        .upload(&alice, upload(ROOM, "a", Some(MAX), vec![exact]))
        .await
        .is_ok());
    let declared = f
        .core
        .upload(&alice, upload(ROOM, "a", Some(MAX + 1), vec![b"x"]))
        .await
        .unwrap_err();
    assert_eq!(code(declared), ErrorCode::TooLarge);
    // A body larger than it said, or than the bound without saying.
    for declared in [Some(10), None] {
        let e = f
            .core
            .upload(&alice, upload(ROOM, "a", declared, vec![exact, b"y"]))
            .await
            .unwrap_err();
        assert_eq!(code(e), ErrorCode::TooLarge, "{declared:?}");
    }
    assert_eq!(f.files.objects.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn names_members_and_failing_records() {
    let f = fixture();
    for bad in ["", " ", "a/b", "a\u{0}"] {
        let e = f
            .core
            .upload(&user("alice"), upload(ROOM, bad, None, vec![b"x"]))
            .await
            .unwrap_err();
        assert_eq!(code(e), ErrorCode::BadRequest, "{bad:?}");
    }
    let e = f
        .core
        .upload(&user("bob"), upload(ROOM, "a", None, vec![b"x"]))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Forbidden);
    let file = f
        .core
        .upload(&user("alice"), upload(ROOM, "a", None, vec![b"x"]))
        .await
        .unwrap();
    // Anyone but a member: not found, like an unknown id.
    for (who, id) in [
        ("bob", file.file_id.clone()),
        ("alice", "room1-01J00000000000000000000000".to_string()),
        ("alice", "junk".to_string()),
    ] {
        let e = f.core.file(&user(who), &id).await.unwrap_err();
        assert_eq!(code(e), ErrorCode::NotFound, "{who} {id}");
    }
    // A record that cannot be written leaves no object.
    f.files.records_down.store(true, Ordering::SeqCst);
    let e = f
        .core
        .upload(&user("alice"), upload(ROOM, "b", None, vec![b"y"]))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Unavailable);
    assert_eq!(f.files.objects.lock().unwrap().len(), 1);
    assert_eq!(f.files.marked.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_send_attaches_its_files_before_publishing_and_refuses_others() {
    let f = fixture();
    let alice = user("alice");
    let up = |room: &'static str| f.core.upload(&alice, upload(room, "f", None, vec![b"z"]));
    let (a, b, elsewhere) = (
        up(ROOM).await.unwrap(),
        up(ROOM).await.unwrap(),
        up(OTHER).await.unwrap(),
    );
    let pending = f
        .core
        .send(
            &alice,
            send(vec![a.file_id.clone(), b.file_id.clone()]),
            Reply::Ack,
        )
        .await
        .unwrap();
    // Attached already, before the store confirmed anything.
    for file in [&a, &b] {
        let stored = f.files.stored(&file.file_id).unwrap();
        assert_eq!(stored.state, FileState::Attached);
        assert_eq!(stored.attached_to.as_deref(), Some("id-alice:room1:c1"));
        assert!(!f.files.marked.lock().unwrap().contains(&file.file_id));
    }
    // The file of another room stays listed.
    assert!(f.files.marked.lock().unwrap().contains(&elsewhere.file_id));
    let sent = f.core.confirm(pending).await.unwrap();
    assert_eq!(sent.stored.attachments, vec![a.clone(), b.clone()]);
    // The same send again is its own files' holder; another send is refused them.
    assert!(f
        .core
        .send(&alice, send(vec![a.file_id.clone()]), Reply::Ack)
        .await
        .is_ok());
    let mut other = send(vec![a.file_id.clone()]);
    other.client_msg_id = Some("c2".into());
    let lists = [
        other.attachments.clone(),
        vec![elsewhere.file_id.clone()],
        vec!["room1-01J00000000000000000000000".into()],
        (0..11).map(|i| format!("room1-01J{i:023}")).collect(),
    ];
    for list in lists {
        let mut out = other.clone();
        out.attachments = list.clone();
        let e = f.core.send(&alice, out, Reply::Ack).await.err().unwrap();
        assert_eq!(code(e), ErrorCode::BadRequest, "{list:?}");
    }
}

#[tokio::test]
async fn a_deletion_refuses_its_files_before_the_tombstone_and_removes_them() {
    let f = fixture();
    let alice = user("alice");
    let file = f
        .core
        .upload(&alice, upload(ROOM, "f", None, vec![b"z"]))
        .await
        .unwrap();
    let pending = f
        .core
        .send(&alice, send(vec![file.file_id.clone()]), Reply::Ack)
        .await
        .unwrap();
    let seq = f.core.confirm(pending).await.unwrap().seq;
    // While the records cannot be written, the deletion is refused (and nothing is stored).
    f.files.records_down.store(true, Ordering::SeqCst);
    let e = f
        .core
        .change(&alice, ROOM, seq, Edit::Delete)
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Unavailable);
    assert!(f.core.file(&alice, &file.file_id).await.is_ok());
    f.files.records_down.store(false, Ordering::SeqCst);
    let done = f
        .core
        .change(&alice, ROOM, seq, Edit::Delete)
        .await
        .unwrap();
    assert!(done.state.deleted && done.state.attachments.is_empty());
    let e = f.core.file(&alice, &file.file_id).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::NotFound);
    assert!(f.files.stored(&file.file_id).is_none());
    assert!(f.files.objects.lock().unwrap().is_empty());
    assert!(f.files.marked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn uploads_wait_for_a_slot_then_give_up() {
    let f = fixture_with(crate::config::AgentSettings {
        max_concurrent_uploads: 1,
        ..settings()
    });
    f.rooms.create(ROOM, &user("alice"));
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    let core = f.core.clone();
    let held = tokio::spawn(async move {
        let up = Upload {
            room_id: ROOM.into(),
            name: "slow".into(),
            content_type: None,
            declared: None,
            body: rx.boxed(),
        };
        core.upload(&user("alice"), up).await
    });
    tokio::task::yield_now().await;
    tokio::time::pause();
    let e = f
        .core
        .upload(&user("alice"), upload(ROOM, "b", None, vec![b"x"]))
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Unavailable);
    tokio::time::resume();
    drop(tx);
    let first = held.await.unwrap().unwrap();
    assert_eq!(first.size, 0);
    assert_eq!(first.content_type, "application/octet-stream");
}

#[tokio::test]
async fn a_download_holds_its_slot_until_its_body_is_gone() {
    let f = fixture_with(crate::config::AgentSettings {
        max_concurrent_downloads: 1,
        ..settings()
    });
    f.rooms.create(ROOM, &user("alice"));
    let file = f
        .core
        .upload(&user("alice"), upload(ROOM, "a", None, vec![b"abc"]))
        .await
        .unwrap();
    let first = f.core.file_bytes(&file.file_id, 0, 3).await.unwrap();
    tokio::time::pause();
    let e = f.core.file_bytes(&file.file_id, 0, 3).await.err().unwrap();
    assert_eq!(code(e), ErrorCode::Unavailable);
    tokio::time::resume();
    drop(first);
    let again: Vec<_> = f
        .core
        .file_bytes(&file.file_id, 1, 2)
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(again[0].as_ref().unwrap().as_ref(), b"bc");
}
