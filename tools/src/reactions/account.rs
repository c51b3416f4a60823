//! The storm's accounting: every acknowledged reaction against the message's final state as
//! history returns it, every listener against that state; and each listener against the
//! acknowledged messages.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;

use super::listen::{self, Listener};
use super::{lock, Kind, PhaseFigures, Reactions, Shared, PAIR_ACKED};

/// The target message as history returns it: its (emoji, user) pairs and its size.
pub(super) struct Final {
    pub pairs: Vec<(String, String)>,
    /// Reactions whose count is not the number of their users.
    miscounted: u64,
    bytes: u64,
}

pub(super) async fn final_state(
    base: &str,
    token: &str,
    room: &str,
    seq: u64,
) -> anyhow::Result<Final> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!(
        "{base}/api/v1/rooms/{room}/messages?after={}&limit=1",
        seq - 1
    );
    let resp = http.get(url).bearer_auth(token).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "reading the final state: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let page: dyschat_protocol::wire::MessagePage = serde_json::from_slice(&body)?;
    let Some(m) = page.messages.into_iter().find(|m| m.seq == seq) else {
        bail!("history has no message {seq}");
    };
    let bytes = serde_json::to_vec(&m).map_or(0, |b| b.len() as u64);
    let mut pairs = Vec::new();
    let mut miscounted = 0;
    for r in m.reactions {
        if r.count as usize != r.user_ids.len() {
            miscounted += 1;
        }
        pairs.extend(r.user_ids.into_iter().map(|u| (r.emoji.clone(), u)));
    }
    Ok(Final {
        pairs,
        miscounted,
        bytes,
    })
}

/// The storm's accounting: acknowledged reactions against the final state, listeners against
/// both.
pub(super) fn account(
    shared: &Shared,
    listeners: &[Arc<Mutex<Listener>>],
    fin: &Final,
    storm: &mut PhaseFigures,
) -> Reactions {
    let mut r = Reactions {
        final_reactions: fin.pairs.len() as u64,
        final_state_bytes: fin.bytes,
        foreign: fin.miscounted,
        ..Default::default()
    };
    let mut present = vec![false; shared.status.len()];
    for (emoji, user) in &fin.pairs {
        let pair = shared
            .emoji_index
            .get(emoji)
            .and_then(|&e| shared.pair_of(user, e));
        match pair.and_then(|p| Some((p, present.get_mut(p)?))) {
            Some((p, seen)) if !*seen => {
                *seen = true;
                if shared.status[p].load(Ordering::Relaxed) != PAIR_ACKED {
                    storm.applied_unacked += 1;
                }
            }
            _ => r.foreign += 1,
        }
    }
    storm.lost = shared
        .status
        .iter()
        .zip(&present)
        .filter(|(s, &p)| s.load(Ordering::Relaxed) == PAIR_ACKED && !p)
        .count() as u64;
    let total = r.final_reactions;
    for s in listeners {
        let s = lock(s);
        storm.listeners_short += total.saturating_sub(s.changes);
        r.odd_frames += s.odd;
        let last = s
            .last_change
            .as_ref()
            .and_then(|t| listen::state_of(t))
            .map(|st| st.reactions.iter().map(|x| u64::from(x.count)).sum::<u64>());
        if last != Some(total) {
            r.stale_listeners += 1;
        }
    }
    storm.complete &= storm.listeners_short == 0;
    r
}

/// The messages' accounting: each listener holds exactly the acknowledged messages.
pub(super) fn account_messages(
    shared: &Shared,
    listeners: &[Arc<Mutex<Listener>>],
    m: &mut PhaseFigures,
) {
    let t = shared.tally(Kind::Send);
    let (acked, sum) = (
        t.acked.load(Ordering::Relaxed),
        t.seq_sum.load(Ordering::Relaxed),
    );
    for s in listeners {
        let s = lock(s);
        if s.messages < acked {
            m.lost += acked - s.messages;
        } else if s.messages == acked && s.seq_sum != sum {
            m.lost += 1;
        }
        m.listeners_short += acked.saturating_sub(s.messages);
        m.applied_unacked = m.applied_unacked.max(s.messages.saturating_sub(acked));
    }
}
