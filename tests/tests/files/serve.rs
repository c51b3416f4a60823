//! Uploading and serving: byte-identical across agents at exactly the largest size, the bound
//! (declared and streamed, nothing left behind), ranges, ETag, the safe headers and types, and
//! who may upload and read.

use futures::StreamExt;

use super::*;

/// The live (not deleted) objects of the files store, and the bytes its stream holds.
async fn stored_objects(s: &Setup) -> anyhow::Result<(usize, u64)> {
    let js = async_nats::jetstream::new(s.mesh.client().await?);
    let store = js.get_object_store("dyschat_files").await?;
    let mut list = store.list().await?;
    let mut live = 0;
    while let Some(info) = list.next().await {
        if !info?.deleted {
            live += 1;
        }
    }
    let mut stream = js.get_stream("OBJ_dyschat_files").await?;
    Ok((live, stream.info().await?.state.bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_uploaded_on_one_agent_is_served_whole_by_another() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let alice = s.user("f_alice").await?;
    let room = create(s.api(), &alice, "files", "public").await?;

    // Exactly the largest file: accepted, and identical from the other agent.
    let bytes = noise(MAX, 7);
    let (status, file) = s
        .upload(
            0,
            &alice,
            &room,
            "big.bin",
            Some("application/zip"),
            bytes.clone().into(),
        )
        .await?;
    ensure!(status == 201, "{status} {file}");
    let sha = sha256_hex(&bytes);
    ensure!(
        file["size"] == MAX as u64
            && file["sha256"] == sha
            && file["room_id"] == room
            && file["name"] == "big.bin"
            && file["content_type"] == "application/zip"
            && file["uploaded_by"] == alice.user_id
            && file["created_at"].is_string(),
        "{file}"
    );
    let id = id_of(&file)?;
    let got = s.download(1, &alice, &id, &[]).await?;
    ensure!(got.status == 200, "{}", got.status);
    ensure!(got.body.len() == MAX && got.body == bytes, "bytes differ");
    ensure!(got.header("etag") == format!("\"{sha}\""));
    ensure!(got.header("x-content-type-options") == "nosniff");
    ensure!(got.header("content-security-policy") == "sandbox");
    ensure!(got.header("accept-ranges") == "bytes");
    ensure!(got.header("content-type") == "application/octet-stream");
    ensure!(
        got.header("content-disposition")
            == "attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin",
        "{}",
        got.header("content-disposition")
    );
    // A range across a chunk boundary (chunks are 128 KiB), and the last bytes.
    let (a, b) = (131_000usize, 262_200usize);
    let got = s
        .download(0, &alice, &id, &[("Range", &format!("bytes={a}-{b}"))])
        .await?;
    ensure!(got.status == 206, "{}", got.status);
    ensure!(got.body == bytes[a..=b], "range bytes differ");
    ensure!(got.header("content-range") == format!("bytes {a}-{b}/{MAX}"));
    let got = s.download(1, &alice, &id, &[("Range", "bytes=-5")]).await?;
    ensure!(got.status == 206 && got.body == bytes[MAX - 5..]);
    // The ETag held: 304.
    let etag = format!("\"{sha}\"");
    let got = s
        .download(1, &alice, &id, &[("If-None-Match", &etag)])
        .await?;
    ensure!(got.status == 304 && got.body.is_empty(), "{}", got.status);

    // One byte more: refused when declared, and when streamed without a length.
    let (live_before, _) = stored_objects(&s).await?;
    let (status, answer) = s
        .upload(0, &alice, &room, "big.bin", None, noise(MAX + 1, 8).into())
        .await?;
    ensure!(
        status == 413 && answer["error"]["code"] == "too_large",
        "{status} {answer}"
    );
    let parts = noise(MAX + 1, 9)
        .chunks(64 * 1024)
        .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
        .collect::<Vec<_>>();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(parts));
    let (status, answer) = s
        .upload(1, &alice, &room, "lie.bin", None, streamed)
        .await?;
    ensure!(
        status == 413 && answer["error"]["code"] == "too_large",
        "{status} {answer}"
    );
    // Nothing of them stays: no new object, and the stream holds about one file's bytes.
    let (live, bytes_held) = stored_objects(&s).await?;
    ensure!(live == live_before, "{live} objects, {live_before} before");
    ensure!(
        bytes_held < (MAX as u64) + 1024 * 1024,
        "the store holds {bytes_held} bytes"
    );
    s.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ranges_types_and_who_may_read() -> anyhow::Result<()> {
    let s = Setup::start(2).await?;
    let alice = s.user("g_alice").await?;
    let bob = s.user("g_bob").await?;
    let carol = s.user("g_carol").await?;
    let room = create(s.api(), &alice, "types", "public").await?;
    let private = create(s.api(), &alice, "hidden", "private").await?;

    let text = s
        .uploaded(
            &alice,
            &room,
            "digits.txt",
            "text/plain",
            b"0123456789".to_vec(),
        )
        .await?;
    ensure!(text["sha256"] == sha256_hex(b"0123456789"), "{text}");
    let id = id_of(&text)?;
    for (range, status, body, content_range) in [
        ("bytes=2-5", 206, "2345", "bytes 2-5/10"),
        ("bytes=7-", 206, "789", "bytes 7-9/10"),
        ("bytes=-3", 206, "789", "bytes 7-9/10"),
        ("bytes=8-100", 206, "89", "bytes 8-9/10"),
        ("bytes=10-", 416, "", "bytes */10"),
        ("bytes=0-1,4-5", 200, "0123456789", ""),
    ] {
        let got = s.download(1, &alice, &id, &[("Range", range)]).await?;
        ensure!(
            got.status == status
                && got.body == body.as_bytes()
                && got.header("content-range") == content_range,
            "{range}: {} {:?} {}",
            got.status,
            String::from_utf8_lossy(&got.body),
            got.header("content-range")
        );
        ensure!(got.header("x-content-type-options") == "nosniff");
        ensure!(got.header("content-security-policy") == "sandbox");
    }
    let head = s
        .http
        .head(format!("{}/api/v1/files/{id}", s.api().base))
        .bearer_auth(&alice.token)
        .send()
        .await?;
    ensure!(
        head.status() == 200
            && head
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                == Some("10"),
        "HEAD: {} {:?}",
        head.status(),
        head.headers()
    );
    let got = s.download(0, &alice, &id, &[]).await?;
    ensure!(got.header("content-type").starts_with("text/plain"));
    ensure!(got.header("content-disposition").starts_with("inline;"));

    // Inline types keep theirs; markup that could run is a download.
    for (ctype, served, inline) in [
        ("image/png", "image/png", true),
        ("image/webp", "image/webp", true),
        ("video/mp4", "video/mp4", true),
        ("application/pdf", "application/pdf", true),
        ("text/html", "application/octet-stream", false),
        ("image/svg+xml", "application/octet-stream", false),
    ] {
        let f = s
            .uploaded(&alice, &room, "naïve \"x\".dat", ctype, b"<svg/>".to_vec())
            .await?;
        let got = s.download(1, &alice, &id_of(&f)?, &[]).await?;
        let disposition = got.header("content-disposition");
        ensure!(
            got.status == 200
                && got.header("content-type") == served
                && disposition.starts_with(if inline { "inline;" } else { "attachment;" })
                && disposition.contains("filename*=UTF-8''na%C3%AFve%20%22x%22.dat")
                && got.header("x-content-type-options") == "nosniff",
            "{ctype}: {} {} {disposition}",
            got.status,
            got.header("content-type")
        );
    }

    // Uploads: a non-member of a public room 403, an outsider of a private one 404; bad names 400.
    let small = || reqwest::Body::from(b"x".to_vec());
    let (status, _) = s.upload(1, &bob, &room, "a.txt", None, small()).await?;
    ensure!(
        status == 403,
        "bob uploading to a public room he is not in: {status}"
    );
    let (status, _) = s
        .upload(1, &carol, &private, "a.txt", None, small())
        .await?;
    ensure!(status == 404, "carol uploading to a private room: {status}");
    for bad in ["", " ", "a/b", "..", "a\u{1}b", &"n".repeat(256)] {
        let (status, answer) = s.upload(0, &alice, &room, bad, None, small()).await?;
        ensure!(status == 400, "name {bad:?}: {status} {answer}");
    }
    let resp = s
        .http
        .post(format!("{}/api/v1/rooms/{room}/files", s.api().base))
        .bearer_auth(&alice.token)
        .body("x")
        .send()
        .await?;
    ensure!(resp.status() == 400, "no name: {}", resp.status());

    // Downloads: members only, 404 to anyone else and for unknown ids.
    let hidden = s
        .uploaded(
            &alice,
            &private,
            "secret.txt",
            "text/plain",
            b"psst".to_vec(),
        )
        .await?;
    let hidden_id = id_of(&hidden)?;
    let got = s.download(1, &carol, &hidden_id, &[]).await?;
    ensure!(
        got.status == 404,
        "an outsider reading a private room's file: {}",
        got.status
    );
    let got = s.download(1, &bob, &id, &[]).await?;
    ensure!(
        got.status == 404,
        "a non-member reading a public room's file: {}",
        got.status
    );
    s.api().join_room(&bob.token, &room).await?;
    let got = s.download(1, &bob, &id, &[]).await?;
    ensure!(
        got.status == 200 && got.body == b"0123456789",
        "a member: {}",
        got.status
    );
    for unknown in [
        format!("{room}-01J00000000000000000000000"),
        "nonsense".to_string(),
        format!(
            "{}{}",
            &id[..id.len() - 1],
            if id.ends_with('Z') { 'Y' } else { 'Z' }
        ),
    ] {
        let got = s.download(0, &alice, &unknown, &[]).await?;
        ensure!(got.status == 404, "{unknown}: {}", got.status);
    }
    s.stop().await
}
