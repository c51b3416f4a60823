//! A deleted message's text leaves the stream: once its deletion is in the history, the writer
//! erases the message as sent (`STREAM.MSG.DELETE`, which overwrites the stored bytes) and every
//! change event of it but the last, its tombstone (each deleted the same way, up to a bound,
//! then a purge of its change subject keeping one).
//!
//! Idempotent, so a redelivered deletion does it again harmlessly: a message already gone is
//! done. The message at the deleted `seq` is looked at first and erased only if it is a message
//! of that room, so a change naming a wrong `seq` can never erase another room's message. Each
//! request is bounded.

use std::time::Duration;

use crate::partition::Partition;
use async_nats::jetstream::stream::{
    DeleteMessageError, PurgeError, RawMessageError, RawMessageErrorKind, Stream,
};

/// The most older change events of one deleted message erased one by one (the rest, if any, are
/// purged).
const MAX_ERASED_CHANGES: usize = 1_000;
/// How long one request to the stream may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum EraseError {
    #[error("looking the message up: {0}")]
    Lookup(#[from] RawMessageError),
    #[error("deleting the message: {0}")]
    Delete(#[from] DeleteMessageError),
    #[error("purging the older changes: {0}")]
    Purge(#[from] PurgeError),
    #[error("the stream did not answer within {REQUEST_TIMEOUT:?}")]
    TimedOut,
}

impl EraseError {
    /// A short name of what failed, for the store's refusal.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            EraseError::Lookup(_) => "erase-lookup",
            EraseError::Delete(_) => "erase-delete",
            EraseError::Purge(_) => "erase-purge",
            EraseError::TimedOut => "erase-timeout",
        }
    }
}

async fn bounded<T, E>(
    request: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, EraseError>
where
    EraseError: From<E>,
{
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(EraseError::from),
        Err(_) => Err(EraseError::TimedOut),
    }
}

/// Whether the stream holds a message of `room_id` at `seq`.
async fn holds(part: &Partition, room_id: &str, seq: u64) -> Result<bool, EraseError> {
    match bounded(part.stream.get_raw_message(seq)).await {
        Ok(message) => {
            let ours = message.subject.as_str() == part.streams.stored_message(room_id);
            if !ours {
                tracing::warn!(room = %room_id, seq, subject = %message.subject, "a deletion names a seq that is not a message of its room; not erasing it");
            }
            Ok(ours)
        }
        Err(EraseError::Lookup(e)) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Erases the room's deleted message `seq` and its older change events from the stream.
pub(crate) async fn erase_deleted(
    part: &Partition,
    room_id: &str,
    seq: u64,
) -> Result<(), EraseError> {
    let stream = &part.stream;
    if holds(part, room_id, seq).await? {
        if let Err(e) = bounded(stream.delete_message(seq)).await {
            // Erased meanwhile (by another writer handling a redelivery) is done; JetStream
            // answers a delete of a missing message with the same code as any failure, so look.
            if holds(part, room_id, seq).await? {
                return Err(e);
            }
        }
    }
    let changes = part.streams.stored_change(room_id, seq);
    erase_older_changes(stream, &changes, seq + 1).await?;
    // Whatever is left but the tombstone (past the bound above) goes too.
    bounded(async { stream.purge().filter(changes).keep(1).await }).await?;
    Ok(())
}

/// Erases, one by one, the change events on `changes` older than its newest (the tombstone),
/// looking from stream sequence `from` (a message's changes come after it), at most
/// [`MAX_ERASED_CHANGES`]: a delete overwrites a message's bytes, which a purge is not
/// documented to do, and each older change event holds the message's text.
async fn erase_older_changes(
    stream: &Stream,
    changes: &str,
    mut from: u64,
) -> Result<(), EraseError> {
    let newest = match bounded(stream.get_last_raw_message_by_subject(changes)).await {
        Ok(m) => m.sequence,
        Err(EraseError::Lookup(e)) if e.kind() == RawMessageErrorKind::NoMessageFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    for _ in 0..MAX_ERASED_CHANGES {
        let next = bounded(
            stream
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(changes)
                .send(),
        )
        .await;
        let older = match next {
            Ok(m) if m.sequence < newest => m.sequence,
            Ok(_) => return Ok(()),
            Err(EraseError::Lookup(e)) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        // A change erased meanwhile (a redelivered deletion) is the same outcome.
        if let Err(e) = bounded(stream.delete_message(older)).await {
            tracing::debug!(seq = older, error = %e, "older change not erased; the purge removes it");
        }
        from = older + 1;
    }
    Ok(())
}
