//! NATS wiring: connect, ensure the buckets and streams, expose the operations as one table of
//! endpoints of the `dyschat-rooms` micro service (discoverable through `$SRV`), and drain on
//! shutdown.

use std::future::Future;

use dyschat_protocol::subjects::rooms as api;
use dyschat_runtime::service::{self, Endpoints};
use dyschat_runtime::{connect, topology};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::endpoints::{Limits, Rooms};
use crate::error::{Error, RoomsError};
use crate::store::Store;

/// Runs the rooms service until `shutdown` is cancelled, then stops taking requests, lets the
/// ones in flight finish (at most `config.common.drain_timeout()`) and drains the connection.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let (client, reconnects) = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        client = connect::nats_with_reconnects(&config.common, &config.nats, api::SERVICE) => client?,
    };
    let store = Store::open(&client, &config.topology).await?;
    let files = crate::files::Files::open(&client, &config.topology).await?;
    // A restarted nats-server has lost the memory buckets (presence, agents), a replaced one
    // everything: ensure it all again after every reconnection.
    let (keep_client, keep_topology) = (client.clone(), config.topology.clone());
    topology::keep(reconnects, shutdown.clone(), move || {
        let (client, topology) = (keep_client.clone(), keep_topology.clone());
        async move {
            Store::open(&client, &topology).await?;
            crate::files::Files::open(&client, &topology).await?;
            for k in topology.message_streams().all() {
                crate::feed::ensure(&client, &topology, k).await?;
            }
            Ok(())
        }
    });
    let limits = Limits {
        max_owned: config.rooms.max_rooms_per_user,
        max_joined: config.rooms.max_rooms_joined,
        evict_timeout: config.rooms.evict_timeout(),
        list_scan: config.rooms.rooms_list_scan,
    };
    // Requests and the clean-ups of deleted rooms share one tracker, drained at shutdown.
    let tracker = TaskTracker::new();
    let rooms = Rooms::new(
        store,
        files.clone(),
        client.clone(),
        limits,
        tracker.clone(),
    );
    tracker.spawn(rooms.feed().run(config.topology.clone(), shutdown.clone()));
    tracker.spawn(files.run_sweep(config.rooms.file_sweep(), shutdown.clone()));

    let identity = service::Identity {
        name: api::SERVICE,
        description: "DYSCHAT rooms and their members",
        group: api::GROUP,
        metrics_addr: &config.rooms.rooms_metrics_addr,
    };
    let drain = config.common.drain_timeout();
    service::run(
        client,
        identity,
        endpoints(&rooms),
        tracker,
        drain,
        &shutdown,
    )
    .await?;
    Ok(())
}

/// Every endpoint of the service and the operation answering it.
fn endpoints(rooms: &Rooms) -> Endpoints {
    Endpoints::new()
        .route(api::CREATE, with(rooms, Rooms::create))
        .route(api::GET, with(rooms, Rooms::get))
        .route(api::LIST, with(rooms, Rooms::list))
        .route(api::JOIN, with(rooms, Rooms::join))
        .route(api::LEAVE, with(rooms, Rooms::leave))
        .route(api::MEMBERS, with(rooms, Rooms::members))
        .route(api::ACCESS, with(rooms, Rooms::access))
        .route(api::UPDATE, with(rooms, Rooms::update))
        .route(api::DELETE, with(rooms, Rooms::delete))
        .route(api::INVITE, with(rooms, Rooms::invite))
        .route(api::UNINVITE, with(rooms, Rooms::uninvite))
        .route(api::SET_ROLE, with(rooms, Rooms::set_role))
        .route(api::TRANSFER_OWNER, with(rooms, Rooms::transfer_owner))
        .route(api::KICK, with(rooms, Rooms::kick))
        .route(api::BAN, with(rooms, Rooms::ban))
        .route(api::UNBAN, with(rooms, Rooms::unban))
        .route(api::BANS, with(rooms, Rooms::bans))
        .route(api::MY_ROOMS, with(rooms, Rooms::my_rooms))
        .route(api::OPEN_DM, with(rooms, Rooms::open_dm))
        .route(api::BLOCK, with(rooms, Rooms::block))
        .route(api::UNBLOCK, with(rooms, Rooms::unblock))
        .route(api::BLOCKS, with(rooms, Rooms::blocks))
        .route(api::MENTIONS, with(rooms, Rooms::mentions))
}

/// An operation as a handler: each request gets its own handle on the service state.
fn with<Req, Resp, F, Fut>(rooms: &Rooms, operation: F) -> impl Fn(Req) -> Fut + Send + Sync
where
    F: Fn(Rooms, Req) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Resp, RoomsError>>,
{
    let rooms = rooms.clone();
    move |req| operation(rooms.clone(), req)
}
