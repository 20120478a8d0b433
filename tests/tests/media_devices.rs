//! The media repository (upload, download, thumbnails, config, limits) and accounts' devices
//! and sessions (login, logout, devices with user-interactive auth, discovery, CORS).

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use plugboard_tests::{enc, Client, Reply, TestServer, WAIT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A raw HTTP response: status, headers, bytes.
struct Raw {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .expect("ASCII header")
            .to_string()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    fn err(&self, status: u16, errcode: &str) {
        let body = self.json();
        assert_eq!(self.status.as_u16(), status, "body: {body}");
        assert_eq!(body["errcode"], errcode, "body: {body}");
    }
}

/// GET `path` (absolute, from the server root) with an optional bearer token.
async fn get_raw(c: &Client, path: &str, token: Option<&str>) -> Raw {
    let mut req = c.http.get(format!("{}{path}", c.base)).timeout(WAIT);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request sent");
    Raw {
        status: resp.status(),
        headers: resp.headers().clone(),
        bytes: resp.bytes().await.expect("body").to_vec(),
    }
}

/// Uploads `bytes` to `path` (an upload endpoint, with its query); answers `(server, id)`.
async fn upload(c: &Client, path: &str, content_type: &str, bytes: Vec<u8>) -> (String, String) {
    let body = c.raw(Method::POST, path, content_type, bytes).await.ok();
    let uri = body["content_uri"].as_str().expect("content_uri");
    let rest = uri.strip_prefix("mxc://").expect("an mxc URI");
    let (server, id) = rest.split_once('/').expect("mxc://server/id");
    assert!(!id.is_empty() && !id.contains('/'), "{uri}");
    (server.to_string(), id.to_string())
}

/// Decodes `filename*=utf-8''…` or `filename="…"` of a content-disposition.
fn disposition_filename(value: &str) -> Option<String> {
    for part in value.split(';').map(str::trim) {
        if let Some(v) = part.strip_prefix("filename*=") {
            let encoded = v.split_once("''").map(|(_, e)| e).unwrap_or(v);
            return Some(percent_decode(encoded));
        }
    }
    for part in value.split(';').map(str::trim) {
        if let Some(v) = part.strip_prefix("filename=") {
            return Some(v.trim_matches('"').to_string());
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex digit"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 file name")
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| {
        Rgba([(x * 255 / w) as u8, (y * 255 / h) as u8, 128, 255])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 200]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg)
        .expect("encode JPEG");
    out.into_inner()
}

/// Fetches a thumbnail and answers its decoded size; checks its type and format.
async fn thumbnail_size(
    c: &Client,
    prefix: &str,
    server: &str,
    id: &str,
    query: &str,
    want_type: &str,
    want_format: ImageFormat,
) -> (u32, u32) {
    let r = get_raw(
        c,
        &format!("{prefix}/thumbnail/{server}/{id}?{query}"),
        c.token.as_deref(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(r.header("content-type"), want_type);
    assert_eq!(
        image::guess_format(&r.bytes).expect("an image"),
        want_format,
        "the thumbnail's bytes are {want_type}"
    );
    let img = image::load_from_memory(&r.bytes).expect("decodes");
    (img.width(), img.height())
}

/// Logs in with the password "password" and the given identifier; answers the client or the
/// error reply.
async fn login_as(server: &TestServer, user: &str, password: &str) -> Result<Client, Reply> {
    let mut c = server.client();
    let r = c
        .post(
            "/login",
            json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
                "initial_device_display_name": "test device",
            }),
        )
        .await;
    if r.status != StatusCode::OK {
        return Err(r);
    }
    c.token = Some(r.body["access_token"].as_str().expect("token").to_string());
    c.user_id = r.body["user_id"].as_str().expect("user_id").to_string();
    c.device_id = r.body["device_id"].as_str().expect("device_id").to_string();
    Ok(c)
}

async fn login(server: &TestServer, user: &str) -> Client {
    login_as(server, user, "password")
        .await
        .unwrap_or_else(|r| panic!("login failed: {r:?}"))
}

async fn device_ids(c: &Client) -> Vec<String> {
    let mut ids: Vec<String> = c.get("/devices").await.ok()["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["device_id"].as_str().expect("device_id").to_string())
        .collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// Media
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_upload_downloads_with_the_same_bytes_type_and_file_name() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes = b"hello media\nsecond line\n".to_vec();
    let (host, id) = upload(
        &alice,
        "/_matrix/media/v3/upload?filename=notes.txt",
        "text/plain",
        bytes.clone(),
    )
    .await;
    assert_eq!(host, "localhost");

    // The unauthenticated v3 download needs no token.
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, bytes);
    assert_eq!(r.header("content-type"), "text/plain");
    let cd = r.header("content-disposition");
    assert_eq!(
        disposition_filename(&cd).as_deref(),
        Some("notes.txt"),
        "{cd}"
    );

    // A name in the path wins over the stored one.
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}/other%20name.txt"),
        None,
    )
    .await;
    assert_eq!(r.bytes, bytes);
    let cd = r.header("content-disposition");
    assert_eq!(
        disposition_filename(&cd).as_deref(),
        Some("other name.txt"),
        "{cd}"
    );

    // A file name that needs encoding, and a type that is not shown inline.
    let pdf = b"%PDF-1.4 not really".to_vec();
    let (host, id) = upload(
        &alice,
        &format!(
            "/_matrix/media/v3/upload?filename={}",
            enc("résumé 2015.pdf")
        ),
        "application/pdf",
        pdf.clone(),
    )
    .await;
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.bytes, pdf);
    assert_eq!(r.header("content-type"), "application/pdf");
    let cd = r.header("content-disposition");
    assert!(cd.starts_with("attachment"), "{cd}");
    assert_eq!(
        disposition_filename(&cd).as_deref(),
        Some("résumé 2015.pdf"),
        "{cd}"
    );

    // Without a file name, the disposition names none.
    let (host, id) = upload(
        &alice,
        "/_matrix/media/v3/upload",
        "application/octet-stream",
        vec![0, 1, 2, 255],
    )
    .await;
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.bytes, vec![0, 1, 2, 255]);
    assert_eq!(disposition_filename(&r.header("content-disposition")), None);
}

