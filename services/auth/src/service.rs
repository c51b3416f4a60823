//! NATS wiring: connect, ensure the users and revoked buckets, expose `register`, `login` and
//! `logout` as endpoints of the `dyschat-auth` micro service (discoverable through `$SRV`), and
//! drain on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use dyschat_protocol::wire::{Credentials, LogoutRequest};
use dyschat_protocol::{subjects::auth, ApiError};
use dyschat_runtime::service::{self, Endpoints};
use dyschat_runtime::{connect, topology};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Error;
use crate::handlers::{self, TokenSettings};
use crate::logout::Revoker;
use crate::password::Hasher;
use crate::store::UserStore;
use crate::throttle::{self, LoginThrottle};

/// Runs the auth service until `shutdown` is cancelled, then stops taking requests, lets the
/// ones in flight finish (at most `config.common.drain_timeout()`) and drains the connection.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let client = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        client = connect::nats(&config.common, &config.nats, auth::SERVICE) => client?,
    };
    let js = jetstream::new(client.clone());
    let users = UserStore::new(
        topology::ensure_bucket(&js, topology::users_bucket(&config.topology)).await?,
    );
    let revoker = Revoker::new(
        topology::ensure_bucket(&js, topology::revoked_bucket(&config.topology)).await?,
        config.auth.auth_secret.clone(),
    );
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
        move |creds: Credentials| {
            let users = users.clone();
            let hasher = hasher.clone();
            async move {
                handlers::register(&users, &hasher, creds)
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
        .route(auth::LOGOUT, logout);
    let identity = service::Identity {
        name: auth::SERVICE,
        description: "DYSCHAT accounts: register, login and logout",
        group: auth::GROUP,
        metrics_addr: &config.auth.auth_metrics_addr,
    };
    let drain = config.common.drain_timeout();
    service::run(client, identity, endpoints, drain, &shutdown).await?;
    Ok(())
}
