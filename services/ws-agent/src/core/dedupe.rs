//! A retried send is a retry for the whole dedupe window (a day by default), at any rate.
//!
//! The stream itself only remembers ids for a couple of minutes (holding a day of them would
//! hold a day of ids in the server's memory). Beyond that, msg-writer keeps a retried-send index
//! in Redis (per room and day, see `dyschat_protocol::layout::history::dedupe_key`), so a
//! send with a `client_msg_id` first asks the index. When the index cannot vouch for the
//! answer — Redis away or untrusted, or the writer behind by more than the stream's own window —
//! the room's messages the index lacks are read from the stream (at most the recovery limit of
//! them; past that only the stream's window protects, which the metric
//! `dyschat_dedupe_scans_overflowed_total` counts).

use dyschat_protocol::layout::{self, history::day_of, history::dedupe_field};
use dyschat_runtime::metric;

use super::{Core, CoreError};
use crate::ports::ScanFrom;

/// Margin below the stream's own window within which an unindexed message still counts as
/// covered by it.
const MARGIN_MS: i64 = 20_000;

impl Core {
    /// The seq of an earlier send by `sender_id` of `client_msg_id` into `room_id` within the
    /// dedupe window, if there is one.
    pub(crate) async fn earlier_send(
        &self,
        room_id: &str,
        sender_id: &str,
        client_msg_id: &str,
    ) -> Result<Option<u64>, CoreError> {
        let field = dedupe_field(sender_id, client_msg_id);
        let now = chrono::Utc::now().timestamp_millis();
        let window = i64::try_from(self.dedupe_window.as_millis()).unwrap_or(i64::MAX);
        let horizon = now.saturating_sub(window);
        let days: Vec<u64> = (day_of(horizon)..=day_of(now)).collect();
        let from = match self.history.sent(room_id, &field, &days).await {
            Ok((Some(seq), _)) => return Ok(Some(seq)),
            Ok((None, state)) => {
                let position = self
                    .stream
                    .writer_position(room_id)
                    .await
                    .map_err(CoreError::unavailable("message store"))?;
                let indexed = state.complete && state.high_water >= position.floor;
                let stream_window =
                    i64::try_from(layout::STREAM_DEDUPE_WINDOW.as_millis()).unwrap_or(0);
                let covered = match position.behind_since_ms {
                    None => true,
                    Some(since) => now - since < stream_window - MARGIN_MS,
                };
                if indexed && covered {
                    return Ok(None);
                }
                if indexed {
                    ScanFrom::After(position.floor)
                } else {
                    ScanFrom::Since(horizon)
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "retried-send index unavailable; reading the stream");
                ScanFrom::Since(horizon)
            }
        };
        match self
            .stream
            .find_sent(room_id, from, sender_id, client_msg_id, self.recovery_limit)
            .await
            .map_err(CoreError::unavailable("message store"))?
        {
            Some(found) => Ok(found),
            None => {
                metrics::counter!(metric::DEDUPE_SCANS_OVERFLOWED_TOTAL).increment(1);
                Ok(None)
            }
        }
    }
}
