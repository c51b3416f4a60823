//! Room size: a room of 100,000 members held against a room of 10 in the same run.
//!
//! Both rooms are filled through the rooms service (NATS requests, many in flight), then the
//! per-operation costs are measured side by side, the two rooms interleaved request by request so
//! that whatever else the machine does weighs on both alike: join (a fresh user), leave (that
//! user again), the membership check (`access` of an existing member), send (a WebSocket `send`
//! through an agent, to its `ack`) and a full members page-through (pages of 1,000). The contract
//! wants join, leave, check and send to cost the same in both (target: at most 2x at the median).
//!
//! Correctness is checked on the way, and is all the smoke run checks: exact member counts after
//! the fill and after the measured joins and leaves, every member on exactly one page, the last
//! page's `next_cursor` null.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::ensure;
use dyschat_protocol::subjects::rooms as api;
use dyschat_protocol::wire::{MemberList, MembersRequest};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::BenchUser;
use crate::env::Env;
use crate::fill::{member_id, Rooms, FILL_CONCURRENCY};
use crate::stats::{self, Latency};

mod report;
mod sends;

pub use report::{lines, targets};

#[derive(Debug, Clone)]
pub struct MembersSpec {
    pub tag: String,
    /// Members of the big and of the small room (owner included).
    pub big: usize,
    pub small: usize,
    /// Measured requests per room and operation.
    pub samples: usize,
    /// Members of each room connected (over every agent) and receiving while sends are measured.
    pub connected: usize,
}

/// One operation measured in both rooms.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub big: Latency,
    pub small: Latency,
    /// Big room / small room, at the median and at p99.
    pub p50_ratio: f64,
    pub p99_ratio: f64,
}

