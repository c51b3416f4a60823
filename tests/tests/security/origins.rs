//! The WebSocket Origin allow-list and CORS in prod, and the prod configuration rules.

use super::*;

fn prod_vars(origins: &str) -> Vec<(String, String)> {
    vars(&[
        ("DYSCHAT_ENV_MODE", "prod"),
        ("DYSCHAT_AUTH_SECRET", PROD_SECRET),
        ("DYSCHAT_ALLOWED_ORIGINS", origins),
    ])
}

/// The `Access-Control-Allow-Origin` a preflight from `origin` gets.
async fn preflight(base: &str, origin: &str) -> anyhow::Result<Option<String>> {
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/rooms"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await?;
    Ok(resp
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(String::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prod_admits_only_listed_origins_and_never_a_cors_wildcard() -> anyhow::Result<()> {
    const ALLOWED: &str = "https://chat.example.com";
    let mesh = Mesh::start_with(1, prod_vars(ALLOWED)).await?;
    let base = mesh.agent(0).http();
    let api = Api::new(base.clone());
    let user = api.register_and_login("alice").await?;
    let url = format!("{}?token={}", mesh.agent(0).ws(), user.token);
    let same_origin = base.clone();

    for refused in [
        "https://evil.example",
        "null",
        same_origin.as_str(),
        "https://chat.example.com.evil.example",
    ] {
        match ws_open(&url, Some(refused)).await? {
            Err((403, body)) => ensure!(body["error"]["code"] == "forbidden", "{refused}: {body}"),
            Err(other) => bail!("{refused}: {other:?}"),
            Ok(_) => bail!("{refused} was admitted"),
        }
    }
    for admitted in [Some(ALLOWED), Some("https://Chat.Example.com"), None] {
        let mut ws = ws_open(&url, admitted)
            .await?
            .map_err(|e| anyhow::anyhow!("{admitted:?} refused: {e:?}"))?;
        ws.expect_ready().await?;
    }
    // An auth-frame socket is checked before it can authenticate.
    ensure!(
        matches!(
            ws_open(&mesh.agent(0).ws(), Some("https://evil.example")).await?,
            Err((403, _))
        ),
        "auth-frame socket from a foreign origin"
    );

    ensure!(
        preflight(&base, ALLOWED).await?.as_deref() == Some(ALLOWED),
        "allowed preflight"
    );
    ensure!(
        preflight(&base, "https://evil.example").await?.is_none(),
        "foreign preflight"
    );
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&user.token)
        .header("Origin", ALLOWED)
        .send()
        .await?;
    let acao = resp.headers().get("access-control-allow-origin").cloned();
    ensure!(
        acao.as_ref().and_then(|v| v.to_str().ok()) == Some(ALLOWED),
        "{acao:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prod_without_a_list_is_same_origin_only() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, prod_vars("")).await?;
    let base = mesh.agent(0).http();
    let api = Api::new(base.clone());
    let user = api.register_and_login("alice").await?;
    let url = format!("{}?token={}", mesh.agent(0).ws(), user.token);

    let mut ws = ws_open(&url, Some(&base))
        .await?
        .map_err(|e| anyhow::anyhow!("same origin refused: {e:?}"))?;
    ws.expect_ready().await?;
    ensure!(
        matches!(
            ws_open(&url, Some("https://evil.example")).await?,
            Err((403, _))
        ),
        "foreign origin admitted"
    );
    for origin in [base.as_str(), "https://evil.example"] {
        ensure!(
            preflight(&base, origin).await?.is_none(),
            "CORS answered {origin}"
        );
    }
    ensure!(
        dyschat_ws_agent::http::origin::cors(&mesh.agent_config()).is_none(),
        "prod CORS layer without a list"
    );
    Ok(())
}

#[test]
fn prod_configuration_refuses_the_dev_secret() {
    let config = |pairs: &[(&str, &str)]| {
        dyschat_ws_agent::Config::from_env(&Env::from_pairs(pairs.iter().copied()))
    };
    let err = config(&[
        ("DYSCHAT_ENV_MODE", "prod"),
        ("DYSCHAT_AUTH_SECRET", DEV_AUTH_SECRET),
    ])
    .expect_err("dev secret accepted in prod")
    .to_string();
    assert!(err.contains("DYSCHAT_AUTH_SECRET"), "{err}");
    assert!(config(&[("DYSCHAT_ENV_MODE", "prod")]).is_err());
    let err = config(&[("DYSCHAT_ALLOWED_ORIGINS", "*")])
        .expect_err("a wildcard origin accepted")
        .to_string();
    assert!(err.contains("DYSCHAT_ALLOWED_ORIGINS"), "{err}");
}
