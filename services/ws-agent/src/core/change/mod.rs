//! Changing a stored message (edit, delete, react, unreact): the one path both edges take.
//!
//! A change is a read of the message's current state (the newest change event of its subject,
//! else the message as sent), a pure decision ([`rules`]), and a publish of the whole new
//! state as a change event that JetStream stores only if the room's newest change is still the
//! one read (a compare-and-set on the room's change filter). So the room's change events form
//! one chain (`prev_event_seq`), and two racing changes never both build on the same state:
//! the loser reads again and decides again (at most [`MAX_ATTEMPTS`] times). This agent's own
//! changes of a room wait for each other ([`Stripes`]) instead of racing.
//!
//! A deletion first marks the message's files `removing` (refused to every reader from then on,
//! [`super::files`]), stores the tombstone, then removes the files' bytes and records;
//! msg-writer then erases the original and the older change events from the stream as it applies
//! it (`msg-writer/src/store.rs`), while every reader already folds the tombstone over them
//! ([`super::fold`]).

use std::time::Duration;

use dyschat_protocol::{
    layout::MAX_STORED_BYTES,
    mentions,
    policy::Action,
    time,
    wire::{StoredChange, StoredMessage},
    ApiError,
};

use super::{Core, CoreError, User};
use crate::ports::PortError;

mod rules;

pub(crate) use rules::Edit;
use rules::Outcome;

/// How many times a change is read and decided again after losing a race.
const MAX_ATTEMPTS: usize = 12;
/// How many locks this agent's changes are spread over.
const STRIPES: usize = 64;

/// A few locks, one per room hash: bounded, whatever the number of rooms.
pub(crate) struct Stripes([tokio::sync::Mutex<()>; STRIPES]);

impl Default for Stripes {
    fn default() -> Self {
        Stripes(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }
}

impl Stripes {
    async fn lock(&self, room_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room_id.hash(&mut h);
        let i = usize::try_from(h.finish() % STRIPES as u64).unwrap_or(0);
        self.0[i].lock().await
    }
}

/// A change made (or found already made: a repeated reaction).
#[derive(Debug, Clone)]
pub(crate) struct ChangeDone {
    pub room_id: String,
    pub seq: u64,
    pub prev_seq: u64,
    /// The message's state now.
    pub state: StoredMessage,
}

/// A message's current state as read before a change.
struct Current {
    state: StoredMessage,
    /// Known when the state comes from a change event (which carries it).
    prev_seq: Option<u64>,
}

impl Core {
    /// Makes `edit` to the room's message `seq` on behalf of `user`.
    pub(crate) async fn change(
        &self,
        user: &User,
        room_id: &str,
        seq: u64,
        edit: Edit,
    ) -> Result<ChangeDone, CoreError> {
        edit.validate()?;
        let standing = self
            .membership
            .decide(room_id, &user.user_id, Action::Post)
            .await?;
        // An edit names its mentions again (it notifies nobody: the feed ignores edits).
        let mentioned = match &edit {
            Edit::Body(body) => Some(self.mentions_of(room_id, body, &user.user_id).await?),
            _ => None,
        };
        let mut serialised = self.change_locks.lock(room_id).await;
        for attempt in 0..MAX_ATTEMPTS {
            let last = self
                .changes
                .last_change(room_id)
                .await
                .map_err(CoreError::unavailable("change lookup"))?;
            let expected = last.as_ref().map_or(0, |c| c.event_seq);
            let current = match last.filter(|c| c.change.seq == seq) {
                Some(c) => Current {
                    state: c.change.message,
                    prev_seq: Some(c.change.prev_seq),
                },
                None => self.current(room_id, seq).await?,
            };
            if matches!(edit, Edit::Delete) && current.state.sender_id != user.user_id {
                // The sender's role, lower than the moderator's (someone who left has none).
                let target = match self
                    .membership
                    .standing(room_id, &current.state.sender_id)
                    .await
                {
                    Ok(s) => s.role,
                    Err(CoreError::Api(e)) if e.code == dyschat_protocol::ErrorCode::NotFound => {
                        None
                    }
                    Err(e) => return Err(e),
                };
                dyschat_protocol::policy::decide(&standing, Action::Moderate { target })
                    .map_err(CoreError::Denied)?;
            }
            let now = time::now();
            let outcome = rules::apply(&current.state, &edit, &user.user_id, &now)?;
            // A deletion's files are refused to every reader before its tombstone is stored.
            let doomed = match (&edit, &outcome) {
                (Edit::Delete, Outcome::Changed(..)) => current.state.attachments.clone(),
                _ => Vec::new(),
            };
            self.doom(&doomed).await?;
            let prev_seq = self.prev_seq_of(room_id, seq, current.prev_seq).await?;
            let (kind, mut state) = match outcome {
                Outcome::Changed(kind, state) => (kind, *state),
                Outcome::Unchanged => {
                    return Ok(ChangeDone {
                        room_id: room_id.to_string(),
                        seq,
                        prev_seq,
                        state: current.state,
                    });
                }
            };
            if let Some(mentioned) = &mentioned {
                state.mentions = mentioned.clone();
            }
            let change = StoredChange {
                room_id: room_id.to_string(),
                seq,
                prev_seq,
                change: kind,
                prev_event_seq: expected,
                by: user.user_id.clone(),
                at: now,
                message: state,
            };
            // Serialized once: checked against the stream's bound, then published as it is.
            let payload =
                serde_json::to_vec(&change).map_err(|e| CoreError::Internal(e.to_string()))?;
            if payload.len() > MAX_STORED_BYTES {
                return Err(ApiError::conflict("the message's state would be too large").into());
            }
            let stored = self
                .changes
                .publish_change(room_id, seq, payload.into(), expected)
                .await
                .map_err(CoreError::unavailable("change store"))?;
            if stored.is_some() {
                self.remove_files(&doomed).await;
                return Ok(ChangeDone {
                    room_id: change.room_id,
                    seq,
                    prev_seq,
                    state: change.message,
                });
            }
            // Another agent's change of the room came first: read again, after a pause during
            // which this agent's other changes (of this room or one sharing the lock) go on.
            drop(serialised);
            let pause = 2u64.saturating_pow(u32::try_from(attempt).unwrap_or(8).min(6));
            let jitter = rand::random_range(0..pause);
            tokio::time::sleep(Duration::from_millis(pause + jitter)).await;
            serialised = self.change_locks.lock(room_id).await;
        }
        Err(CoreError::Busy(
            "the room's messages are changing too fast, try again",
        ))
    }

