//! Each service logs in to NATS as itself with only the subjects it needs
//! (`dyschat_protocol::permissions`). A stolen ws-agent credential cannot read password hashes,
//! forge membership, answer as auth or rooms, or take the writer's messages; the whole mesh runs
//! under these grants in every other test (`Mesh::stop_all` fails on a violation).

use dyschat_protocol::layout;
use dyschat_protocol::permissions::Service;
use dyschat_protocol::subjects;
use dyschat_tests::nats_users;

use super::*;

/// A client logged in as `service`, as a thief holding its credentials would be.
async fn client_as(mesh: &Mesh, service: Service) -> anyhow::Result<async_nats::Client> {
    let env = nats_users::service_env(&mesh.env, service);
    let common = env.common()?;
    let nats = env.section(&common)?;
    Ok(connect::nats(&common, &nats, service.user()).await?)
}

/// Waits until the server has logged a violation naming `subject`.
async fn refused(mesh: &Mesh, subject: &str) -> anyhow::Result<()> {
    wait_until(
        Duration::from_secs(5),
        &format!("a violation for {subject}"),
        || async { mesh.nats.violations().iter().any(|v| v.contains(subject)) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_agent_credential_reaches_only_what_agents_need() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let victim = api.register_and_login("victim").await?;
    let room = api.create_room(&victim.token, "private").await?;
    let agent = client_as(&mesh, Service::WsAgent).await?;
    let js = async_nats::jetstream::new(agent.clone());
    let short = Duration::from_secs(2);

    // Password hashes: neither a KV read nor a direct get of the users bucket.
    let users = layout::kv_stream(layout::USERS_BUCKET);
    let direct = format!("$JS.API.DIRECT.GET.{users}");
    let read = agent.request(
        direct.clone(),
        r#"{"last_by_subj":"$KV.dyschat_users.victim"}"#.into(),
    );
    ensure!(
        !matches!(tokio::time::timeout(short, read).await, Ok(Ok(_))),
        "the users bucket answered"
    );
    refused(&mesh, &direct).await?;

    // Membership records: a forged member of the victim's room is refused.
    let forged = layout::kv_subject(layout::MEMBERS_BUCKET, &format!("{room}.intruder"));
    let put = js.publish(forged.clone(), "{}".into()).await;
    if let Ok(ack) = put {
        ensure!(
            tokio::time::timeout(short, ack)
                .await
                .map_or(true, |a| a.is_err()),
            "the forged member was stored"
        );
    }
    refused(&mesh, &forged).await?;

    // Answering as auth: a subscription to its endpoints is refused, so a login never reaches it.
    let mut fake_auth = agent.subscribe(subjects::auth::LOGIN_SUBJECT).await?;
    agent.flush().await?;
    refused(&mesh, subjects::auth::LOGIN_SUBJECT).await?;
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "victim", "password": "correct horse"})),
        )
        .await?;
    ensure!(status == 200, "login: {status}");
    ensure!(
        tokio::time::timeout(Duration::from_millis(500), fake_auth.next())
            .await
            .is_err(),
        "the stolen credential heard a login"
    );

    // The writer's durable consumer: its messages cannot be taken.
    let next = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
        layout::MESSAGES_STREAM,
        layout::WRITER_CONSUMER
    );
    agent
        .publish_with_reply(next.clone(), agent.new_inbox(), r#"{"batch":1}"#.into())
        .await?;
    refused(&mesh, &next).await?;

    Ok(())
}

#[tokio::test]
async fn every_service_has_its_own_user_and_password() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    for service in Service::ALL {
        let client = client_as(&mesh, service).await?;
        client.flush().await?;
        // Another service's password does not open this service's user.
        let other = Service::ALL
            .into_iter()
            .find(|s| *s != service)
            .context("more than one service")?;
        let env = mesh
            .env
            .clone()
            .with("DYSCHAT_NATS_USER", service.user())
            .with("DYSCHAT_NATS_PASSWORD", nats_users::password(other));
        let common = env.common()?;
        let nats = env.section(&common)?;
        let err = connect::nats(&common, &nats, "wrong")
            .await
            .expect_err("a wrong password was accepted");
        ensure!(
            matches!(err, connect::ConnectError::NatsRefused { .. }),
            "{err}"
        );
    }
    Ok(())
}
