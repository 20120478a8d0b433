//! The media repository: upload, download (optionally under a file name), thumbnail, config.
//! Mounted under `/_matrix/media/{v3,r0}` and, behind authentication, `/_matrix/client/v1/media`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::{ApiResult, MatrixError};
use crate::api::extract::{read_body, session, Auth, Path, Query};
use crate::api::AppState;
use crate::service::media::{Media, ThumbnailMethod};
use crate::service::Error;

/// The authenticated media paths refuse requests without a valid token.
pub async fn require_auth(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, MatrixError> {
    let (parts, body) = req.into_parts();
    session(&parts, &s).await?;
    Ok(next.run(Request::from_parts(parts, body)).await)
}

#[derive(Deserialize)]
pub struct UploadQuery {
    filename: Option<String>,
}

/// POST /upload
pub async fn upload(
    State(s): State<AppState>,
    Auth(session): Auth,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Reply<Value>> {
    let bytes = read_body(req, s.media.max_upload_bytes).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let uri = s
        .media
        .upload(
            &session.user_id,
            content_type,
            q.filename.as_deref(),
            &bytes,
        )
        .await?;
    Ok(Reply(json!({ "content_uri": uri })))
}

/// GET /config
pub async fn config(State(s): State<AppState>) -> Reply<Value> {
    Reply(json!({ "m.upload.size": s.media.max_upload_bytes }))
}

fn file_response(media: Media, filename: Option<&str>) -> Response {
    let mut resp = media.bytes.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&media.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let name = filename.map(str::to_string).or(media.filename);
    let inline = media.content_type.starts_with("image/")
        || media.content_type.starts_with("audio/")
        || media.content_type.starts_with("video/")
        || media.content_type == "text/plain";
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

/// GET /download/{serverName}/{mediaId}
pub async fn download(
    State(s): State<AppState>,
    Path((server, media_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let media = s.media.download(&server, &media_id).await?;
    Ok(file_response(media, None))
}

/// GET /download/{serverName}/{mediaId}/{fileName}
pub async fn download_named(
    State(s): State<AppState>,
    Path((server, media_id, filename)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let media = s.media.download(&server, &media_id).await?;
    Ok(file_response(media, Some(&filename)))
}

#[derive(Deserialize)]
pub struct ThumbnailQuery {
    width: u32,
    height: u32,
    method: Option<String>,
}

/// GET /thumbnail/{serverName}/{mediaId}
pub async fn thumbnail(
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
    let media = s
        .media
        .thumbnail(&server, &media_id, q.width, q.height, method)
        .await?;
    Ok(file_response(media, None))
}
