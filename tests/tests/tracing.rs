//! Distributed traces of a real multi-service run, received by an in-process OTLP collector.
//!
//! The four services run in this one process, which can hold only one tracing subscriber, so the
//! test installs telemetry once with `init_in_process`: one tracer provider whose span processor
//! sends each span to the exporter of the service that made it, each with its own `service.name`
//! resource. The collector therefore sees what four separate processes would send, and the
//! assertions below check services by that resource attribute.

use std::time::Duration;

use anyhow::{ensure, Context};
use dyschat_runtime::Env;
use dyschat_tests::client::{Api, WsClient};
use dyschat_tests::mesh::Mesh;
use dyschat_tests::otlp::{ReceivedSpan, Receiver};
use serde_json::json;

const WS_AGENT: &str = "dyschat-ws-agent";

/// Flushes and waits until the trace satisfies `complete`, then returns its spans.
async fn wait_for_trace(
    receiver: &Receiver,
    telemetry: &dyschat_runtime::telemetry::Telemetry,
    trace_id: &str,
    complete: impl Fn(&[ReceivedSpan]) -> bool,
) -> anyhow::Result<Vec<ReceivedSpan>> {
    for _ in 0..50 {
        telemetry.flush();
        let spans = receiver.trace(trace_id);
        if complete(&spans) {
            return Ok(spans);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spans = receiver.trace(trace_id);
    anyhow::bail!("trace {trace_id} incomplete: {}", describe(&spans))
}

fn describe(spans: &[ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{}:{} [{} <- {}]",
                s.service, s.name, s.span_id, s.parent_span_id
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn find<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_and_a_login_are_each_one_trace_across_services() -> anyhow::Result<()> {
    let receiver = Receiver::start().await?;
    let url = receiver.url();
    let common = Env::from_pairs([("DYSCHAT_JAEGER_URL".to_string(), url.clone())]).common()?;
    let telemetry = dyschat_runtime::telemetry::init_in_process(&common, "info");
    ensure!(
        telemetry.exporting(),
        "telemetry installed without an exporter"
    );
    let mesh = Mesh::start_with(2, vec![("DYSCHAT_JAEGER_URL".into(), url)]).await?;

    // A login: the HTTP response names its trace, which spans ws-agent and auth.
    let api = Api::new(mesh.agent(0).http());
    let alice = api.register_and_login("alice").await?;
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", mesh.agent(0).http()))
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await?;
    ensure!(login.status() == 200, "login: {}", login.status());
    let login_trace = login
        .headers()
        .get("x-trace-id")
        .context("no x-trace-id on the login response")?
        .to_str()?
        .to_string();
    ensure!(login_trace.len() == 32, "trace id {login_trace}");
    let spans = wait_for_trace(&receiver, &telemetry, &login_trace, |spans| {
        !find(spans, "dyschat-auth", "auth.login").is_empty()
    })
    .await?;
    let http = find(&spans, WS_AGENT, "POST /api/v1/auth/login");
    let client = find(&spans, WS_AGENT, "auth.login");
    let server = find(&spans, "dyschat-auth", "auth.login");
    ensure!(
        http.len() == 1 && client.len() == 1 && server.len() == 1,
        "login trace: {}",
        describe(&spans)
    );
    ensure!(
        http[0].parent_span_id.is_empty(),
        "the HTTP span is the root"
    );
    ensure!(client[0].parent_span_id == http[0].span_id);
    ensure!(
        server[0].parent_span_id == client[0].span_id,
        "auth's span is a child of the agent's request: {}",
        describe(&spans)
    );
    ensure!(server[0].attribute("messaging.system") == Some("nats"));
    ensure!(server[0].attribute("outcome") == Some("ok"));

    // A message sent on agent 0, with a reader on agent 1: the ack names the trace, which holds
    // the send, the store in msg-writer and the delivery at both agents.
    let bob = api.register_and_login("bob").await?;
    let room = api.create_room(&alice.token, "traced").await?;
    let (status, _) = api.join_room(&bob.token, &room).await?;
    ensure!(status == 200, "join: {status}");
    let mut sender = WsClient::connect(&mesh.agent(0).ws(), &alice.token).await?;
    sender.join(&room, None).await?;
    let mut reader = WsClient::connect(&mesh.agent(1).ws(), &bob.token).await?;
    reader.join(&room, None).await?;
    sender
        .send(json!({"type": "send", "room_id": room, "body": "where did I go?", "ref": "s1"}))
        .await?;
    let ack = sender.recv_type("ack").await?;
    let delivered = reader.recv_type("message").await?;
    ensure!(delivered["message_id"] == ack["message_id"]);
    let trace_id = ack["trace_id"]
        .as_str()
        .with_context(|| format!("no trace_id in {ack}"))?
        .to_string();
    ensure!(
        trace_id.len() == 32 && trace_id.chars().all(|c| c.is_ascii_hexdigit()),
        "trace id {trace_id}"
    );
    let spans = wait_for_trace(&receiver, &telemetry, &trace_id, |spans| {
        find(spans, "dyschat-msg-writer", "chat.store").len() == 1
            && find(spans, WS_AGENT, "chat.deliver").len() == 2
            && find(spans, WS_AGENT, "chat.send").len() == 1
    })
    .await?;
    let send = find(&spans, WS_AGENT, "chat.send")[0];
    ensure!(send.parent_span_id.is_empty(), "chat.send is the root");
    ensure!(send.attribute("room.id") == Some(room.as_str()));
    ensure!(send.attribute("message.id") == ack["message_id"].as_str());
    let store = find(&spans, "dyschat-msg-writer", "chat.store")[0];
    ensure!(
        store.parent_span_id == send.span_id,
        "the store is a child of the send: {}",
        describe(&spans)
    );
    ensure!(store.attribute("message.seq") == Some(ack["seq"].to_string().as_str()));
    for deliver in find(&spans, WS_AGENT, "chat.deliver") {
        ensure!(
            deliver.parent_span_id == send.span_id,
            "each delivery is a child of the send: {}",
            describe(&spans)
        );
        ensure!(deliver.attribute("messaging.system") == Some("nats"));
    }
    ensure!(
        spans.iter().all(|s| !s.name.contains(&room)),
        "room ids must not be in span names: {}",
        describe(&spans)
    );

    sender.close().await;
    reader.close().await;
    let mut mesh = mesh;
    mesh.stop_all().await?;
    telemetry.shutdown();
    Ok(())
}
