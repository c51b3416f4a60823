//! `deploy/healthcheck.sh` (the image's HEALTHCHECK) against a live agent.

use super::*;

fn healthcheck(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<bool> {
    let status = Command::new("bash")
        .arg(repo_root().join("deploy/healthcheck.sh"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_healthcheck_script_checks_a_live_agent() -> anyhow::Result<()> {
    let mut mesh = Mesh::start(1).await?;
    let addr = mesh.agent(0).addr.to_string();
    let wildcard = format!("0.0.0.0:{}", mesh.agent(0).addr.port());
    assert!(healthcheck(&[&addr, "/healthz"], &[])?);
    // As the ws-agent image runs it: from its variables, a wildcard listen address.
    assert!(healthcheck(
        &[],
        &[
            ("DYSCHAT_SERVICE", "ws-agent".into()),
            ("DYSCHAT_WS_AGENT_PORT", wildcard)
        ]
    )?);
    // A path that is not 200, and a port nothing listens on: unhealthy.
    assert!(!healthcheck(&[&addr, "/no-such-page"], &[])?);
    let closed = format!("127.0.0.1:{}", free_port());
    assert!(!healthcheck(&[&closed, "/healthz"], &[])?);
    mesh.stop_all().await?;
    Ok(())
}
