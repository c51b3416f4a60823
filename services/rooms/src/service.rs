//! NATS wiring: connect, ensure the buckets, expose the six operations as endpoints of the
//! `dyschat-rooms` micro service (discoverable through `$SRV`), and drain on shutdown.

use std::future::Future;

use async_nats::jetstream;
use dyschat_protocol::{subjects::rooms as api, ApiError};
use dyschat_runtime::{connect, prometheus, rpc, service, topology};
use futures::future::{BoxFuture, FutureExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::{Error, RoomsError};
use crate::handlers::Rooms;
use crate::store::RoomStore;

/// Runs the rooms service until `shutdown` is cancelled, then stops taking requests, lets the
/// ones in flight finish (at most `config.common.drain_timeout()`) and drains the connection.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let client = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        client = connect::nats(&config.common, &config.nats, api::SERVICE) => client?,
    };
    let js = jetstream::new(client.clone());
    let store = RoomStore::new(
        topology::ensure_bucket(&js, topology::rooms_bucket(&config.topology)).await?,
        topology::ensure_bucket(&js, topology::members_bucket(&config.topology)).await?,
        // Written by ws-agents; ensured here too so the services may start in any order.
        topology::ensure_bucket(&js, topology::presence_bucket(&config.topology)).await?,
    );
    let rooms = Rooms::new(store, client.clone());

    let service = service::start(&client, api::SERVICE, "DYSCHAT rooms and their members").await?;
    let group = service.group(api::GROUP);
    let create = service::endpoint(&group, api::CREATE).await?;
    let get = service::endpoint(&group, api::GET).await?;
    let list = service::endpoint(&group, api::LIST).await?;
    let join = service::endpoint(&group, api::JOIN).await?;
    let leave = service::endpoint(&group, api::LEAVE).await?;
    let members = service::endpoint(&group, api::MEMBERS).await?;
    let access = service::endpoint(&group, api::ACCESS).await?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "dyschat-rooms serving");

    let metrics_server = prometheus::spawn_for(&config.rooms.rooms_metrics_addr, &shutdown);
    let tracker = TaskTracker::new();
    let (t, s) = (&tracker, &shutdown);
    tokio::join!(
        rpc::serve(
            create,
            t.clone(),
            s.clone(),
            bind(&rooms, |r, q| async move { r.create(q).await })
        ),
        rpc::serve(
            get,
            t.clone(),
            s.clone(),
            bind(&rooms, |r, q| async move { r.get(q).await })
        ),
        rpc::serve(
            list,
            t.clone(),
            s.clone(),
            bind(&rooms, |r, q| async move { r.list(q).await })
        ),
        rpc::serve(
            join,
            t.clone(),
            s.clone(),
            bind(&rooms, |r, q| async move { r.join(q).await })
        ),
        rpc::serve(
            leave,
            t.clone(),
            s.clone(),
            bind(&rooms, |r, q| async move { r.leave(q).await })
        ),
        rpc::serve(
            members,
            t.clone(),
            s.clone(),
            bind(&rooms, |r, q| async move { r.members(q).await })
        ),
        rpc::serve(
            access,
            t.clone(),
            s.clone(),
            bind(&rooms, |r, q| async move { r.access(q).await })
        ),
    );

    service::finish(
        "dyschat-rooms",
        client,
        service,
        tracker,
        config.common.drain_timeout(),
        metrics_server,
    )
    .await;
    Ok(())
}

/// Adapts a handler method to what [`rpc::serve`] expects: an owned request in, a `'static`
/// future out, the typed error mapped to the contract's [`ApiError`] in this one place.
fn bind<Req, Resp, F, Fut>(
    rooms: &Rooms,
    handler: F,
) -> impl Fn(Req) -> BoxFuture<'static, Result<Resp, ApiError>> + Clone + Send + Sync + 'static
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Rooms, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, RoomsError>> + Send + 'static,
{
    let rooms = rooms.clone();
    move |req| {
        handler(rooms.clone(), req)
            .map(|result| result.map_err(ApiError::from))
            .boxed()
    }
}