#[tokio::test]
async fn authenticated_media_needs_a_token_and_serves_the_same_bytes() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let (host, id) = upload(
        &alice,
        "/_matrix/client/v1/media/upload?filename=blob.bin",
        "application/x-custom",
        bytes.clone(),
    )
    .await;
    let path = format!("/_matrix/client/v1/media/download/{host}/{id}");

    get_raw(&alice, &path, None)
        .await
        .err(401, "M_MISSING_TOKEN");
    get_raw(&alice, &path, Some("pb_not_a_token"))
        .await
        .err(401, "M_UNKNOWN_TOKEN");

    // Any user may download, not just the uploader.
    let r = get_raw(&bob, &path, bob.token.as_deref()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, bytes);
    assert_eq!(r.header("content-type"), "application/x-custom");
    let cd = r.header("content-disposition");
    assert_eq!(
        disposition_filename(&cd).as_deref(),
        Some("blob.bin"),
        "{cd}"
    );

    // The same file on the v3 path, and a v3 upload on the v1 path.
    let r = get_raw(
        &bob,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.bytes, bytes);
    let (host2, id2) = upload(
        &bob,
        "/_matrix/media/v3/upload",
        "text/plain",
        b"v3".to_vec(),
    )
    .await;
    let r = get_raw(
        &alice,
        &format!("/_matrix/client/v1/media/download/{host2}/{id2}"),
        alice.token.as_deref(),
    )
    .await;
    assert_eq!(r.bytes, b"v3");

    // Uploading needs a token too.
    let anonymous = server.client();
    anonymous
        .raw(
            Method::POST,
            "/_matrix/media/v3/upload",
            "text/plain",
            b"x".to_vec(),
        )
        .await
        .err(401, "M_MISSING_TOKEN");
    anonymous
        .raw(
            Method::POST,
            "/_matrix/client/v1/media/upload",
            "text/plain",
            b"x".to_vec(),
        )
        .await
        .err(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn png_thumbnails_scale_within_the_box_and_crop_to_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let (host, id) = upload(
        &alice,
        "/_matrix/media/v3/upload?filename=wide.png",
        "image/png",
        png(200, 100),
    )
    .await;
    let v3 = "/_matrix/media/v3";
    let png_fmt = ImageFormat::Png;

    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=50&height=50&method=scale",
        "image/png",
        png_fmt,
    )
    .await;
    assert!(w <= 50 && h <= 50, "{w}x{h} fits 50x50");
    assert_eq!((w, h), (50, 25), "scale keeps the 2:1 aspect");

    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=64&height=64&method=scale",
        "image/png",
        png_fmt,
    )
    .await;
    assert_eq!((w, h), (64, 32));

    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=40&height=40&method=crop",
        "image/png",
        png_fmt,
    )
    .await;
    assert_eq!((w, h), (40, 40), "crop is exactly the box");

    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=30&height=60&method=crop",
        "image/png",
        png_fmt,
    )
    .await;
    assert_eq!((w, h), (30, 60));

    // The authenticated path serves the same thumbnails.
    let (w, h) = thumbnail_size(
        &alice,
        "/_matrix/client/v1/media",
        &host,
        &id,
        "width=50&height=50&method=scale",
        "image/png",
        png_fmt,
    )
    .await;
    assert_eq!((w, h), (50, 25));
    get_raw(
        &alice,
        &format!("/_matrix/client/v1/media/thumbnail/{host}/{id}?width=50&height=50"),
        None,
    )
    .await
    .err(401, "M_MISSING_TOKEN");

    get_raw(
        &alice,
        &format!("{v3}/thumbnail/{host}/{id}?width=50&height=50&method=squash"),
        None,
    )
    .await
    .err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn jpeg_thumbnails_scale_within_the_box_and_crop_to_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let (host, id) = upload(
        &alice,
        "/_matrix/media/v3/upload?filename=tall.jpg",
        "image/jpeg",
        jpeg(120, 180),
    )
    .await;
    let v3 = "/_matrix/media/v3";
    let jpg = ImageFormat::Jpeg;

    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=60&height=60&method=scale",
        "image/jpeg",
        jpg,
    )
    .await;
    assert!(w <= 60 && h <= 60, "{w}x{h} fits 60x60");
    assert_eq!((w, h), (40, 60), "scale keeps the 2:3 aspect");

    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=32&height=32&method=crop",
        "image/jpeg",
        jpg,
    )
    .await;
    assert_eq!((w, h), (32, 32));

    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=90&height=30&method=crop",
        "image/jpeg",
        jpg,
    )
    .await;
    assert_eq!((w, h), (90, 30));

    // The original is still served whole.
    let r = get_raw(&alice, &format!("{v3}/download/{host}/{id}"), None).await;
    let img = image::load_from_memory(&r.bytes).expect("decodes");
    assert_eq!((img.width(), img.height()), (120, 180));
}

