//! Files generated from the code stay as the code says: `deploy/nats/dyschat-users.conf` (the
//! services' NATS users and permissions, from `dyschat_protocol::permissions`).
//! `DYSCHAT_REGENERATE=1` rewrites a file that differs instead of failing.

use dyschat_tests::nats_users;

use super::*;

fn check(path: &str, expected: &str) -> anyhow::Result<()> {
    let file = repo_root().join(path);
    let actual = std::fs::read_to_string(&file).unwrap_or_default();
    if actual == expected {
        return Ok(());
    }
    if std::env::var_os("DYSCHAT_REGENERATE").is_some() {
        std::fs::write(&file, expected)?;
        return Ok(());
    }
    bail!("{path} is not what the code generates; run with DYSCHAT_REGENERATE=1 to rewrite it")
}

#[test]
fn nats_users_file_matches_the_grants() -> anyhow::Result<()> {
    check(
        "deploy/nats/dyschat-users.conf",
        &nats_users::production_users(),
    )
}
