//! `dyschat_runtime::direct` (batched direct get) against a real nats-server: paging a KV
//! bucket's stream with `next_by_subj`, `multi_last` over filters and as of a sequence, markers,
//! the end of a listing, and the server's limits.

use std::time::Duration;

use async_nats::jetstream::{self, kv, kv::Operation};
use dyschat_runtime::direct::{DirectError, DirectGet, MAX_BATCH};
use dyschat_tests::NatsServer;

const BUCKET: &str = "direct_test";
const STREAM: &str = "KV_direct_test";

async fn setup() -> (NatsServer, kv::Store, DirectGet) {
    let nats = NatsServer::start().await.expect("start nats-server");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    let kv = js
        .create_key_value(kv::Config {
            bucket: BUCKET.into(),
            history: 1,
            ..Default::default()
        })
        .await
        .expect("bucket");
    (nats, kv, DirectGet::new(client, Duration::from_secs(5)))
}

fn subject(key: &str) -> String {
    format!("$KV.{BUCKET}.{key}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_walk_a_filter_in_sequence_order_with_markers_marked() {
    let (_nats, kv, direct) = setup().await;
    for i in 0..5 {
        kv.put(format!("r1.u{i}"), format!("v{i}").into())
            .await
            .unwrap();
        kv.put(format!("r2.u{i}"), "other".into()).await.unwrap();
    }
    kv.delete("r1.u1").await.unwrap();

    let filter = subject("r1.*");
    let first = direct.next_by_subject(STREAM, 0, &filter, 3).await.unwrap();
    let keys: Vec<&str> = first.messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(keys, [subject("r1.u0"), subject("r1.u2"), subject("r1.u3")]);
    assert!(first.messages.iter().all(|m| m.operation == Operation::Put));
    assert_eq!(&first.messages[1].payload[..], b"v2");
    // u4 and the marker of u1 follow.
    assert_eq!(first.num_pending, 2);

    let from = first.next_sequence().unwrap();
    let rest = direct
        .next_by_subject(STREAM, from, &filter, 3)
        .await
        .unwrap();
    let ops: Vec<(String, Operation)> = rest
        .messages
        .iter()
        .map(|m| (m.subject.clone(), m.operation))
        .collect();
    assert_eq!(
        ops,
        [
            (subject("r1.u4"), Operation::Put),
            (subject("r1.u1"), Operation::Delete)
        ]
    );
    assert_eq!(rest.num_pending, 0);
    assert!(rest.messages[0].sequence > first.messages[2].sequence);

    // Past the end, and a filter nothing matches: an empty batch, not an error.
    let past = rest.next_sequence().unwrap();
    let empty = direct
        .next_by_subject(STREAM, past, &filter, 3)
        .await
        .unwrap();
    assert!(empty.messages.is_empty() && empty.num_pending == 0);
    let none = direct
        .next_by_subject(STREAM, 0, &subject("r9.*"), 3)
        .await
        .unwrap();
    assert!(none.messages.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_last_reads_the_last_entry_of_every_matching_key() {
    let (_nats, kv, direct) = setup().await;
    kv.put("alice.a1", "1".into()).await.unwrap();
    let carol = kv.put("carol.a2", "1".into()).await.unwrap();
    kv.put("carol.a3", "1".into()).await.unwrap();
    kv.put("alice.a1", "2".into()).await.unwrap();
    kv.purge("carol.a3").await.unwrap();
    kv.put("dave.a1", "1".into()).await.unwrap();

    let filters = vec![subject("alice.*"), subject("carol.*"), subject("bob.*")];
    let batch = direct
        .multi_last(STREAM, &filters, MAX_BATCH, None)
        .await
        .unwrap();
    let last: Vec<(String, Operation, Vec<u8>)> = batch
        .messages
        .iter()
        .map(|m| (m.subject.clone(), m.operation, m.payload.to_vec()))
        .collect();
    assert_eq!(
        last,
        [
            (subject("carol.a2"), Operation::Put, b"1".to_vec()),
            (subject("alice.a1"), Operation::Put, b"2".to_vec()),
            (subject("carol.a3"), Operation::Purge, vec![]),
        ]
    );

    // As of a sequence: only what was stored by then and is still stored (history 1 keeps one
    // entry per key, so alice.a1's first value is gone and its second is later).
    let filters = vec![subject("alice.*"), subject("carol.*"), subject("dave.*")];
    let then = direct
        .multi_last(STREAM, &filters, 10, Some(carol))
        .await
        .unwrap();
    let seen: Vec<(&str, u64)> = then
        .messages
        .iter()
        .map(|m| (m.subject.as_str(), m.sequence))
        .collect();
    assert_eq!(seen, [(subject("carol.a2").as_str(), carol)]);

    let nothing = direct
        .multi_last(STREAM, &[subject("nobody.*")], 10, None)
        .await
        .unwrap();
    assert!(nothing.messages.is_empty());
    assert!(direct
        .multi_last(STREAM, &[], 10, None)
        .await
        .unwrap()
        .messages
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_typed_errors() {
    let (nats, _kv, direct) = setup().await;
    // More keys than one multi_last may match.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let mut acks = Vec::new();
    for i in 0..1100 {
        acks.push(
            js.publish(subject(&format!("big.u{i}")), "v".into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let too_many = direct
        .multi_last(STREAM, &[subject("big.*")], MAX_BATCH, None)
        .await;
    assert!(
        matches!(too_many, Err(DirectError::TooManyResults)),
        "{too_many:?}"
    );
    // Paging the same keys is fine, a bounded batch at a time.
    let page = direct
        .next_by_subject(STREAM, 0, &subject("big.*"), MAX_BATCH)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), MAX_BATCH);
    assert_eq!(page.num_pending, 1100 - MAX_BATCH as u64);

    assert!(matches!(
        direct
            .next_by_subject(STREAM, 0, &subject("big.*"), 0)
            .await,
        Err(DirectError::InvalidBatch(0))
    ));
    assert!(matches!(
        direct
            .next_by_subject(STREAM, 0, &subject("big.*"), MAX_BATCH + 1)
            .await,
        Err(DirectError::InvalidBatch(_))
    ));
    let missing = direct.next_by_subject("NO_SUCH_STREAM", 0, "x.*", 1).await;
    assert!(
        matches!(missing, Err(DirectError::NoResponders(_))),
        "{missing:?}"
    );
}
