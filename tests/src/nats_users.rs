//! The test servers run with the mesh's real NATS users and permissions
//! (`dyschat_protocol::permissions`), so every integration test also checks that each service
//! needs nothing beyond its grant: the server refuses the rest and logs a violation, which
//! [`violations`] finds and [`crate::mesh::Mesh::stop_all`] reports.
//!
//! Clients that give no credentials (the tests' own, a bench tool) log in as an unrestricted test
//! user (`no_auth_user`), which no production configuration has.

use dyschat_protocol::permissions::{self, Grant, Password, Service};
use dyschat_runtime::Env;

/// The unrestricted user of credential-less clients.
pub const ADMIN_USER: &str = "dyschat-tests-admin";

/// The password of `service`'s user on a test server.
pub fn password(service: Service) -> String {
    format!("test-password-{}", service.user())
}

/// The nats-server configuration of a secured test server (ports and store come as flags).
pub fn config() -> String {
    config_with(&[])
}

/// Like [`config`] with more users: `(user, password, grant)`.
pub fn config_with(extra: &[(&str, &str, Grant)]) -> String {
    let mut users = String::from("users: [\n");
    for service in Service::ALL {
        let password = password(service);
        let entry = permissions::user_entry(
            service.user(),
            Password::Literal(&password),
            &permissions::grant(service),
        );
        users.push_str(&entry);
    }
    for (user, password, grant) in extra {
        users.push_str(&permissions::user_entry(
            user,
            Password::Literal(password),
            grant,
        ));
    }
    users.push_str(&format!(
        "  {{ user: \"{ADMIN_USER}\", password: \"{ADMIN_USER}\" }}\n]\n"
    ));
    format!("authorization {{\n  timeout: 2\n{users}}}\nno_auth_user: \"{ADMIN_USER}\"\n")
}

/// Like [`config`] for a mesh of `partitions` message streams: the account's subject mapping
/// that puts each room's messages in its partition (none for one partition).
pub fn config_partitioned(partitions: u16) -> anyhow::Result<String> {
    let streams = dyschat_protocol::streams::MessageStreams::new(partitions)
        .ok_or_else(|| anyhow::anyhow!("{partitions} partitions is out of range"))?;
    Ok(format!("{}{}", config(), streams.mappings_config()))
}

/// The operators' unrestricted user of a production server (never given to a service).
pub const OPERATOR_USER: &str = "admin";
/// The variable holding its password.
pub const OPERATOR_PASSWORD_VAR: &str = "NATS_ADMIN_PASSWORD";

/// The file `deploy/nats/nats-prod.conf` and `nats-dev.conf` include inside `authorization {}`:
/// every service's user with its grant, passwords read from the server's environment.
pub fn production_users() -> String {
    let mut out = String::from(
        "# GENERATED from crates/protocol/src/permissions.rs; do not edit. Regenerate with\n\
         #   DYSCHAT_REGENERATE=1 cargo nextest run -p dyschat-tests --test deploy generated\n\
         # (the deploy test fails while this file differs from what the code grants).\n\
         #\n\
         # One NATS user per service, allowed only the subjects it needs. Passwords come from the\n\
         # server's environment:\n",
    );
    for service in Service::ALL {
        out.push_str(&format!(
            "#   {:<34} {}\n",
            service.password_var(),
            service.user()
        ));
    }
    out.push_str(&format!(
        "#   {OPERATOR_PASSWORD_VAR:<34} {OPERATOR_USER} (operators' unrestricted user, for the nats CLI;\n\
         #   {:<34} never give it to a service)\n\n",
        ""
    ));
    out.push_str("users: [\n");
    for service in Service::ALL {
        out.push_str(&permissions::user_entry(
            service.user(),
            Password::Variable(service.password_var()),
            &permissions::grant(service),
        ));
    }
    out.push_str(&format!(
        "  {{ user: \"{OPERATOR_USER}\", password: ${OPERATOR_PASSWORD_VAR} }}\n]\n"
    ));
    out
}

/// `env` with `service`'s NATS user and password, unless `env` names a user of its own.
pub fn service_env(env: &Env, service: Service) -> Env {
    if env.get("DYSCHAT_NATS_USER").is_some() {
        return env.clone();
    }
    env.clone()
        .with("DYSCHAT_NATS_USER", service.user())
        .with("DYSCHAT_NATS_PASSWORD", password(service))
}

/// The permission violations a server logged.
pub fn violations(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("Violation")).collect()
}

/// Whether a logged violation is one of a service's own users (not a user a test made to be
/// refused).
pub fn by_a_service(line: &str) -> bool {
    Service::ALL
        .iter()
        .any(|s| line.contains(&format!("user:{}\"", s.user())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_lists_every_service_and_the_admin() {
        let conf = config();
        for service in Service::ALL {
            assert!(conf.contains(&password(service)));
        }
        assert!(conf.contains(&format!("no_auth_user: \"{ADMIN_USER}\"")));
    }
}