    /// The message's current state when the room's newest change is not about it: its own
    /// newest change, else the message as sent; `not_found` when the room has no such message.
    async fn current(&self, room_id: &str, seq: u64) -> Result<Current, CoreError> {
        if let Some(c) = self
            .changes
            .last_change_of(room_id, seq)
            .await
            .map_err(CoreError::unavailable("message lookup"))?
        {
            return Ok(Current {
                state: c.change.message,
                prev_seq: Some(c.change.prev_seq),
            });
        }
        match self
            .changes
            .message_at(room_id, seq)
            .await
            .map_err(CoreError::unavailable("message lookup"))?
        {
            Some(state) if state.room_id == room_id => Ok(Current {
                state,
                prev_seq: None,
            }),
            _ => Err(ApiError::not_found("no such message in this room").into()),
        }
    }

    /// The message's `prev_seq`: carried by its change events, else looked up once.
    async fn prev_seq_of(
        &self,
        room_id: &str,
        seq: u64,
        known: Option<u64>,
    ) -> Result<u64, CoreError> {
        match known {
            Some(prev) => Ok(prev),
            None => self
                .stream
                .newest_up_to(room_id, seq.saturating_sub(1))
                .await
                .map_err(CoreError::unavailable("message position lookup")),
        }
    }

    /// The user ids of the room's members that `body` mentions (`@username`, the contract's
    /// rule in [`dyschat_protocol::mentions`]), the sender never, at most 50: one request to
    /// the rooms service, none for a body without a candidate.
    pub(crate) async fn mentions_of(
        &self,
        room_id: &str,
        body: &str,
        sender_id: &str,
    ) -> Result<Vec<String>, CoreError> {
        let names = mentions::candidates(body);
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = self.rooms.mentions(room_id, names).await?;
        ids.retain(|id| id != sender_id);
        ids.truncate(mentions::MAX_MENTIONS);
        Ok(ids)
    }

    /// The room's newest message `seq` and newest change `event_seq` (0 for none), both read
    /// from the stream leader: the newer of the two is the room's `last_event_seq`.
    pub(crate) async fn positions(&self, room_id: &str) -> Result<(u64, u64), PortError> {
        let (last_seq, last_change) = tokio::try_join!(
            self.stream.last_seq(room_id),
            self.changes.last_change(room_id)
        )?;
        Ok((last_seq, last_change.map_or(0, |c| c.event_seq)))
    }

    /// The message a reply names: an undeleted message of the room, else 400.
    pub(crate) async fn reply_parent(
        &self,
        room_id: &str,
        seq: u64,
    ) -> Result<StoredMessage, CoreError> {
        match self.current(room_id, seq).await {
            Ok(c) if !c.state.deleted => Ok(c.state),
            Ok(_) => Err(CoreError::Invalid("reply_to names a deleted message")),
            Err(CoreError::Api(e)) if e.code == dyschat_protocol::ErrorCode::NotFound => {
                Err(CoreError::Invalid("reply_to names no message of this room"))
            }
            Err(e) => Err(e),
        }
    }
}
