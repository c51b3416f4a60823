//! The self-describing documents against the code: every operation of `/openapi.json` is served
//! by a running agent (the router and the document are built from one table, so nothing is
//! served undocumented), and `docs/asyncapi.yaml` names every WebSocket frame type of the wire
//! types and every NATS subject of `shared/src/subjects.rs`.

use std::collections::BTreeSet;

use anyhow::{ensure, Context};
use dyschat_shared::{subjects, wire};
use dyschat_tests::mesh::Mesh;

const ASYNCAPI: &str = include_str!("../../docs/asyncapi.yaml");
const SUBJECTS_RS: &str = include_str!("../../shared/src/subjects.rs");

/// The `type` tags of an internally tagged enum, read from serde's own "unknown variant"
/// message, so a new frame variant shows up here without editing this test.
fn tags<T: serde::de::DeserializeOwned>() -> BTreeSet<String> {
    let err = match serde_json::from_str::<T>(r#"{"type":"__no_such_frame__"}"#) {
        Ok(_) => return BTreeSet::new(),
        Err(e) => e.to_string(),
    };
    let list = err.split("expected one of").nth(1).unwrap_or_default();
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn asyncapi_names_every_frame_type() {
    let client = tags::<wire::ClientFrame>();
    let server = tags::<wire::ServerFrame>();
    assert!(client.contains("join") && client.len() >= 7, "{client:?}");
    assert!(
        server.contains("member_joined") && server.len() >= 12,
        "{server:?}"
    );
    assert!(ASYNCAPI.starts_with("# ") && ASYNCAPI.contains("\nasyncapi: 3.0.0\n"));
    for tag in client.iter().chain(&server) {
        assert!(
            ASYNCAPI.contains(&format!("type: {{const: {tag}}}")),
            "docs/asyncapi.yaml has no frame with type {tag}"
        );
    }
}

#[test]
fn asyncapi_names_every_subject() {
    // Every subject literal of subjects.rs (outside its tests), constants and prefixes alike.
    let code = SUBJECTS_RS.split("#[cfg(test)]").next().unwrap_or_default();
    let literals: Vec<&str> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("dyschat"))
        .collect();
    assert!(literals.len() >= 15, "{literals:?}");
    for literal in literals {
        assert!(
            ASYNCAPI.contains(literal),
            "docs/asyncapi.yaml does not mention {literal}"
        );
    }
    // Every subject function, with its parameter as the document spells it.
    for (subject, param) in [
        (subjects::room_messages("X"), "{room_id}"),
        (subjects::live("X"), "{room_id}"),
        (subjects::membership("X"), "{room_id}"),
        (subjects::typing("X"), "{room_id}"),
        (subjects::presence("X"), "{user_id}"),
    ] {
        let address = format!("address: {}", subject.replace(".X", &format!(".{param}")));
        assert!(ASYNCAPI.contains(&address), "no channel `{address}`");
    }
    for endpoint in [
        subjects::rooms::CREATE,
        subjects::rooms::GET,
        subjects::rooms::LIST,
        subjects::rooms::JOIN,
        subjects::rooms::LEAVE,
        subjects::rooms::MEMBERS,
    ] {
        let subject = subjects::rooms::subject(endpoint);
        assert!(ASYNCAPI.contains(&subject), "no {subject}");
    }
    for subject in [
        subjects::auth::REGISTER_SUBJECT,
        subjects::auth::LOGIN_SUBJECT,
        subjects::DEAD_LETTER,
    ] {
        assert!(
            ASYNCAPI.contains(&format!("address: {subject}")),
            "no {subject}"
        );
    }
}

/// Fills the path parameters of a documented path with harmless values.
fn concrete(path: &str) -> String {
    path.replace("{room_id}", "no_such_room")
        .replace("{file}", "app.css")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() -> anyhow::Result<()> {
    let mesh = Mesh::start(1).await?;
    let base = mesh.agent(0).http();
    let http = reqwest::Client::new();
    let doc: serde_json::Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await?
        .json()
        .await
        .context("/openapi.json is JSON")?;
    ensure!(doc["openapi"] == "3.1.0", "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().context("paths")?;
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().context("path item")? {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?;
            let response = http
                .request(method.clone(), format!("{base}{}", concrete(path)))
                .send()
                .await?;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            ensure!(
                status != 405 && !body.contains("no such route"),
                "{method} {path} is documented but not served: {status} {body}"
            );
            operations += 1;
        }
    }
    ensure!(operations >= 19, "only {operations} operations documented");

    // The probe can tell a missing route: the fallback answers these.
    let response = http.get(format!("{base}/api/v1/nothing")).send().await?;
    ensure!(response.status() == 404 && response.text().await?.contains("no such route"));

    let docs = http.get(format!("{base}/docs")).send().await?;
    ensure!(docs.status() == 200);
    ensure!(docs.text().await?.contains("/assets/docs.js"));
    Ok(())
}
