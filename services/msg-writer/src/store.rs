//! Writing one chunk of messages into the history store, room by room, until every room of it is
//! stored.
//!
//! The rule is that a message the stream acknowledged is never given up on: whatever the store
//! answers (out of memory, read-only, `MISCONF`, `NOPERM`, busy, gone, slow), the chunk is kept in
//! progress and written again after a pause, so an outage costs lag and nothing else. Rooms are
//! written in one pipeline but answered one by one, so a room that fails does not hold back the
//! acks of the rooms that were stored. A room whose key holds something that is not a history
//! (`WRONGTYPE`) is set aside under another name and rebuilt from the stream, which is the source
//! of truth.
//!
//! The store and the acknowledgements are traits so the rules are unit-tested over fakes.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

/// What one room's share of a chunk writes (see [`crate::apply`] for the history rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RoomWrite<'a> {
    pub room_id: &'a str,
    /// Messages as sent, `(seq, stored payload)` in ascending `seq`, each written only where the
    /// history holds nothing at its `seq`.
    pub messages: Vec<(u64, &'a [u8])>,
    /// States from change events, `(seq, version, state)`, the newest of the chunk for each
    /// `seq`, each written unless the history holds a state at least as new.
    pub states: Vec<(u64, u64, &'a [u8])>,
    /// For the retried-send index: `(day, <sender>:<client_msg_id>, seq)` of each message sent.
    pub sends: Vec<(u64, &'a str, u64)>,
    /// For the per-sender sets: `(sender_id, seq)` of each message sent or changed.
    pub senders: Vec<(&'a str, u64)>,
    /// The `seq` of each message whose deletion the chunk carries: once the history holds it,
    /// the message's old bytes are erased from the stream ([`HistoryStore::erase`]).
    pub erase: Vec<u64>,
    /// The highest stream sequence among the room's messages and change events of the chunk.
    pub high: u64,
}

/// Why the store did not take a room's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The room's key holds something else (`WRONGTYPE`): set it aside and rebuild the room.
    Corrupt,
    /// Anything else, named by the store's error code (or `io`, `timeout`): wait and retry.
    Unavailable(String),
}

/// Where history is written.
pub(crate) trait HistoryStore {
    /// Writes every room; per room whether it was stored. `Err` when the store could not be
    /// asked at all (connection lost, timeout), which refuses every room alike.
    fn store(
        &mut self,
        rooms: &[RoomWrite<'_>],
    ) -> impl Future<Output = Result<Vec<Result<(), Refusal>>, Refusal>> + Send;

    /// Erases the deleted messages `seqs` of the room from the stream, with their older change
    /// events, once their deletion is in the history. Idempotent.
    fn erase(
        &mut self,
        room_id: &str,
        seqs: &[u64],
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// Moves a corrupt room key out of the way (kept for an operator to look at) and starts a
    /// rebuild of the room from the stream.
    fn set_aside(&mut self, room_id: &str) -> impl Future<Output = Result<(), Refusal>> + Send;
}

/// What the writer tells the stream about the messages of a chunk.
pub(crate) trait Settle {
    /// The message is stored: the stream may forget it.
    fn ack(&self, index: usize) -> impl Future<Output = ()> + Send;
    /// The message is still being worked on: do not hand it to another writer yet.
    fn progress(&self, index: usize) -> impl Future<Output = ()> + Send;
}

/// Pauses between attempts while the store refuses, and how often in-progress acks go out (well
/// inside the consumer's ack wait of 30 s).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    pub first: Duration,
    pub max: Duration,
    pub progress_every: Duration,
}

pub(crate) const RETRY: Retry = Retry {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
    progress_every: Duration::from_secs(10),
};

/// What became of a chunk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Messages stored and acknowledged.
    pub stored: usize,
    /// Attempts that found the store refusing at least one room.
    pub refused_attempts: u32,
    /// Rooms set aside and rebuilt.
    pub healed_rooms: usize,
    /// `true` when shutdown interrupted the retries: the rest is left for redelivery.
    pub interrupted: bool,
}

/// Writes `rooms` (whose messages are numbered by `indices`, parallel to `rooms`) and settles
/// every message: ack once its room is stored, in-progress while it waits. Returns when every
/// room is stored, or when `stop` resolves (then the unstored messages stay unacked and are
/// redelivered, with no limit on deliveries, so nothing is dropped).
pub(crate) async fn write_chunk<S, A, F>(
    store: &mut S,
    settle: &A,
    rooms: Vec<RoomWrite<'_>>,
    indices: Vec<Vec<usize>>,
    retry: Retry,
    stop: F,
) -> Outcome
where
    S: HistoryStore,
    A: Settle,
    F: Future<Output = ()>,
{
    tokio::pin!(stop);
    let mut outcome = Outcome::default();
    let mut pending: Vec<(RoomWrite<'_>, Vec<usize>)> = rooms.into_iter().zip(indices).collect();
    let mut backoff = retry.first;
    let mut last_progress = tokio::time::Instant::now();
    let mut healed: HashSet<String> = HashSet::new();
    loop {
        let writes: Vec<RoomWrite<'_>> = pending.iter().map(|(w, _)| w.clone()).collect();
        let answers = match store.store(&writes).await {
            Ok(per_room) => per_room,
            Err(refusal) => vec![Err(refusal); writes.len()],
        };
        let mut still = Vec::new();
        let mut first_refusal = None;
        for ((write, idx), answer) in pending.into_iter().zip(answers) {
            // A deletion is acknowledged only once the stream no longer holds the text: if the
            // erasure fails, the room is written (harmlessly) and erased again.
            let answer = match answer {
                Ok(()) if !write.erase.is_empty() => store.erase(write.room_id, &write.erase).await,
                other => other,
            };
            match answer {
                Ok(()) => {
                    for &i in &idx {
                        settle.ack(i).await;
                    }
                    outcome.stored += idx.len();
                }
                Err(Refusal::Corrupt) => {
                    if !healed.contains(write.room_id) {
                        match store.set_aside(write.room_id).await {
                            Ok(()) => {
                                healed.insert(write.room_id.to_string());
                                outcome.healed_rooms += 1;
                            }
                            Err(e) => first_refusal = first_refusal.or(Some(e)),
                        }
                    }
                    first_refusal = first_refusal.or(Some(Refusal::Corrupt));
                    still.push((write, idx));
                }
                Err(refusal) => {
                    first_refusal = first_refusal.or(Some(refusal));
                    still.push((write, idx));
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            return outcome;
        }
        outcome.refused_attempts += 1;
        if let Some(refusal) = &first_refusal {
            tracing::warn!(
                rooms = pending.len(),
                ?refusal,
                "history store refused a write; keeping the messages and retrying"
            );
        }
        if last_progress.elapsed() >= retry.progress_every {
            for (_, idx) in &pending {
                for &i in idx {
                    settle.progress(i).await;
                }
            }
            last_progress = tokio::time::Instant::now();
        }
        // A corrupt room was just set aside: retry at once, the key is free now.
        let pause = if matches!(first_refusal, Some(Refusal::Corrupt)) {
            Duration::ZERO
        } else {
            backoff
        };
        tokio::select! {
            _ = &mut stop => {
                outcome.interrupted = true;
                return outcome;
            }
            _ = tokio::time::sleep(pause) => {}
        }
        backoff = (backoff * 2).min(retry.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// How one attempt answers for a room.
    type Answer = Box<dyn Fn(&str) -> Result<(), Refusal> + Send>;

    /// A store whose answers are scripted attempt by attempt (then everything succeeds); its
    /// first `erase_failures` erasures fail.
    #[derive(Default)]
    struct Scripted {
        attempts: VecDeque<Answer>,
        calls: Vec<Vec<String>>,
        set_aside: Vec<String>,
        erase_failures: usize,
        /// `(room, seqs, how many stores had been made by then)` of each erasure asked for.
        erased: Vec<(String, Vec<u64>, usize)>,
    }

    impl HistoryStore for Scripted {
        async fn store(
            &mut self,
            rooms: &[RoomWrite<'_>],
        ) -> Result<Vec<Result<(), Refusal>>, Refusal> {
            self.calls
                .push(rooms.iter().map(|r| r.room_id.to_string()).collect());
            let answer = self.attempts.pop_front();
            Ok(rooms
                .iter()
                .map(|r| answer.as_ref().map_or(Ok(()), |f| f(r.room_id)))
                .collect())
        }

        async fn erase(&mut self, room_id: &str, seqs: &[u64]) -> Result<(), Refusal> {
            self.erased
                .push((room_id.to_string(), seqs.to_vec(), self.calls.len()));
            if self.erase_failures > 0 {
                self.erase_failures -= 1;
                return Err(Refusal::Unavailable("erase".into()));
            }
            Ok(())
        }

        async fn set_aside(&mut self, room_id: &str) -> Result<(), Refusal> {
            self.set_aside.push(room_id.to_string());
            Ok(())
        }
    }

    #[derive(Default)]
    struct Recorded {
        acked: Mutex<Vec<usize>>,
        progressed: Mutex<Vec<usize>>,
    }

    impl Settle for Recorded {
        async fn ack(&self, index: usize) {
            self.acked.lock().unwrap().push(index);
        }
        async fn progress(&self, index: usize) {
            self.progressed.lock().unwrap().push(index);
        }
    }

    fn chunk() -> (Vec<RoomWrite<'static>>, Vec<Vec<usize>>) {
        (
            vec![
                RoomWrite {
                    room_id: "a",
                    messages: vec![(1, b"x"), (3, b"y")],
                    sends: vec![(1, "u:1", 1), (1, "u:3", 3)],
                    high: 3,
                    ..RoomWrite::default()
                },
                RoomWrite {
                    room_id: "b",
                    messages: vec![(2, b"z")],
                    sends: vec![(1, "u:2", 2)],
                    high: 2,
                    ..RoomWrite::default()
                },
            ],
            vec![vec![0, 2], vec![1]],
        )
    }

    fn never() -> impl Future<Output = ()> {
        std::future::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn an_out_of_memory_store_costs_lag_and_nothing_else() {
        let mut store = Scripted::default();
        for _ in 0..50 {
            store
                .attempts
                .push_back(Box::new(|_| Err(Refusal::Unavailable("OOM".into()))));
        }
        let settle = Recorded::default();
        let (rooms, idx) = chunk();
        let outcome = write_chunk(&mut store, &settle, rooms, idx, RETRY, never()).await;
        assert_eq!(outcome.stored, 3);
        assert_eq!(outcome.refused_attempts, 50);
        let mut acked = settle.acked.lock().unwrap().clone();
        acked.sort();
        assert_eq!(acked, vec![0, 1, 2]);
        // 50 attempts with pauses of up to 5 s: minutes of refusal, kept alive by progress acks.
        assert!(!settle.progressed.lock().unwrap().is_empty());
        assert!(store.set_aside.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_room_does_not_hold_back_the_others() {
        let mut store = Scripted::default();
        for _ in 0..3 {
            store.attempts.push_back(Box::new(|room| {
                if room == "a" {
                    Err(Refusal::Unavailable("NOPERM".into()))
                } else {
                    Ok(())
                }
            }));
        }
        let settle = Recorded::default();
        let (rooms, idx) = chunk();
        let outcome = write_chunk(&mut store, &settle, rooms, idx, RETRY, never()).await;
        assert_eq!(outcome.stored, 3);
        // b was acked after the first attempt and never written again.
        assert_eq!(settle.acked.lock().unwrap()[0], 1);
        assert_eq!(store.calls[1], vec!["a".to_string()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_corrupt_room_key_is_set_aside_once_and_rewritten() {
        let mut store = Scripted::default();
        store.attempts.push_back(Box::new(|room| {
            if room == "b" {
                Err(Refusal::Corrupt)
            } else {
                Ok(())
            }
        }));
        let settle = Recorded::default();
        let (rooms, idx) = chunk();
        let outcome = write_chunk(&mut store, &settle, rooms, idx, RETRY, never()).await;
        assert_eq!(outcome.stored, 3);
        assert_eq!(outcome.healed_rooms, 1);
        assert_eq!(store.set_aside, vec!["b".to_string()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deletion_is_acked_only_after_its_erasure() {
        let mut store = Scripted {
            erase_failures: 2,
            ..Scripted::default()
        };
        let settle = Recorded::default();
        let (mut rooms, idx) = chunk();
        rooms[1].states.push((1, 2, b"{}"));
        rooms[1].erase.push(1);
        let outcome = write_chunk(&mut store, &settle, rooms, idx, RETRY, never()).await;
        assert_eq!(outcome.stored, 3);
        // Room a went through at once; b was written and erased three times, never erased before
        // it was written, and acked after the erasure that worked.
        assert_eq!(store.calls.len(), 3);
        assert_eq!(store.calls[1], vec!["b".to_string()]);
        let erased: Vec<_> = store.erased.iter().map(|(_, _, after)| *after).collect();
        assert_eq!(erased, vec![1, 2, 3]);
        assert!(store.erased.iter().all(|(r, s, _)| r == "b" && s == &[1]));
        assert_eq!(*settle.acked.lock().unwrap(), vec![0, 2, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_leaves_unstored_messages_unacked() {
        let mut store = Scripted::default();
        for _ in 0..1000 {
            store
                .attempts
                .push_back(Box::new(|_| Err(Refusal::Unavailable("io".into()))));
        }
        let settle = Recorded::default();
        let (rooms, idx) = chunk();
        let stop = tokio::time::sleep(Duration::from_secs(3));
        let outcome = write_chunk(&mut store, &settle, rooms, idx, RETRY, stop).await;
        assert!(outcome.interrupted);
        assert_eq!(outcome.stored, 0);
        assert!(settle.acked.lock().unwrap().is_empty());
    }
}
