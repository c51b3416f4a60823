//! Each user's feed (contract section 8), as the agents serve it: the page of notifications
//! (`GET /api/v1/me/notifications`), marking them read (`POST .../read`) and the unread count
//! of `GET /api/v1/me`. The rooms service makes the notifications (`services/rooms/src/feed`);
//! their live delivery is [`super::user_sockets`].
//!
//! Read state is one forward-only marker per user (the newest `notification_id` read), moved
//! by compare-and-set like read markers: a lost race re-reads and decides again, at most
//! [`MAX_ATTEMPTS`] times. A marker above the user's newest notification is refused (400), so
//! every notification made later is unread.

use dyschat_protocol::wire::{NotificationList, NotificationsRead};

use super::{Core, CoreError, User};

/// The default and largest page.
pub(crate) const DEFAULT_PAGE: usize = 50;
pub(crate) const MAX_PAGE: usize = 100;
/// Compare-and-set attempts before the answer is "busy, try again".
const MAX_ATTEMPTS: usize = 8;

/// A `notification_id` from a client: a positive decimal number.
fn parse_id(what: &'static str, id: &str) -> Result<u64, CoreError> {
    match id.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(CoreError::Invalid(what)),
    }
}

impl Core {
    /// The user's notifications, newest first: `limit` 1..=100 (default 50), older than the
    /// notification `before` when given.
    pub(crate) async fn notifications(
        &self,
        user: &User,
        before: Option<String>,
        limit: Option<i64>,
    ) -> Result<NotificationList, CoreError> {
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(n) if (1..=MAX_PAGE as i64).contains(&n) => n as usize,
            Some(_) => return Err(CoreError::Invalid("limit must be 1 to 100")),
        };
        let before = match before.filter(|b| !b.is_empty()) {
            Some(b) => Some(parse_id("before must be a notification_id", &b)?),
            None => None,
        };
        let (page, marker) = tokio::try_join!(
            async {
                self.feed
                    .page(&user.user_id, before, limit)
                    .await
                    .map_err(CoreError::unavailable("notifications"))
            },
            self.feed_marker(user),
        )?;
        let (entries, more) = page;
        let next_cursor = more
            .then(|| entries.last().map(|(id, _)| id.to_string()))
            .flatten();
        let notifications = entries
            .into_iter()
            .map(|(id, stored)| stored.view(id, marker))
            .collect();
        Ok(NotificationList {
            notifications,
            next_cursor,
        })
    }

    /// Marks the notification `up_to` and every older one read; answers the marker and how
    /// many stay unread.
    pub(crate) async fn read_notifications(
        &self,
        user: &User,
        up_to: &str,
    ) -> Result<NotificationsRead, CoreError> {
        let up_to = parse_id("up_to must be a notification_id", up_to)?;
        let mut newest_checked = false;
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .feed
                .marker(&user.user_id)
                .await
                .map_err(CoreError::unavailable("notification marker"))?;
            let (marker, expected) = current.map_or((0, None), |m| (m.seq, Some(m.revision)));
            if up_to <= marker {
                return self.feed_read_answer(user, marker).await;
            }
            if !newest_checked {
                let newest = self
                    .feed
                    .newest(&user.user_id)
                    .await
                    .map_err(CoreError::unavailable("notifications"))?;
                if up_to > newest {
                    return Err(CoreError::Invalid("up_to is above the newest notification"));
                }
                newest_checked = true;
            }
            if self
                .feed
                .put_marker_if(&user.user_id, up_to, expected)
                .await
                .map_err(CoreError::unavailable("notification marker"))?
            {
                return self.feed_read_answer(user, up_to).await;
            }
        }
        Err(CoreError::Busy(
            "the notification marker is changing, try again",
        ))
    }

    /// How many of the user's notifications are unread (exact: a count of the stream).
    pub(crate) async fn unread_notifications(&self, user: &User) -> Result<u64, CoreError> {
        let marker = self.feed_marker(user).await?;
        self.feed
            .count_after(&user.user_id, marker)
            .await
            .map_err(CoreError::unavailable("notifications"))
    }

    async fn feed_marker(&self, user: &User) -> Result<u64, CoreError> {
        Ok(self
            .feed
            .marker(&user.user_id)
            .await
            .map_err(CoreError::unavailable("notification marker"))?
            .map_or(0, |m| m.seq))
    }

    async fn feed_read_answer(
        &self,
        user: &User,
        marker: u64,
    ) -> Result<NotificationsRead, CoreError> {
        let unread = self
            .feed
            .count_after(&user.user_id, marker)
            .await
            .map_err(CoreError::unavailable("notifications"))?;
        Ok(NotificationsRead {
            up_to: marker.to_string(),
            unread_notifications: unread,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_numbers() {
        assert_eq!(parse_id("x", "12").ok(), Some(12));
        for bad in ["0", "-1", "a", "", "1.5"] {
            assert!(parse_id("x", bad).is_err(), "{bad}");
        }
    }
}
