//! What is left of a deleted room after the delete was answered: each member's index entry and
//! count of rooms joined (a page of members at a time, a bounded number of writes in flight),
//! then its notifications and files, every member record, invitation and ban of the room at once, its
//! member count, and last the room record itself.
//!
//! It runs on the service's task tracker, so a shutdown waits for it (up to the drain timeout).
//! Until it is done, the record stays as a tombstone (`deleted`), so the room answers
//! `not_found`; what a clean-up cut short leaves behind (index entries, which readers check
//! against member records, and counts of rooms joined one too high) is logged.

use std::time::Duration;

use dyschat_protocol::subjects;
use futures::{StreamExt, TryStreamExt};

use super::Rooms;
use crate::error::RoomsError;
use crate::paging::Cursor;

/// Members read per page of the clean-up.
const PAGE: usize = 1000;
/// Writes in flight at once.
const PARALLEL: usize = 32;
/// How long a clean-up may take before it gives up (and logs what it left).
const BOUND: Duration = Duration::from_secs(600);

impl Rooms {
    /// Runs the clean-up of `room_id` after the answer.
    pub(super) fn clean_up_later(&self, room_id: String) {
        let rooms = self.clone();
        self.background.spawn(async move {
            match tokio::time::timeout(BOUND, rooms.clean_up(&room_id)).await {
                Ok(Ok(members)) => {
                    tracing::info!(%room_id, members, "deleted room cleaned up");
                }
                Ok(Err(e)) => {
                    tracing::warn!(%room_id, error = %e, "deleted room's clean-up failed; its tombstone stays");
                }
                Err(_) => {
                    tracing::warn!(%room_id, bound_s = BOUND.as_secs(), "deleted room's clean-up timed out; its tombstone stays");
                }
            }
        });
    }

    /// The clean-up itself; returns how many members it went through.
    async fn clean_up(&self, room_id: &str) -> Result<usize, RoomsError> {
        let mut cursor = Cursor::default();
        let mut done = 0;
        loop {
            let (members, next) = self
                .store
                .member_page(room_id, cursor, PAGE, u64::MAX)
                .await?;
            done += members.len();
            futures::stream::iter(members)
                .map(|member| async move {
                    let user_id = member.user_id;
                    let id = format!("gone:{room_id}:{user_id}");
                    let (joined, index) = tokio::join!(
                        self.store.add(subjects::joined_count(&user_id), -1, &id),
                        self.store.index_forget(&user_id, room_id),
                    );
                    joined?;
                    index?;
                    Ok::<_, RoomsError>(())
                })
                .buffer_unordered(PARALLEL)
                .try_collect::<Vec<()>>()
                .await?;
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        // Its notifications say what its messages said.
        if let Err(e) = self.feed.erase_room(room_id).await {
            tracing::warn!(%room_id, error = %e, "erasing a deleted room's notifications failed");
        }
        // Its files: downloads are refused already (the room answers not_found).
        let files = self.files.remove_room(room_id).await?;
        tracing::info!(%room_id, files, "deleted room's files removed");
        self.store.purge_room_keys(room_id).await?;
        self.store
            .forget_counter(subjects::member_count(room_id))
            .await?;
        self.store.remove_room(room_id).await?;
        Ok(done)
    }
}