#[tokio::test]
async fn the_media_config_names_the_upload_limit() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let v3 = get_raw(&alice, "/_matrix/media/v3/config", None).await;
    assert_eq!(v3.status, StatusCode::OK);
    assert_eq!(v3.json()["m.upload.size"], 50 * 1024 * 1024);
    let v1 = get_raw(
        &alice,
        "/_matrix/client/v1/media/config",
        alice.token.as_deref(),
    )
    .await;
    assert_eq!(v1.json(), v3.json());
    get_raw(&alice, "/_matrix/client/v1/media/config", None)
        .await
        .err(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_with_m_too_large() {
    let server = TestServer::start_with(|c| c.media.max_upload_bytes = 1000).await;
    let alice = server.register("alice").await;
    let config = get_raw(&alice, "/_matrix/media/v3/config", None).await;
    assert_eq!(config.json()["m.upload.size"], 1000);

    alice
        .raw(
            Method::POST,
            "/_matrix/media/v3/upload",
            "application/octet-stream",
            vec![7; 1001],
        )
        .await
        .err(413, "M_TOO_LARGE");
    alice
        .raw(
            Method::POST,
            "/_matrix/client/v1/media/upload",
            "application/octet-stream",
            vec![7; 5000],
        )
        .await
        .err(413, "M_TOO_LARGE");
    // Exactly the limit is fine.
    let (host, id) = upload(
        &alice,
        "/_matrix/media/v3/upload",
        "application/octet-stream",
        vec![7; 1000],
    )
    .await;
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.bytes.len(), 1000);
}

#[tokio::test]
async fn active_content_downloads_as_a_sandboxed_attachment() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let html = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let (host, id) = upload(
        &alice,
        "/_matrix/media/v3/upload?filename=x.html",
        "text/html",
        html.clone(),
    )
    .await;
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.bytes, html);
    assert!(r.header("content-disposition").starts_with("attachment"));
    let csp = r.header("content-security-policy");
    assert!(
        csp.contains("sandbox") && csp.contains("script-src 'none'"),
        "{csp}"
    );

    // An image is shown inline.
    let (host, id) = upload(&alice, "/_matrix/media/v3/upload", "image/png", png(4, 4)).await;
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert!(r.header("content-disposition").starts_with("inline"));
}