impl Compared {
    fn of(big: &Histogram<u64>, small: &Histogram<u64>) -> Compared {
        let (big, small) = (Latency::of(big), Latency::of(small));
        Compared {
            p50_ratio: big.p50_ms / small.p50_ms.max(1e-3),
            p99_ratio: big.p99_ms / small.p99_ms.max(1e-3),
            big,
            small,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PageThrough {
    pub pages: usize,
    /// The longest of the page-throughs of this room.
    pub total_secs: f64,
    pub per_page: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Members {
    pub big_members: usize,
    pub small_members: usize,
    pub samples: usize,
    pub fill_secs: f64,
    pub fill_joins_per_sec: f64,
    /// Sockets of members that received every measured message (both rooms together).
    pub connected_sockets: usize,
    pub join: Compared,
    pub leave: Compared,
    pub check: Compared,
    pub send: Compared,
    /// Time per members page (1,000 each; the small room's only page holds its 10).
    pub page: Compared,
    pub page_through_big: PageThrough,
    pub page_through_small: PageThrough,
}

pub async fn measure(
    env: &Env,
    spec: &MembersSpec,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<Members> {
    ensure!(spec.big >= 2 && spec.small >= 2 && spec.samples >= 1);
    let rooms = Rooms::connect(&env.nats_url).await?;
    let tag = &spec.tag;
    let owners = [
        BenchUser::mint(format!("{tag}ob"), format!("{tag}ob"))?,
        BenchUser::mint(format!("{tag}os"), format!("{tag}os"))?,
    ];
    let mut ids = Vec::new();
    for (owner, name) in owners.iter().zip(["big", "small"]) {
        ids.push(
            rooms
                .create(&owner.username, &format!("{tag} {name}"))
                .await?,
        );
    }
    let (big, small) = (ids[0].clone(), ids[1].clone());

    say(&format!(
        "members: filling a {}-member room and a {}-member room through the rooms service ({FILL_CONCURRENCY} joins in flight)",
        spec.big, spec.small
    ));
    let started = Instant::now();
    rooms.fill(&big, tag, 'b', spec.big, say).await?;
    rooms.fill(&small, tag, 's', spec.small, say).await?;
    let fill_secs = started.elapsed().as_secs_f64();
    let filled = (spec.big + spec.small - 2) as f64;
    say(&format!(
        "members: filled in {fill_secs:.1}s ({:.0} joins/s)",
        filled / fill_secs
    ));
    rooms.ensure_count(&big, spec.big).await?;
    rooms.ensure_count(&small, spec.small).await?;

    let pair = [(&big, 'b', spec.big), (&small, 's', spec.small)];
    let h = || [stats::histogram(), stats::histogram()];
    let (mut join, mut leave, mut check) = (h(), h(), h());
    for k in 0..spec.samples {
        // Alternate which room goes first, so neither always follows the other.
        for side in order(k) {
            let (room, r, _) = pair[side];
            let user = format!("{tag}j{r}{k}");
            let t = Instant::now();
            ensure!(
                rooms.membership(api::JOIN, room, &user).await?,
                "join changed nothing"
            );
            stats::record(&mut join[side], t.elapsed());
        }
        for side in order(k) {
            let (room, r, n) = pair[side];
            let user = member_id(tag, r, 1 + (k * 7919) % (n - 1));
            let t = Instant::now();
            let access = rooms.access(room, &user).await?;
            stats::record(&mut check[side], t.elapsed());
            ensure!(access.role.is_some(), "{user} is not a member of {room}");
        }
        for side in order(k) {
            let (room, r, _) = pair[side];
            let user = format!("{tag}j{r}{k}");
            let t = Instant::now();
            ensure!(
                rooms.membership(api::LEAVE, room, &user).await?,
                "leave changed nothing"
            );
            stats::record(&mut leave[side], t.elapsed());
        }
    }
    rooms.ensure_count(&big, spec.big).await?;
    rooms.ensure_count(&small, spec.small).await?;

    let mut pages = h();
    let (big_owner, small_owner) = (&owners[0].username, &owners[1].username);
    let page_through_big = page_through(&rooms, &big, big_owner, spec.big, &mut pages[0]).await?;
    // The small room is one page: page through it as often as the big room has pages, so both
    // page latencies have as many samples.
    let mut page_through_small =
        page_through(&rooms, &small, small_owner, spec.small, &mut pages[1]).await?;
    for _ in 1..page_through_big.pages {
        let again = page_through(&rooms, &small, small_owner, spec.small, &mut pages[1]).await?;
        page_through_small.total_secs = page_through_small.total_secs.max(again.total_secs);
        page_through_small.per_page = again.per_page;
    }
    say(&format!(
        "members: page-through {} pages in {:.2}s (big), {} in {:.3}s (small)",
        page_through_big.pages,
        page_through_big.total_secs,
        page_through_small.pages,
        page_through_small.total_secs
    ));

    let (send, connected_sockets) = sends::measure(env, &owners, [&big, &small], spec).await?;
    Ok(Members {
        big_members: spec.big,
        small_members: spec.small,
        samples: spec.samples,
        fill_secs,
        fill_joins_per_sec: filled / fill_secs,
        connected_sockets,
        join: Compared::of(&join[0], &join[1]),
        leave: Compared::of(&leave[0], &leave[1]),
        check: Compared::of(&check[0], &check[1]),
        send: Compared::of(&send[0], &send[1]),
        page: Compared::of(&pages[0], &pages[1]),
        page_through_big,
        page_through_small,
    })
}

pub(super) fn order(k: usize) -> [usize; 2] {
    if k % 2 == 0 {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// Every page of the room's members, read by the member `reader`; fails unless each member is
/// listed exactly once and the last page says so.
async fn page_through(
    rooms: &Rooms,
    room: &str,
    reader: &str,
    expected: usize,
    per_page: &mut Histogram<u64>,
) -> anyhow::Result<PageThrough> {
    let started = Instant::now();
    let mut seen = HashSet::with_capacity(expected);
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let req = MembersRequest {
            room_id: room.into(),
            limit: MembersRequest::MAX_LIMIT,
            cursor: cursor.take(),
            user_id: reader.into(),
        };
        let t = Instant::now();
        let page: MemberList = rooms.call(api::MEMBERS, &req).await?;
        stats::record(per_page, t.elapsed());
        pages += 1;
        for m in page.members {
            ensure!(seen.insert(m.user_id.clone()), "{} listed twice", m.user_id);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        ensure!(pages <= expected / 100 + 10, "paging does not end");
    }
    ensure!(
        seen.len() == expected,
        "page-through listed {} members, expected {expected}",
        seen.len()
    );
    Ok(PageThrough {
        pages,
        total_secs: started.elapsed().as_secs_f64(),
        per_page: Latency::of(per_page),
    })
}
