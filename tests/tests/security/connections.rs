//! The HTTP edge's own bounds: slow request heads, idle connections, connections per address.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Reads until the server closes the connection (EOF or reset) or `within` passes; returns
/// whether it closed.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_heads_and_idle_connections_are_closed() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, vars(&[("DYSCHAT_HTTP_HEAD_TIMEOUT_SECS", "2")])).await?;
    let addr = mesh.agent(0).addr;
    // A request head that never ends (slowloris).
    let mut slow = TcpStream::connect(addr).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: agent\r\nX-Slow: ")
        .await?;
    ensure!(
        closed_within(&mut slow, Duration::from_secs(10)).await,
        "a head that never ends kept its connection"
    );
    // A kept-alive connection that goes quiet after one request.
    let mut idle = TcpStream::connect(addr).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
        .await?;
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await?;
    ensure!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "healthz answered"
    );
    ensure!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "an idle kept-alive connection stayed open"
    );
    // A WebSocket is not an idle HTTP connection: it stays past the head timeout.
    let api = Api::new(mesh.agent(0).http());
    let user = api.register_and_login("stayer").await?;
    let mut ws = WsClient::connect(&mesh.agent(0).ws(), &user.token).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    ws.send(json!({"type": "ping"})).await?;
    ws.recv_type("pong").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_cannot_take_every_connection() -> anyhow::Result<()> {
    let mesh = Mesh::start_with(1, vars(&[("DYSCHAT_MAX_CONNECTIONS_PER_ADDR", "5")])).await?;
    let addr = mesh.agent(0).addr;
    // The harness's readiness probe may still hold a connection for a moment: five must fit
    // once it has gone.
    let mut held = Vec::new();
    for _attempt in 0..50 {
        held.clear();
        for _ in 0..5 {
            let mut tcp = TcpStream::connect(addr).await?;
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
                .await?;
            let mut buf = [0u8; 512];
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            if !String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") {
                break;
            }
            held.push(tcp);
        }
        if held.len() == 5 {
            break;
        }
        held.clear();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        held.len() == 5,
        "five connections from one address were not served"
    );
    // The sixth from the same address is closed at once.
    let mut sixth = TcpStream::connect(addr).await?;
    let _ = sixth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
        .await;
    ensure!(
        closed_within(&mut sixth, Duration::from_secs(5)).await,
        "a sixth connection from one address was served"
    );
    // Freeing one lets the next in.
    held.pop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = Api::new(mesh.agent(0).http())
        .call("GET", "/healthz", None, None)
        .await?;
    ensure!(status == 200, "after a slot was freed: {status}");
    Ok(())
}
