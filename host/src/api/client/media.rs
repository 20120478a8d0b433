//! The media repository: upload, download (optionally under a file name), thumbnail, config.
//! Mounted under `/_matrix/media/{v3,r0}` and, behind authentication, `/_matrix/client/v1/media`.
//! Upload bodies go to the media service as a stream and downloads come from the file as a
//! stream: neither is held whole in memory. Another server's media is fetched over federation
//! the first time it is asked for.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json as Reply;
use http_body_util::{BodyDataStream, BodyExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::api::error::{ApiResult, MatrixError};
use crate::api::extract::{session, Auth, ClientIp, Path, Query};
use crate::api::AppState;
use crate::service::media::ThumbnailMethod;
use crate::service::ratelimit::Action;
use crate::service::Error;

/// The authenticated media paths refuse requests without a valid token.
pub(crate) async fn require_auth(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, MatrixError> {
    let (parts, body) = req.into_parts();
    session(&parts, &s).await?;
    Ok(next.run(Request::from_parts(parts, body)).await)
}

#[derive(Deserialize)]
pub(crate) struct UploadQuery {
    filename: Option<String>,
}

/// POST /upload
///
/// Everything that can refuse an upload without its body (the token, the rate limit, a
/// declared length past the limit or the quota, the user's uploads in progress) does so
/// before a byte of it is read.
pub(crate) async fn upload(
    State(s): State<AppState>,
    Auth(session): Auth,
    ClientIp(ip): ClientIp,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Reply<Value>> {
    s.ratelimit
        .check_request(Action::MediaUpload, &session, &ip)?;
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let permit = s
        .media
        .begin_upload(&session.user_id, q.filename.as_deref(), declared_len)
        .await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body = req.into_body().map_err(std::io::Error::other);
    let uri = s
        .media
        .upload_from(
            permit,
            content_type,
            StreamReader::new(BodyDataStream::new(body)),
        )
        .await?;
    Ok(Reply(json!({ "content_uri": uri })))
}

/// GET /config
pub(crate) async fn config(State(s): State<AppState>) -> Reply<Value> {
    Reply(json!({ "m.upload.size": s.media.max_upload_bytes }))
}

/// A stored file's response: its body, type, and a disposition with `filename`, else its
/// stored name.
fn file_response(
    body: Body,
    content_type: &str,
    stored_name: Option<String>,
    filename: Option<&str>,
) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let name = filename.map(str::to_string).or(stored_name);
    let inline = content_type.starts_with("image/")
        || content_type.starts_with("audio/")
        || content_type.starts_with("video/")
        || content_type == "text/plain";
    let disposition = if inline { "inline" } else { "attachment" };
    let value = match name {
        Some(n) => format!(
            "{disposition}; filename*=utf-8''{}",
            percent_encoding::utf8_percent_encode(&n, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => disposition.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"),
    );
    resp
}

#[derive(Deserialize)]
pub(crate) struct DownloadQuery {
    /// `false`: another server's file only if it is here already (the legacy paths' flag).
    allow_remote: Option<bool>,
}

/// A download, read from the file as it is sent.
async fn stream_file(
    s: &AppState,
    server: &str,
    media_id: &str,
    filename: Option<&str>,
    q: DownloadQuery,
) -> ApiResult<Response> {
    let media = if q.allow_remote == Some(false) {
        s.media.open(server, media_id).await?
    } else {
        s.open_media(server, media_id).await?
    };
    let body = Body::from_stream(ReaderStream::with_capacity(media.file, 64 * 1024));
    let mut resp = file_response(body, &media.content_type, media.filename, filename);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(media.size));
    Ok(resp)
}

/// GET /download/{serverName}/{mediaId}
pub(crate) async fn download(
    State(s): State<AppState>,
    Path((server, media_id)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult<Response> {
    stream_file(&s, &server, &media_id, None, q).await
}

/// GET /download/{serverName}/{mediaId}/{fileName}
pub(crate) async fn download_named(
    State(s): State<AppState>,
    Path((server, media_id, filename)): Path<(String, String, String)>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult<Response> {
    stream_file(&s, &server, &media_id, Some(&filename), q).await
}

#[derive(Deserialize)]
pub(crate) struct ThumbnailQuery {
    width: u32,
    height: u32,
    method: Option<String>,
}

/// GET /thumbnail/{serverName}/{mediaId}
pub(crate) async fn thumbnail(
    State(s): State<AppState>,
    Path((server, media_id)): Path<(String, String)>,
    Query(q): Query<ThumbnailQuery>,
) -> ApiResult<Response> {
    let method = match q.method.as_deref() {
        None | Some("scale") => ThumbnailMethod::Scale,
        Some("crop") => ThumbnailMethod::Crop,
        Some(other) => {
            return Err(Error::InvalidParam(format!("unknown thumbnail method '{other}'")).into())
        }
    };
    let thumb = s
        .media_thumbnail(&server, &media_id, q.width, q.height, method)
        .await?;
    Ok(file_response(
        Body::from(thumb.bytes),
        &thumb.content_type,
        None,
        None,
    ))
}
