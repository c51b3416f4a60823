//! In-memory fakes of the [ports](crate::ports), for the core's, the hub's and the session's
//! unit tests, and a fixture that builds a [`Core`] over them.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AgentSettings;
use crate::core::{Core, User};
use crate::ports::Ports;
use crate::socket::OutFrame;

mod bus;
mod changes;
mod feed;
mod files;
mod history;
mod read;
mod revoked;
mod search;
mod services;
mod stream;

pub(crate) use bus::FakeBus;
pub(crate) use feed::FakeFeed;
pub(crate) use files::FakeFiles;
pub(crate) use history::FakeHistory;
pub(crate) use read::{FakeReadMarkers, FakeUserEvents};
pub(crate) use revoked::FakeRevoked;
pub(crate) use search::FakeSearch;
pub(crate) use services::{FakePresence, FakeRates, FakeRooms};
pub(crate) use stream::{message as stream_message, FakeStream};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A core over fakes, with handles on each fake.
pub(crate) struct Fixture {
    pub core: Arc<Core>,
    pub stream: Arc<FakeStream>,
    pub bus: Arc<FakeBus>,
    pub rooms: Arc<FakeRooms>,
    pub presence: Arc<FakePresence>,
    pub history: Arc<FakeHistory>,
    pub revoked: Arc<FakeRevoked>,
    pub read_markers: Arc<FakeReadMarkers>,
    pub user_events: Arc<FakeUserEvents>,
    pub feed: Arc<FakeFeed>,
    pub files: Arc<FakeFiles>,
    pub search: Arc<FakeSearch>,
    pub shutdown: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The settings of a fixture: small queues and limits, so tests reach them.
pub(crate) fn settings() -> AgentSettings {
    AgentSettings {
        socket_queue: 64,
        recovery_limit: 100,
        send_rate_per_sec: 1000.0,
        send_burst: 1000,
        ..AgentSettings::default()
    }
}

pub(crate) fn fixture() -> Fixture {
    fixture_with(settings())
}

pub(crate) fn fixture_with(settings: AgentSettings) -> Fixture {
    let bus = Arc::new(FakeBus::default());
    let stream = Arc::new(FakeStream::new(bus.clone()));
    let rooms = Arc::new(FakeRooms::default());
    let presence = Arc::new(FakePresence::default());
    let history = Arc::new(FakeHistory::new(stream.clone()));
    let revoked = Arc::new(FakeRevoked::default());
    let read_markers = Arc::new(FakeReadMarkers::default());
    let user_events = Arc::new(FakeUserEvents::default());
    let feed = Arc::new(FakeFeed::default());
    let files = Arc::new(FakeFiles::default());
    let search = Arc::new(FakeSearch::default());
    let shutdown = CancellationToken::new();
    let ports = Ports {
        stream: stream.clone(),
        changes: stream.clone(),
        history: history.clone(),
        rooms: rooms.clone(),
        bus: bus.clone(),
        presence: presence.clone(),
        rates: Arc::new(FakeRates::default()),
        revoked: revoked.clone(),
        read_markers: read_markers.clone(),
        user_events: user_events.clone(),
        feed: feed.clone(),
        files: files.clone(),
        search: search.clone(),
    };
    let core = Core::new(
        &settings,
        std::time::Duration::from_secs(86_400),
        ports,
        TaskTracker::new(),
        shutdown.clone(),
    );
    Fixture {
        core,
        stream,
        bus,
        rooms,
        presence,
        history,
        revoked,
        read_markers,
        user_events,
        feed,
        files,
        search,
        shutdown,
    }
}

pub(crate) fn user(name: &str) -> User {
    User {
        user_id: format!("id-{name}"),
        username: name.to_string(),
        expires: i64::MAX,
        token_id: format!("token-{name}"),
    }
}

/// The frame's JSON.
pub(crate) fn json(frame: &OutFrame) -> serde_json::Value {
    serde_json::from_str(frame.text.as_str()).unwrap_or_default()
}

/// Waits (a bounded while) for the next frame of a socket.
pub(crate) async fn next_frame(rx: &mut tokio::sync::mpsc::Receiver<OutFrame>) -> OutFrame {
    tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("a frame within 30 s")
        .expect("the socket's queue is open")
}

/// The `seq`s of the next `n` message frames, skipping other frames.
pub(crate) async fn next_messages(
    rx: &mut tokio::sync::mpsc::Receiver<OutFrame>,
    n: usize,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let frame = next_frame(rx).await;
        if frame.kind == "message" {
            out.push(json(&frame));
        }
    }
    out
}

/// Checks that `messages` chain: each `prev_seq` is the previous `seq`, starting at `first_prev`.
pub(crate) fn assert_chain(messages: &[serde_json::Value], first_prev: u64) -> Vec<u64> {
    let mut prev = first_prev;
    messages
        .iter()
        .map(|m| {
            let seq = m["seq"].as_u64().expect("seq");
            assert_eq!(m["prev_seq"].as_u64(), Some(prev), "prev_seq of {m}");
            assert!(seq > prev);
            prev = seq;
            seq
        })
        .collect()
}
