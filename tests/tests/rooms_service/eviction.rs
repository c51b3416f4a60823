//! "From the moment a kick, ban or deletion is answered, the user's sockets receive no further
//! frame of that room": rooms sends the eviction to every agent and answers only once each live
//! agent (an entry of `dyschat_agents`) replied, or once the bound passed. A test subscriber
//! plays the agents.

use super::*;

use std::sync::Arc;
use std::time::Instant;

use dyschat_protocol::wire::{Eviction, EvictionAck, EvictionCause, Role};
use tokio::sync::Mutex as AsyncMutex;

/// The bound the tests configure, short so a test that waits it out stays quick.
const BOUND_MS: u64 = 1500;

/// Agents played by one subscriber: each listed agent replies after its delay (`None`: never).
struct FakeAgents {
    seen: Arc<AsyncMutex<Vec<(Eviction, Instant)>>>,
    replied: Arc<AsyncMutex<Vec<(String, Instant)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAgents {
    async fn start(h: &Harness, agents: &[(&str, Option<u64>)]) -> FakeAgents {
        let js = async_nats::jetstream::new(h.client.clone());
        let registry = topology::ensure_bucket(&js, topology::agents_bucket(&Default::default()))
            .await
            .unwrap();
        for (id, _) in agents {
            registry.put(*id, "1".into()).await.unwrap();
        }
        let mut evictions = h
            .client
            .subscribe(subjects::EVICTION_WILDCARD)
            .await
            .unwrap();
        h.client.flush().await.unwrap();
        let seen = Arc::new(AsyncMutex::new(Vec::new()));
        let replied = Arc::new(AsyncMutex::new(Vec::new()));
        let agents: Vec<(String, Option<u64>)> =
            agents.iter().map(|(id, d)| (id.to_string(), *d)).collect();
        let client = h.client.clone();
        let task = {
            let (seen, replied) = (seen.clone(), replied.clone());
            tokio::spawn(async move {
                while let Some(message) = evictions.next().await {
                    let eviction: Eviction = serde_json::from_slice(&message.payload).unwrap();
                    assert_eq!(
                        subjects::parse_eviction(&message.subject),
                        Some(eviction.room_id.as_str())
                    );
                    seen.lock().await.push((eviction.clone(), Instant::now()));
                    let Some(reply) = message.reply else { continue };
                    for (agent, delay) in &agents {
                        let Some(delay) = delay else { continue };
                        let (client, reply, replied) =
                            (client.clone(), reply.clone(), replied.clone());
                        let ack = EvictionAck {
                            eviction_id: eviction.eviction_id.clone(),
                            agent_id: agent.clone(),
                        };
                        let delay = Duration::from_millis(*delay);
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            replied
                                .lock()
                                .await
                                .push((ack.agent_id.clone(), Instant::now()));
                            let payload = serde_json::to_vec(&ack).unwrap();
                            client.publish(reply, payload.into()).await.unwrap();
                            client.flush().await.unwrap();
                        });
                    }
                }
            })
        };
        FakeAgents {
            seen,
            replied,
            task,
        }
    }

    async fn evictions(&self) -> Vec<Eviction> {
        self.seen
            .lock()
            .await
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    async fn last_reply(&self) -> Instant {
        let replied = self.replied.lock().await;
        replied.iter().map(|(_, at)| *at).max().expect("a reply")
    }
}

