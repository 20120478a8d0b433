//! This server's media for other servers: `/media/download/{mediaId}` and
//! `/media/thumbnail/{mediaId}`, each a `multipart/mixed` answer of two parts, the JSON
//! metadata (`{}`) and the file with its type and disposition, as the spec has them.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Signed;
use crate::api::error::ApiResult;
use crate::api::extract::{Path, Query};
use crate::api::AppState;
use crate::service::keys::signing::random_alnum;
use crate::service::media::{Media, ThumbnailMethod};
use crate::service::Error;

/// `media` as the spec's two parts, and the content type that names their boundary.
fn multipart(media: Media) -> Response {
    let boundary = random_alnum(32);
    let mut body = Vec::with_capacity(media.bytes.len() + 512);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(format!("Content-Type: {}\r\n", media.content_type).as_bytes());
    if let Some(name) = &media.filename {
        let encoded =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        body.extend_from_slice(
            format!("Content-Disposition: attachment; filename*=utf-8''{encoded}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(&media.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut resp = Body::from(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// GET /_matrix/federation/v1/media/download/{mediaId}
pub(crate) async fn download(
    State(s): State<AppState>,
    Path(media_id): Path<String>,
    signed: Signed,
) -> ApiResult<Response> {
    tracing::debug!(origin = %signed.origin, media = %media_id, "media asked over federation");
    Ok(multipart(s.media_for_server(&media_id).await?))
}

#[derive(Deserialize)]
pub(crate) struct ThumbnailQuery {
    width: u32,
    height: u32,
    method: Option<String>,
}

/// GET /_matrix/federation/v1/media/thumbnail/{mediaId}
pub(crate) async fn thumbnail(
    State(s): State<AppState>,
    Path(media_id): Path<String>,
    Query(q): Query<ThumbnailQuery>,
    signed: Signed,
) -> ApiResult<Response> {
    tracing::debug!(origin = %signed.origin, media = %media_id, "thumbnail asked over federation");
    let method = match q.method.as_deref() {
        None | Some("scale") => ThumbnailMethod::Scale,
        Some("crop") => ThumbnailMethod::Crop,
        Some(other) => {
            return Err(Error::InvalidParam(format!("unknown thumbnail method '{other}'")).into())
        }
    };
    let server = s.server_name().to_string();
    let thumb = s
        .media
        .thumbnail(&server, &media_id, q.width, q.height, method)
        .await?;
    Ok(multipart(thumb))
}