#[tokio::test]
async fn empty_uploads_and_extreme_thumbnail_shapes_work() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let (host, id) = upload(&alice, "/_matrix/media/v3/upload", "text/plain", Vec::new()).await;
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.bytes.is_empty());

    // A very wide strip scaled into a small box keeps at least one row.
    let (host, id) = upload(&alice, "/_matrix/media/v3/upload", "image/png", png(600, 3)).await;
    let v3 = "/_matrix/media/v3";
    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=30&height=30&method=scale",
        "image/png",
        ImageFormat::Png,
    )
    .await;
    assert!(w <= 30 && h <= 30 && w >= 1 && h >= 1, "{w}x{h}");
    let (w, h) = thumbnail_size(
        &alice,
        v3,
        &host,
        &id,
        "width=20&height=20&method=crop",
        "image/png",
        ImageFormat::Png,
    )
    .await;
    assert_eq!((w, h), (20, 20));
    get_raw(
        &alice,
        &format!("{v3}/thumbnail/{host}/{id}?width=0&height=10"),
        None,
    )
    .await
    .err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn unknown_media_is_m_not_found() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let token = alice.token.as_deref();
    for path in [
        "/_matrix/media/v3/download/localhost/NoSuchMediaId123",
        "/_matrix/media/v3/download/localhost/NoSuchMediaId123/name.txt",
        "/_matrix/media/v3/download/elsewhere.example/abc",
        "/_matrix/media/v3/download/localhost/..%2F..%2Fplugboard.sqlite",
        "/_matrix/media/v3/download/localhost/..%2Fsigning.key",
        "/_matrix/media/v3/thumbnail/localhost/NoSuchMediaId123?width=10&height=10",
        "/_matrix/client/v1/media/download/localhost/NoSuchMediaId123",
        "/_matrix/client/v1/media/thumbnail/localhost/NoSuchMediaId123?width=10&height=10",
    ] {
        let r = get_raw(&alice, path, token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {:?}", r.json());
        assert_eq!(r.json()["errcode"], "M_NOT_FOUND", "{path}");
    }
}

/// Files in the media directory (stored uploads) and in `media/.partial` (uploads being
/// received).
fn media_files(server: &TestServer) -> (usize, usize) {
    let count = |dir: std::path::PathBuf| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
                    .count()
            })
            .unwrap_or(0)
    };
    let media = server.data_dir.path().join("media");
    (count(media.clone()), count(media.join(".partial")))
}

/// Waits until `media_files` answers `want`.
async fn wait_for_media_files(server: &TestServer, want: (usize, usize)) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while media_files(server) != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "media files are {:?}, not {want:?}",
            media_files(server)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An upload over a raw connection: the request head (with `Connection: close`), then
/// `body` (already framed: plain bytes after a `Content-Length`, or chunks).
async fn start_raw_upload(c: &Client, framing: &str, body: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = c.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n{framing}\r\n\r\n",
        c.token.as_deref().expect("a token")
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream.write_all(body).await.expect("send body");
    stream
}

