//! A room larger than one members page (1,000) at the HTTP edge: a member the agent's first page
//! does not list is still a member (sends, lists members), and an outsider is still refused.

use std::time::Duration;

use anyhow::ensure;
use dyschat_protocol::subjects;
use dyschat_protocol::wire::{MembershipReply, MembershipRequest};
use dyschat_tests::client::Api;
use dyschat_tests::mesh::Mesh;
use futures::StreamExt;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_past_the_first_page_is_a_member() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let api = Api::new(mesh.agent(0).http());
    let owner = api.register_and_login("owner").await?;
    let late = api.register_and_login("latecomer").await?;
    let outsider = api.register_and_login("outsider").await?;
    let room = api.create_room(&owner.token, "Crowd").await?;

    // 1,100 members straight through the rooms service, before the latecomer.
    let nats = mesh.client().await?;
    let joined: Vec<anyhow::Result<MembershipReply>> = futures::stream::iter(0..1100)
        .map(|i| {
            let req = MembershipRequest {
                room_id: room.clone(),
                user_id: format!("crowd{i}"),
                username: format!("crowd{i}"),
            };
            let nats = nats.clone();
            async move {
                let subject = subjects::rooms::subject(subjects::rooms::JOIN);
                dyschat_runtime::rpc::request(&nats, subject, &req, Duration::from_secs(30))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for reply in joined {
        ensure!(reply?.changed);
    }
    let path = format!("/api/v1/rooms/{room}");
    let (status, _) = api
        .call("POST", &format!("{path}/join"), Some(&late.token), None)
        .await?;
    ensure!(status == 200);

    let (status, body) = api
        .call("GET", &format!("{path}/members"), Some(&late.token), None)
        .await?;
    ensure!(status == 200, "{status} {body}");
    ensure!(body["members"].as_array().map(Vec::len) == Some(1000));
    let (status, body) = api
        .call(
            "POST",
            &format!("{path}/messages"),
            Some(&late.token),
            Some(json!({"body": "hello from page two"})),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");

    for (method, route, body) in [
        ("GET", "members", None),
        ("POST", "messages", Some(json!({"body": "let me in"}))),
    ] {
        let (status, reply) = api
            .call(
                method,
                &format!("{path}/{route}"),
                Some(&outsider.token),
                body,
            )
            .await?;
        ensure!(status == 403, "{method} {route}: {status} {reply}");
    }
    let (status, body) = api.call("GET", &path, Some(&owner.token), None).await?;
    ensure!(
        status == 200 && body["member_count"] == 1102,
        "{status} {body}"
    );
    Ok(())
}
