//! Media across servers, against Synapse 1.163 and a second Plugboard: a file uploaded on
//! one server is downloaded byte-exact through the other's client API (both ways, the
//! authenticated and the legacy paths, the second time from Plugboard's copy), a missing
//! remote file is the remote's 404, `allow_remote=false` does not fetch, thumbnails of the
//! other server's images come back cropped to the box, and our media is served to other
//! servers as the spec's `multipart/mixed`.

use std::time::Duration;

use plugboard_tests::federation::Identity;
use plugboard_tests::synapse::peer;
use plugboard_tests::{enc, Client, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

/// Bytes no other upload of this run has: the time, a counter and the process.
fn unique_tail() -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut out = nanos.to_le_bytes().to_vec();
    out.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    out.extend_from_slice(&std::process::id().to_le_bytes());
    out
}

/// A GET of raw bytes with `c`'s token: (status, content type, bytes).
async fn get_bytes(c: &Client, path: &str) -> (u16, String, Vec<u8>) {
    let mut req = c.http.get(c.url(path)).timeout(Duration::from_secs(30));
    if let Some(t) = &c.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, resp.bytes().await.unwrap().to_vec())
}

/// Uploads `bytes` on `c`'s server: (server name, media id).
async fn upload_media(c: &Client, bytes: &[u8], content_type: &str) -> (String, String) {
    let reply = c
        .raw(
            Method::POST,
            "/_matrix/media/v3/upload?filename=notes.bin",
            content_type,
            bytes.to_vec(),
        )
        .await
        .ok();
    let uri = reply["content_uri"].as_str().unwrap();
    let (server, id) = uri
        .strip_prefix("mxc://")
        .unwrap()
        .rsplit_once('/')
        .unwrap();
    (server.to_string(), id.to_string())
}

/// Bytes of every value, CR LF and something that looks like a multipart delimiter among them.
fn awkward_bytes() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    bytes.extend_from_slice(b"\r\n--boundary\r\n\r\n--");
    bytes.extend_from_slice(&unique_tail());
    bytes
}

#[tokio::test]
async fn media_crosses_byte_exact_both_ways_and_a_missing_file_is_a_404() {
    let synapse = peer().await;
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = synapse.user("bob").await;

    let theirs = awkward_bytes();
    let (server, id) = upload_media(&bob, &theirs, "application/octet-stream").await;
    assert_eq!(server, synapse.server_name);
    // Not fetched when the client says not to, before it is here.
    let local_only = format!(
        "/_matrix/media/v3/download/{}/{id}?allow_remote=false",
        enc(&server)
    );
    alice.get(&local_only).await.err(404, "M_NOT_FOUND");
    for path in [
        format!("/_matrix/client/v1/media/download/{}/{id}", enc(&server)),
        // Kept the first time: the second answer comes from Plugboard's copy.
        format!("/_matrix/client/v1/media/download/{}/{id}", enc(&server)),
        format!("/_matrix/media/v3/download/{}/{id}", enc(&server)),
        // Here now: served without asking Synapse.
        local_only.clone(),
    ] {
        let (status, content_type, got) = get_bytes(&alice, &path).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&got));
        assert_eq!(content_type, "application/octet-stream");
        assert!(got == theirs, "{path}: {} bytes differ", got.len());
    }

    let ours = awkward_bytes();
    let (server, id) = upload_media(&alice, &ours, "text/plain").await;
    assert_eq!(server, plugboard.server_name);
    let path = format!("/_matrix/client/v1/media/download/{}/{id}", enc(&server));
    let (status, _, got) = get_bytes(&bob, &path).await;
    assert_eq!(
        status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&got),
        synapse.log_tail()
    );
    assert!(got == ours, "{} bytes differ", got.len());

    // A file Synapse does not have: its 404 reaches the client as a Matrix error.
    let missing = format!(
        "/_matrix/client/v1/media/download/{}/NoSuchMediaHere",
        enc(&synapse.server_name)
    );
    alice.get(&missing).await.err(404, "M_NOT_FOUND");
}