/// Sends the rest of a raw upload and reads its answer: status and JSON body.
async fn finish_raw_upload(mut stream: tokio::net::TcpStream, rest: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(rest).await.expect("send the rest");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read the answer");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `bytes` in HTTP/1.1 chunks of `size`, with the last chunk.
fn chunked(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in bytes.chunks(size) {
        out.extend(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend(c);
        out.extend(b"\r\n");
    }
    out.extend(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn an_upload_past_the_quota_is_refused_with_m_forbidden_and_keeps_nothing() {
    let server = TestServer::start_with(|c| c.media.max_bytes_per_user = 3000).await;
    let alice = server.register("alice").await;
    let path = "/_matrix/media/v3/upload";
    let octets = "application/octet-stream";
    upload(&alice, path, octets, vec![1; 2000]).await;
    // A declared length past the quota is refused before the body is read.
    let refused = alice.raw(Method::POST, path, octets, vec![2; 1001]).await;
    refused.err(403, "M_FORBIDDEN");
    let message = refused.body["error"].as_str().unwrap();
    assert!(message.contains("quota"), "{message}");
    // A chunked body declares nothing: it is received, then refused before its row.
    let stream = start_raw_upload(&alice, "Transfer-Encoding: chunked", b"").await;
    let (status, body) = finish_raw_upload(stream, &chunked(&[3; 1500], 500)).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN")),
        "{body}"
    );
    wait_for_media_files(&server, (1, 0)).await;
    // Up to the quota exactly is fine; one byte more is not.
    upload(&alice, path, octets, vec![4; 1000]).await;
    alice
        .raw(Method::POST, path, octets, vec![5; 1])
        .await
        .err(403, "M_FORBIDDEN");
    // The quota is per user.
    let bob = server.register("bob").await;
    upload(&bob, path, octets, vec![6; 3000]).await;
    assert_eq!(media_files(&server), (3, 0));
}

#[tokio::test]
async fn a_users_uploads_past_max_concurrent_uploads_get_429_until_one_ends() {
    let server = TestServer::start_with(|c| c.media.max_concurrent_uploads = 2).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let length = "Content-Length: 100";
    // Two uploads in progress: each has sent ten of its hundred bytes.
    let first = start_raw_upload(&alice, length, &[1; 10]).await;
    wait_for_media_files(&server, (0, 1)).await;
    let second = start_raw_upload(&alice, length, &[2; 10]).await;
    wait_for_media_files(&server, (0, 2)).await;

    let path = "/_matrix/media/v3/upload";
    let busy = alice
        .raw(Method::POST, path, "text/plain", vec![3; 10])
        .await;
    busy.err(429, "M_LIMIT_EXCEEDED");
    assert!(
        busy.body["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "{}",
        busy.body
    );
    // Someone else's uploads are not held up.
    upload(&bob, path, "text/plain", vec![4; 10]).await;

    // One ends: alice may upload again.
    let (status, body) = finish_raw_upload(first, &[1; 90]).await;
    assert_eq!(status, 200, "{body}");
    upload(&alice, path, "text/plain", vec![5; 10]).await;
    // The other is abandoned: its file goes, and its place is free.
    drop(second);
    wait_for_media_files(&server, (3, 0)).await;
    let third = start_raw_upload(&alice, length, &[6; 10]).await;
    upload(&alice, path, "text/plain", vec![7; 10]).await;
    let (status, body) = finish_raw_upload(third, &[6; 90]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(media_files(&server), (5, 0));
}

#[tokio::test]
async fn a_chunked_upload_past_the_limit_is_m_too_large_and_keeps_nothing() {
    let server = TestServer::start_with(|c| c.media.max_upload_bytes = 1000).await;
    let alice = server.register("alice").await;
    let stream = start_raw_upload(&alice, "Transfer-Encoding: chunked", b"").await;
    let (status, body) = finish_raw_upload(stream, &chunked(&[7; 1800], 600)).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (413, Some("M_TOO_LARGE")),
        "{body}"
    );
    wait_for_media_files(&server, (0, 0)).await;
    // Exactly the limit, chunked, is stored.
    let stream = start_raw_upload(&alice, "Transfer-Encoding: chunked", b"").await;
    let (status, body) = finish_raw_upload(stream, &chunked(&[8; 1000], 300)).await;
    assert_eq!(status, 200, "{body}");
    let uri = body["content_uri"].as_str().expect("content_uri");
    let r = get_raw(
        &alice,
        &format!(
            "/_matrix/media/v3/download/{}",
            uri.trim_start_matches("mxc://")
        ),
        None,
    )
    .await;
    assert_eq!(r.bytes, vec![8; 1000]);
}

#[tokio::test]
async fn a_large_upload_downloads_whole_with_its_length() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let (host, id) = upload(
        &alice,
        "/_matrix/media/v3/upload",
        "video/mp4",
        bytes.clone(),
    )
    .await;
    for path in [
        format!("/_matrix/media/v3/download/{host}/{id}"),
        format!("/_matrix/media/v3/download/{host}/{id}/clip.mp4"),
    ] {
        let r = get_raw(&alice, &path, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-length"), bytes.len().to_string());
        assert_eq!(r.header("content-type"), "video/mp4");
        assert!(r.bytes == bytes, "{path} came back different");
    }
}

#[tokio::test]
async fn a_thumbnail_of_an_image_with_too_many_pixels_is_m_too_large() {
    let server = TestServer::start_with(|c| c.media.max_image_pixels = 1000).await;
    let alice = server.register("alice").await;
    let (host, id) = upload(&alice, "/_matrix/media/v3/upload", "image/png", png(40, 40)).await;
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/thumbnail/{host}/{id}?width=8&height=8"),
        None,
    )
    .await;
    r.err(413, "M_TOO_LARGE");
    // The image itself still downloads, and a smaller one gets its thumbnail.
    let r = get_raw(
        &alice,
        &format!("/_matrix/media/v3/download/{host}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let (host, id) = upload(&alice, "/_matrix/media/v3/upload", "image/png", png(30, 30)).await;
    let (w, h) = thumbnail_size(
        &alice,
        "/_matrix/media/v3",
        &host,
        &id,
        "width=8&height=8&method=crop",
        "image/png",
        ImageFormat::Png,
    )
    .await;
    assert_eq!((w, h), (8, 8));
}

// ---------------------------------------------------------------------------------------------
// Devices and sessions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn logging_in_twice_lists_two_devices_that_can_be_renamed() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let phone = login(&server, "alice").await;
    assert_ne!(alice.device_id, phone.device_id);
    let mut want = vec![alice.device_id.clone(), phone.device_id.clone()];
    want.sort();
    assert_eq!(device_ids(&alice).await, want);
    assert_eq!(device_ids(&phone).await, want);

    let one = alice
        .get(&format!("/devices/{}", enc(&phone.device_id)))
        .await
        .ok();
    assert_eq!(one["device_id"], phone.device_id.as_str());
    assert_eq!(one["display_name"], "test device");

    alice
        .put(
            &format!("/devices/{}", enc(&phone.device_id)),
            json!({"display_name": "Alice's phone"}),
        )
        .await
        .ok();
    let one = phone
        .get(&format!("/devices/{}", enc(&phone.device_id)))
        .await
        .ok();
    assert_eq!(one["display_name"], "Alice's phone");

    alice
        .put("/devices/NOSUCHDEVICE", json!({"display_name": "x"}))
        .await
        .err(404, "M_NOT_FOUND");
    // Another user's device is not yours to see.
    let bob = server.register("bob").await;
    bob.get(&format!("/devices/{}", enc(&phone.device_id)))
        .await
        .err(404, "M_NOT_FOUND");
    assert_eq!(device_ids(&bob).await, vec![bob.device_id.clone()]);
}

#[tokio::test]
async fn deleting_a_device_needs_the_password_and_revokes_its_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let phone = login(&server, "alice").await;
    let path = format!("/devices/{}", enc(&phone.device_id));

    let first = alice.delete(&path, json!({})).await;
    assert_eq!(first.status.as_u16(), 401, "{}", first.body);
    let flows = first.body["flows"].as_array().expect("flows");
    assert!(
        flows
            .iter()
            .any(|f| f["stages"] == json!(["m.login.password"])),
        "{}",
        first.body
    );
    let session = first.body["session"].as_str().expect("session").to_string();
    assert_eq!(device_ids(&alice).await.len(), 2, "nothing deleted yet");

    // A wrong password is another 401 of the same auth, with M_FORBIDDEN.
    let wrong = alice
        .delete(
            &path,
            json!({"auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "not it",
                "session": session,
            }}),
        )
        .await;
    assert_eq!(wrong.status.as_u16(), 401, "{}", wrong.body);
    assert_eq!(wrong.body["errcode"], "M_FORBIDDEN", "{}", wrong.body);
    assert!(wrong.body["flows"].is_array(), "{}", wrong.body);
    phone.get("/account/whoami").await.ok();

    alice
        .delete(
            &path,
            json!({"auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "password",
                "session": session,
            }}),
        )
        .await
        .ok();
    phone
        .get("/account/whoami")
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    assert_eq!(device_ids(&alice).await, vec![alice.device_id.clone()]);
    alice.get("/account/whoami").await.ok();
    alice.delete(&path, json!({})).await.err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn logout_revokes_one_token_and_logout_all_revokes_every_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let laptop = login(&server, "alice").await;
    let phone = login(&server, "alice").await;

    laptop.post("/logout", json!({})).await.ok();
    laptop
        .get("/account/whoami")
        .await
        .err(401, "M_UNKNOWN_TOKEN");
    alice.get("/account/whoami").await.ok();
    phone.get("/account/whoami").await.ok();
    assert!(!device_ids(&alice).await.contains(&laptop.device_id));

    phone.post("/logout/all", json!({})).await.ok();
    for c in [&alice, &phone] {
        c.get("/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
        c.get("/sync?timeout=0").await.err(401, "M_UNKNOWN_TOKEN");
    }
    // The password still works: a fresh login is a fresh, working session.
    let again = login(&server, "alice").await;
    assert_eq!(device_ids(&again).await, vec![again.device_id.clone()]);
    server
        .client()
        .get("/account/whoami")
        .await
        .err(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn delete_devices_removes_several_devices_after_user_interactive_auth() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let a = login(&server, "alice").await;
    let b = login(&server, "alice").await;
    let body = |auth: Value| json!({"devices": [a.device_id, b.device_id], "auth": auth});

    let first = alice.post("/delete_devices", body(Value::Null)).await;
    assert_eq!(first.status.as_u16(), 401, "{}", first.body);
    assert_eq!(
        first.body["flows"][0]["stages"],
        json!(["m.login.password"])
    );
    a.get("/account/whoami").await.ok();

    alice
        .post(
            "/delete_devices",
            body(json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "@alice:localhost"},
                "password": "password",
                "session": first.body["session"],
            })),
        )
        .await
        .ok();
    for c in [&a, &b] {
        c.get("/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    }
    assert_eq!(device_ids(&alice).await, vec![alice.device_id.clone()]);
}

#[tokio::test]
async fn logging_in_again_with_a_device_id_replaces_that_device_token() {
    let server = TestServer::start().await;
    server.register("alice").await;
    let body = json!({
        "type": "m.login.password", "user": "alice", "password": "password",
        "device_id": "MYPHONE",
    });
    let mut old = server.client();
    old.token = server.client().post("/login", body.clone()).await.ok()["access_token"]
        .as_str()
        .map(str::to_string);
    assert_eq!(
        old.get("/account/whoami").await.ok()["device_id"],
        "MYPHONE"
    );

    let mut new = server.client();
    let r = server.client().post("/login", body).await.ok();
    assert_eq!(r["device_id"], "MYPHONE");
    new.token = r["access_token"].as_str().map(str::to_string);
    assert_ne!(new.token, old.token);
    old.get("/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    new.get("/account/whoami").await.ok();
    let ids = device_ids(&new).await;
    assert_eq!(ids.iter().filter(|d| *d == "MYPHONE").count(), 1, "{ids:?}");
}

/// The token cache must not keep a token that a re-login replaced while requests with it were
/// in flight: each round uses the old token from 16 tasks while the device logs in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_replaced_while_in_use_stops_working() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let server = TestServer::start().await;
    server.register("alice").await;
    let mut still_working = Vec::new();
    for round in 0..10 {
        let body = json!({
            "type": "m.login.password", "user": "alice", "password": "password",
            "device_id": format!("BUSY{round}"),
        });
        let mut old = server.client();
        old.token = server.client().post("/login", body.clone()).await.ok()["access_token"]
            .as_str()
            .map(str::to_string);
        old.get("/account/whoami").await.ok();

        let stop = Arc::new(AtomicBool::new(false));
        let mut busy = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (c, stop) = (old.clone(), stop.clone());
            busy.spawn(async move {
                for _ in 0..2_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    c.get("/account/whoami").await;
                }
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        server.client().post("/login", body).await.ok();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(WAIT, async { while busy.join_next().await.is_some() {} })
            .await
            .expect("the busy tasks stopped");
        if old.get("/account/whoami").await.status != StatusCode::UNAUTHORIZED {
            still_working.push(round);
        }
    }
    assert!(
        still_working.is_empty(),
        "replaced tokens still work after rounds {still_working:?}"
    );
}

#[tokio::test]
async fn whoami_names_the_user_and_the_device_of_the_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let phone = login(&server, "alice").await;
    let me = alice.get("/account/whoami").await.ok();
    assert_eq!(me["user_id"], "@alice:localhost");
    assert_eq!(me["device_id"], alice.device_id.as_str());
    let me = phone.get("/account/whoami").await.ok();
    assert_eq!(me["device_id"], phone.device_id.as_str());
    // The token also works as a query parameter and on the r0 prefix.
    let token = phone.token.clone().expect("token");
    let r = server
        .client()
        .get(&format!(
            "/_matrix/client/r0/account/whoami?access_token={}",
            enc(&token)
        ))
        .await
        .ok();
    assert_eq!(r["device_id"], phone.device_id.as_str());
}

#[tokio::test]
async fn register_available_answers_for_free_taken_and_invalid_names() {
    let server = TestServer::start().await;
    server.register("alice").await;
    let c = server.client();
    assert_eq!(
        c.get("/register/available?username=newcomer").await.ok(),
        json!({"available": true})
    );
    c.get("/register/available?username=alice")
        .await
        .err(400, "M_USER_IN_USE");
    c.get(&format!(
        "/register/available?username={}",
        enc("not valid!")
    ))
    .await
    .err(400, "M_INVALID_USERNAME");
}

#[tokio::test]
async fn login_offers_the_password_flow_and_accepts_a_user_id_or_a_localpart() {
    let server = TestServer::start().await;
    server.register("alice").await;
    let flows = server.client().get("/login").await.ok();
    assert!(
        flows["flows"]
            .as_array()
            .expect("flows")
            .iter()
            .any(|f| f["type"] == "m.login.password"),
        "{flows}"
    );

    let by_id = login(&server, "@alice:localhost").await;
    let by_localpart = login(&server, "alice").await;
    assert_eq!(by_id.user_id, "@alice:localhost");
    assert_eq!(by_localpart.user_id, "@alice:localhost");
    assert_ne!(by_id.device_id, by_localpart.device_id);
    by_id.get("/account/whoami").await.ok();

    // The legacy `user` field works too.
    let r = server
        .client()
        .post(
            "/login",
            json!({"type": "m.login.password", "user": "alice", "password": "password"}),
        )
        .await
        .ok();
    assert_eq!(r["user_id"], "@alice:localhost");
    assert_eq!(r["home_server"], "localhost");
    assert!(r["access_token"].is_string() && r["device_id"].is_string());
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_m_forbidden() {
    let server = TestServer::start().await;
    server.register("alice").await;
    login_as(&server, "alice", "wrong")
        .await
        .err()
        .expect("refused")
        .err(403, "M_FORBIDDEN");
    login_as(&server, "@alice:localhost", "")
        .await
        .err()
        .expect("refused")
        .err(403, "M_FORBIDDEN");
    login_as(&server, "nobody", "password")
        .await
        .err()
        .expect("refused")
        .err(403, "M_FORBIDDEN");
    server
        .client()
        .post("/login", json!({"type": "m.login.token", "token": "x"}))
        .await
        .err(400, "M_UNKNOWN");
}

#[tokio::test]
async fn versions_well_known_and_capabilities_describe_the_server() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let c = server.client();

    let v = c.get("/_matrix/client/versions").await.ok();
    let versions: Vec<&str> = v["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|x| x.as_str().expect("string"))
        .collect();
    assert!(
        versions.contains(&"r0.6.1") && versions.contains(&"v1.1"),
        "{v}"
    );
    assert_eq!(
        v["unstable_features"]["org.matrix.msc3440.stable"], true,
        "{v}"
    );

    let wk = c.get("/.well-known/matrix/client").await.ok();
    let base_url = wk["m.homeserver"]["base_url"].as_str().expect("base_url");
    assert_eq!(base_url.trim_end_matches('/'), server.base);

    c.get("/capabilities").await.err(401, "M_MISSING_TOKEN");
    let caps = alice.get("/capabilities").await.ok();
    let rv = &caps["capabilities"]["m.room_versions"];
    let default = rv["default"].as_str().expect("default room version");
    assert_eq!(rv["available"][default], "stable", "{caps}");
    assert!(caps["capabilities"]["m.change_password"]["enabled"].is_boolean());
}

#[tokio::test]
async fn cors_headers_are_on_normal_responses_errors_and_preflights() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let http = &alice.http;
    let origin = "https://app.element.io";

    let r = http
        .get(format!("{}/_matrix/client/versions", server.base))
        .header("origin", origin)
        .timeout(WAIT)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    let acao = r
        .headers()
        .get("access-control-allow-origin")
        .expect("ACAO");
    assert!(acao == "*" || acao == origin, "{acao:?}");

    // An error carries them too, or the browser hides it from the client.
    let r = http
        .get(format!("{}/_matrix/client/v3/account/whoami", server.base))
        .header("origin", origin)
        .timeout(WAIT)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("access-control-allow-origin").is_some());

    let r = http
        .request(
            Method::OPTIONS,
            format!(
                "{}/_matrix/client/v3/rooms/!x:localhost/send/m.room.message/1",
                server.base
            ),
        )
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .timeout(WAIT)
        .send()
        .await
        .expect("sent");
    assert!(r.status().is_success(), "preflight: {}", r.status());
    let h = r.headers();
    let acao = h
        .get("access-control-allow-origin")
        .expect("ACAO on preflight");
    assert!(acao == "*" || acao == origin, "{acao:?}");
    let methods = h
        .get("access-control-allow-methods")
        .expect("allow-methods")
        .to_str()
        .expect("ASCII")
        .to_ascii_uppercase();
    for m in ["GET", "POST", "PUT", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = h
        .get("access-control-allow-headers")
        .expect("allow-headers")
        .to_str()
        .expect("ASCII")
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
}
