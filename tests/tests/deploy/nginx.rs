//! `deploy/nginx/nginx.conf` in front of two real agents.

use super::*;

fn nginx_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("NGINX_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// A tool that is missing: fine on a developer's machine (the test says so), a failure on CI.
fn missing_tool(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is not installed; on CI `make test` installs it (scripts/ensure-deploy-tools.sh)");
    }
    println!("SKIPPED: {what} is not installed (run scripts/ensure-deploy-tools.sh as root, or apt-get install nginx)");
}

struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    /// SIGTERM first: an nginx master stops its workers before it exits (SIGKILL would leave
    /// them running). The test also runs it without a master process, so one process is all.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_config_balances_http_and_websockets_over_the_agents() -> anyhow::Result<()> {
    let Some(nginx) = nginx_bin() else {
        missing_tool("nginx");
        return Ok(());
    };
    let mut mesh = Mesh::start(2).await?;
    let dir = tempfile::tempdir()?;
    let port = free_port();
    // deploy/nginx/nginx.conf with only the addresses changed: agents on loopback, nginx on a
    // free loopback port, its pid file in the temp dir.
    let conf = std::fs::read_to_string(repo_root().join("deploy/nginx/nginx.conf"))?;
    let mut replaced = 0;
    let conf: String = conf
        .lines()
        .map(|line| {
            let t = line.trim_start();
            let indent = &line[..line.len() - t.len()];
            if let Some(rest) = t.strip_prefix("server ws-agent-") {
                let i: usize = rest[..1].parse().unwrap_or(1);
                let opts = rest.split_once(' ').map(|(_, o)| o).unwrap_or(";");
                replaced += 1;
                format!("{indent}server {} {opts}", mesh.agent(i - 1).addr)
            } else if t == "listen 80;" {
                format!("{indent}listen 127.0.0.1:{port};")
            } else if t.starts_with("pid ") {
                format!("pid {}/nginx.pid;", dir.path().display())
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(replaced, 2, "the upstream names ws-agent-1 and ws-agent-2");
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let log = std::fs::File::create(dir.path().join("nginx.log"))?;
    let prefix = format!("{}/", dir.path().display());
    let error_log = dir.path().join("error.log").display().to_string();
    let _nginx = Nginx {
        child: Command::new(&nginx)
            .args(["-p", &prefix, "-e", &error_log, "-c"])
            .arg(&conf_path)
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", nginx.display()))?,
    };
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/nginx-healthz");
    if let Err(e) = wait_until(Duration::from_secs(10), "nginx to answer", || async {
        matches!(get_text(&health).await, Ok((200, _)))
    })
    .await
    {
        bail!(
            "{e}\n{}\n{}",
            std::fs::read_to_string(dir.path().join("nginx.log")).unwrap_or_default(),
            std::fs::read_to_string(&error_log).unwrap_or_default()
        );
    }

    // HTTP through nginx; /metrics is not public.
    assert_eq!(get_text(&format!("{base}/healthz")).await?.0, 200);
    assert_eq!(get_text(&format!("{base}/metrics")).await?.0, 404);
    let api = Api::new(base.clone());
    let alice = api.register_and_login("edge_alice").await?;
    let bob = api.register_and_login("edge_bob").await?;
    let room = api.create_room(&alice.token, "edge").await?;
    let (status, _) = api.join_room(&bob.token, &room).await?;
    assert_eq!(status, 200);

    // WebSockets through nginx (least_conn: the second socket lands on the other agent), a
    // message from one reaching the other.
    let ws_url = format!("ws://127.0.0.1:{port}/ws");
    let mut a = WsClient::connect(&ws_url, &alice.token).await?;
    let mut b = WsClient::connect(&ws_url, &bob.token).await?;
    a.join(&room, Some(0)).await?;
    b.join(&room, Some(0)).await?;
    a.send(
        json!({"type": "send", "room_id": room, "body": "through nginx", "client_msg_id": "n1"}),
    )
    .await?;
    let ack = a.recv_type("ack").await?;
    let got = b.recv_type("message").await?;
    assert_eq!(got["seq"], ack["seq"]);
    assert_eq!(got["body"], "through nginx");
    b.send(json!({"type": "ping"})).await?;
    b.recv_type("pong").await?;
    a.close().await;
    b.close().await;

    // A 3 MiB file (over the 1 MiB body limit of every other route) up and back through nginx,
    // and a range of it.
    let client = reqwest::Client::new();
    let bytes: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let resp = client
        .post(format!("{base}/api/v1/rooms/{room}/files"))
        .query(&[("name", "edge.bin")])
        .bearer_auth(&alice.token)
        .body(bytes.clone())
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 201);
    let file: Value = resp.json().await?;
    let file_id = file["file_id"].as_str().context("file_id")?.to_string();
    let resp = client
        .get(format!("{base}/api/v1/files/{file_id}"))
        .bearer_auth(&bob.token)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.bytes().await? == bytes,
        "the file differs through nginx"
    );
    let resp = client
        .get(format!("{base}/api/v1/files/{file_id}"))
        .bearer_auth(&bob.token)
        .header("Range", "bytes=-10")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 206);
    assert!(resp.bytes().await? == bytes[bytes.len() - 10..]);

    // The per-address login limit at the edge: past the burst, 429 in the contract's shape.
    let mut limited = None;
    for _ in 0..40 {
        let resp = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "edge_alice", "password": "wrong password"}))
            .send()
            .await?;
        if resp.status().as_u16() == 429 {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let body: Value = resp.json().await?;
            limited = Some((retry_after, body));
            break;
        }
    }
    let (retry_after, body) = limited.context("40 logins in a row were never rate limited")?;
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["retry_after_ms"].is_number(), "{body}");
    assert!(retry_after.is_some(), "429 carries Retry-After");

    // The access log has both sockets (logged when they closed) but not the tokens their URLs
    // carried (`/ws?token=`), nor any other query string.
    let (_, _) = get_text(&format!("{base}/healthz?probe=query-not-logged")).await?;
    let access_log = dir.path().join("nginx.log");
    let read_log = || std::fs::read_to_string(&access_log).unwrap_or_default();
    wait_until(
        Duration::from_secs(10),
        "both sockets in the access log",
        || {
            let log = read_log();
            async move {
                log.matches("\"GET /ws HTTP/1.1\" 101").count() >= 2 && log.contains("/healthz")
            }
        },
    )
    .await
    .with_context(read_log)?;
    let log = read_log();
    for secret in [
        alice.token.as_str(),
        bob.token.as_str(),
        "token=",
        "query-not-logged",
    ] {
        assert!(
            !log.contains(secret),
            "the access log shows {secret:?}:\n{log}"
        );
    }

    mesh.stop_all().await?;
    Ok(())
}