impl Drop for FakeAgents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Harness {
    let bound = BOUND_MS.to_string();
    Harness::start_with(1, &[("DYSCHAT_ROOMS_EVICT_TIMEOUT_MS", bound.as_str())]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_is_answered_only_after_every_live_agent_confirmed() {
    let h = start().await;
    let agents = FakeAgents::start(&h, &[("agentA", Some(100)), ("agentB", Some(400))]).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();

    let kicked = h.kick(&room_id, "owner", "bob", "off topic").await.unwrap();
    let answered = Instant::now();
    assert_eq!(
        (
            kicked.room_id.as_str(),
            kicked.user_id.as_str(),
            kicked.joined
        ),
        (room_id.as_str(), "bob", false)
    );
    assert!(
        answered >= agents.last_reply().await,
        "answered before the slower agent replied"
    );

    let evictions = agents.evictions().await;
    assert_eq!(
        evictions.len(),
        1,
        "one request reaches every agent: {evictions:?}"
    );
    let e = &evictions[0];
    assert_eq!(e.room_id, room_id);
    assert_eq!(e.user_id.as_deref(), Some("bob"));
    assert_eq!(e.cause, EvictionCause::Kicked);
    assert_eq!((e.by.as_str(), e.reason.as_str()), ("owner", "off topic"));
    // What the agents cache: the pair's revision and standing after the kick.
    let access = h.access(&room_id, "bob").await.unwrap();
    assert_eq!(e.revision, access.revision);
    assert_eq!(e.standing, Some(access.standing));
    assert_eq!(access.role, None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_delays_the_answer_by_the_bound_only() {
    let h = start().await;
    let agents = FakeAgents::start(&h, &[("agentA", Some(50)), ("silent", None)]).await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();

    let started = Instant::now();
    h.ban(&room_id, "owner", "bob", "").await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(BOUND_MS - 50), "{took:?}");
    assert!(took < Duration::from_millis(BOUND_MS + 2000), "{took:?}");
    let evictions = agents.evictions().await;
    assert_eq!(evictions.len(), 1);
    assert_eq!(evictions[0].cause, EvictionCause::Banned);
    assert!(evictions[0].standing.is_some_and(|s| s.banned));
    // The ban holds all the same.
    assert_eq!(code(h.join(&room_id, "bob").await), ErrorCode::Forbidden);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_live_agents_are_waited_for() {
    let h = start().await;
    let agents = FakeAgents::start(&h, &[("agentA", Some(20)), ("gone", None)]).await;
    // The silent agent stopped: its entry is removed (a marker), so nobody waits for it.
    let js = async_nats::jetstream::new(h.client.clone());
    let registry = js
        .get_key_value(dyschat_protocol::layout::AGENTS_BUCKET)
        .await
        .unwrap();
    registry.delete("gone").await.unwrap();
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();

    let started = Instant::now();
    h.kick(&room_id, "owner", "bob", "").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(BOUND_MS),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(agents.evictions().await.len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_evicts_every_socket_of_the_room() {
    let h = start().await;
    let agents = FakeAgents::start(&h, &[("agentA", Some(10)), ("agentB", Some(200))]).await;
    let room_id = h.create("owner", "Doomed").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();

    let deleted = h.delete(&room_id, "owner").await.unwrap();
    assert!(Instant::now() >= agents.last_reply().await);
    assert_eq!(
        (deleted.room_id.as_str(), deleted.deleted),
        (room_id.as_str(), true)
    );
    let evictions = agents.evictions().await;
    assert_eq!(evictions.len(), 1);
    let e = &evictions[0];
    assert_eq!(
        (e.user_id.as_deref(), e.cause),
        (None, EvictionCause::Deleted)
    );
    assert_eq!(e.by, "owner");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_confirm_when_no_agent_runs_or_nobody_is_removed() {
    let h = start().await;
    let room_id = h.create("owner", "General").await.unwrap().room_id;
    h.join(&room_id, "bob").await.unwrap();
    h.join(&room_id, "carol").await.unwrap();
    let started = Instant::now();
    h.kick(&room_id, "owner", "bob", "").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(BOUND_MS));

    let agents = FakeAgents::start(&h, &[("agentA", None)]).await;
    // Kicking a non-member, or a role change, evicts nobody.
    h.kick(&room_id, "owner", "bob", "").await.unwrap();
    h.set_role(&room_id, "owner", "carol", Role::Moderator)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(agents.evictions().await.is_empty());
    h.stop().await;
}