/// A `w`×`h` PNG.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn thumbnails_of_the_other_servers_images_come_back_cropped_to_the_box() {
    let synapse = peer().await;
    let plugboard = TestServer::start_federating().await;
    let alice = plugboard.register("alice").await;
    let bob = synapse.user("bob").await;
    for (uploader, reader) in [(&bob, &alice), (&alice, &bob)] {
        let (server, id) = upload_media(uploader, &png(120, 80), "image/png").await;
        let path = format!(
            "/_matrix/client/v1/media/thumbnail/{}/{id}?width=32&height=32&method=crop",
            enc(&server)
        );
        let (status, content_type, got) = get_bytes(reader, &path).await;
        assert_eq!(
            status,
            200,
            "{path}: {}\n{}",
            String::from_utf8_lossy(&got),
            synapse.log_tail()
        );
        assert_eq!(content_type, "image/png", "{path}");
        let thumb = image::load_from_memory(&got).expect("a thumbnail that decodes");
        assert_eq!((thumb.width(), thumb.height()), (32, 32), "{path}");
    }
}

/// A signed GET on `server`'s federation listener as `as_server`, read as bytes:
/// (status, content type, body).
async fn signed_get_bytes(
    server: &TestServer,
    as_server: &Identity,
    uri: &str,
) -> (u16, String, Vec<u8>) {
    let auth = as_server.authorization("GET", uri, &server.server_name, None);
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}{uri}", server.federation()))
        .header("authorization", auth)
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, resp.bytes().await.unwrap().to_vec())
}

/// The two parts of a `multipart/mixed` answer, split by hand at its boundary:
/// (metadata part, file part), each headers and body.
fn two_parts(content_type: &str, body: &[u8]) -> [(String, Vec<u8>); 2] {
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("not multipart/mixed: {content_type}"));
    let delimiter = format!("\r\n--{boundary}");
    let mut text = b"\r\n".to_vec();
    text.extend_from_slice(body);
    let split = |hay: &[u8], from: usize| {
        hay[from..]
            .windows(delimiter.len())
            .position(|w| w == delimiter.as_bytes())
            .map(|i| i + from)
            .expect("a delimiter")
    };
    let first = split(&text, 0) + delimiter.len() + 2;
    let second = split(&text, first);
    let third = split(&text, second + delimiter.len());
    assert_eq!(&text[third + delimiter.len()..], b"--\r\n");
    let part = |bytes: &[u8]| {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8(bytes[..end].to_vec()).unwrap(),
            bytes[end + 4..].to_vec(),
        )
    };
    [
        part(&text[first..second]),
        part(&text[second + delimiter.len() + 2..third]),
    ]
}

#[tokio::test]
async fn media_is_served_to_other_servers_as_the_specs_two_parts() {
    let a = TestServer::start_federating().await;
    let b = TestServer::start_federating().await;
    let alice = a.register("alice").await;
    let bytes = awkward_bytes();
    let (_, id) = upload_media(&alice, &bytes, "application/x-awkward").await;
    let (status, content_type, body) = signed_get_bytes(
        &a,
        &Identity::of(&b),
        &format!("/_matrix/federation/v1/media/download/{id}"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let [(meta_head, meta), (file_head, file)] = two_parts(&content_type, &body);
    assert_eq!(meta_head, "Content-Type: application/json");
    assert_eq!(serde_json::from_slice::<Value>(&meta).unwrap(), json!({}));
    assert!(
        file_head.starts_with("Content-Type: application/x-awkward\r\n"),
        "{file_head}"
    );
    assert!(
        file_head.contains("filename*=utf-8''notes%2Ebin"),
        "{file_head}"
    );
    assert!(file == bytes, "{} bytes differ", file.len());

    let (_, id) = upload_media(&alice, &png(120, 80), "image/png").await;
    let (status, content_type, body) = signed_get_bytes(
        &a,
        &Identity::of(&b),
        &format!("/_matrix/federation/v1/media/thumbnail/{id}?width=32&height=32&method=crop"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let [_, (file_head, file)] = two_parts(&content_type, &body);
    assert_eq!(file_head, "Content-Type: image/png");
    let thumb = image::load_from_memory(&file).expect("a thumbnail that decodes");
    assert_eq!((thumb.width(), thumb.height()), (32, 32));
}
