//! NATS wiring: connect, ensure the users, revoked and public directory buckets, expose
//! `register`, `login`, `logout`, `search`, `user` and `users_by_name` as endpoints of the `dyschat-auth` micro
//! service (discoverable through `$SRV`), backfill the directory in the background, and drain
//! on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use dyschat_protocol::wire::{
    Credentials, LogoutRequest, UserRequest, UserSearchRequest, UsersByNameRequest,
};
use dyschat_protocol::{subjects::auth, ApiError};
use dyschat_runtime::config::TopologySettings;
use dyschat_runtime::service::{self, Endpoints};
use dyschat_runtime::{connect, topology};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::directory::{self, Directory};
use crate::error::Error;
use crate::handlers::{self, TokenSettings};
use crate::logout::Revoker;
use crate::password::Hasher;
use crate::store::UserStore;
use crate::throttle::{self, LoginThrottle};

/// Runs the auth service until `shutdown` is cancelled, then stops taking requests, lets the
/// ones in flight finish (at most `config.common.drain_timeout()`) and drains the connection.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let (client, reconnects) = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        client = connect::nats_with_reconnects(&config.common, &config.nats, auth::SERVICE) => client?,
    };
    let js = jetstream::new(client.clone());
    let (users_kv, usernames_kv, ids_kv, revoked_kv) =
        ensure_buckets(&js, &config.topology).await?;
    // A nats-server replaced by an empty one has none of the buckets: ensure them again after
    // every reconnection (the handles above stay valid, they are names).
    let (keep_js, keep_topology) = (js.clone(), config.topology.clone());
    topology::keep(reconnects, shutdown.clone(), move || {
        let (js, topology) = (keep_js.clone(), keep_topology.clone());
        async move { ensure_buckets(&js, &topology).await.map(drop) }
    });
    let users = UserStore::new(users_kv);
    let directory = Directory::new(usernames_kv, ids_kv, client.clone());
    let revoker = Revoker::new(revoked_kv, config.auth.auth_secret.clone());
    let tokens = Arc::new(TokenSettings {
        secret: config.auth.auth_secret.clone(),
        ttl_secs: config.auth.token_ttl_secs,
    });

    let concurrency = match config.auth.auth_hash_concurrency {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let hasher = Arc::new(Hasher::new(
        concurrency,
        Duration::from_millis(config.auth.auth_hash_wait_ms),
    ));
    let register = {
        let users = users.clone();
        let hasher = hasher.clone();
        let directory = directory.clone();
        move |creds: Credentials| {
            let users = users.clone();
            let hasher = hasher.clone();
            let directory = directory.clone();
            async move {
                handlers::register(&users, &directory, &hasher, creds)
                    .await
                    .map_err(ApiError::from)
            }
        }
    };
    let search = {
        let directory = directory.clone();
        move |req: UserSearchRequest| {
            let directory = directory.clone();
            async move {
                handlers::search(&directory, req)
                    .await
                    .map_err(ApiError::from)
            }
        }
    };
    let user = {
        let directory = directory.clone();
        move |req: UserRequest| {
            let directory = directory.clone();
            async move {
                handlers::user(&directory, req)
                    .await
                    .map_err(ApiError::from)
            }
        }
    };
    let users_by_name = {
        let directory = directory.clone();
        move |req: UsersByNameRequest| {
            let directory = directory.clone();
            async move {
                handlers::users_by_name(&directory, req)
                    .await
                    .map_err(ApiError::from)
            }
        }
    };
    let throttle = Arc::new(LoginThrottle::new(config.auth.login_attempts_per_min));
    let login = move |creds: Credentials| {
        let users = users.clone();
        let tokens = tokens.clone();
        let throttle = throttle.clone();
        let hasher = hasher.clone();
        async move {
            let now = chrono::Utc::now().timestamp();
            throttle::login(
                &users,
                &tokens,
                &hasher,
                &throttle,
                creds,
                now,
                Instant::now(),
            )
            .await
            .map_err(ApiError::from)
        }
    };
    let logout = move |request: LogoutRequest| {
        let revoker = revoker.clone();
        async move {
            revoker
                .logout(request, chrono::Utc::now().timestamp())
                .await
        }
    };
    let endpoints = Endpoints::new()
        .route(auth::REGISTER, register)
        .route(auth::LOGIN, login)
        .route(auth::LOGOUT, logout)
        .route(auth::SEARCH, search)
        .route(auth::USER, user)
        .route(auth::USERS_BY_NAME, users_by_name);
    let tracker = TaskTracker::new();
    tracker.spawn(backfill(directory, client.clone(), shutdown.clone()));
    let identity = service::Identity {
        name: auth::SERVICE,
        description: "DYSCHAT accounts: register, login, logout and the user directory",
        group: auth::GROUP,
        metrics_addr: &config.auth.auth_metrics_addr,
    };
    let drain = config.common.drain_timeout();
    service::run(client, identity, endpoints, tracker, drain, &shutdown).await?;
    Ok(())
}

/// The users, usernames, user-ids and revoked buckets, created or checked at once.
async fn ensure_buckets(
    js: &jetstream::Context,
    config: &TopologySettings,
) -> Result<(kv::Store, kv::Store, kv::Store, kv::Store), topology::TopologyError> {
    tokio::try_join!(
        topology::ensure_bucket(js, topology::users_bucket(config)),
        topology::ensure_bucket(js, topology::usernames_bucket(config)),
        topology::ensure_bucket(js, topology::user_ids_bucket(config)),
        topology::ensure_bucket(js, topology::revoked_bucket(config)),
    )
}

/// Lists the users registered before the directory existed (or whose listing failed), in the
/// background: the service answers meanwhile, and a shutdown stops it.
async fn backfill(directory: Directory, client: async_nats::Client, shutdown: CancellationToken) {
    let run = tokio::time::timeout(directory::BACKFILL_BOUND, directory.backfill(&client));
    tokio::select! {
        _ = shutdown.cancelled() => {}
        done = run => match done {
            Ok(Ok(0)) => tracing::debug!("user directory complete"),
            Ok(Ok(added)) => tracing::info!(added, "users added to the directory"),
            Ok(Err(e)) => tracing::warn!(error = %e, "user directory backfill failed"),
            Err(_) => tracing::warn!("user directory backfill ran out of time"),
        },
    }
}
