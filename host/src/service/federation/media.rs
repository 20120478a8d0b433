//! Media across servers. Another server's file asked for by a local client is fetched once
//! with `/_matrix/federation/v1/media/download/{mediaId}` (a `multipart/mixed` answer: JSON
//! metadata, then the file or a `Location` to fetch it from), kept, and served from then on
//! like a local one; its thumbnails are made here from the kept file. Our files are served to
//! other servers through the same repository.

use serde_json::Value;

use super::client::{path_segment, RawAnswer};
use super::FederationError;
use crate::service::media::{valid_media_id, Media, MediaFile, ThumbnailMethod};
use crate::service::{Error, Result, Services};

/// One part of a `multipart/mixed` body: its headers (names lowercased) and its bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The `boundary` parameter of a `multipart/mixed` content type.
fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The parts of a `multipart/mixed` body (RFC 2046): between `--boundary` delimiters, each
/// headers, an empty line, and the content; up to the closing `--boundary--`.
pub(crate) fn parse_multipart(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut at = find(body, &delimiter, 0)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(parts);
        }
        // The rest of the delimiter's line (transport padding), then the part.
        at = find(body, b"\r\n", at)? + 2;
        let next = find(body, &[b"\r\n".as_slice(), &delimiter].concat(), at)?;
        let part = &body[at..next];
        let (head, content) = match find(part, b"\r\n\r\n", 0) {
            Some(end) => (&part[..end], &part[end + 4..]),
            // No headers at all: the part starts with its empty line.
            None if part.starts_with(b"\r\n") => (&part[..0], &part[2..]),
            None => return None,
        };
        let headers = String::from_utf8_lossy(head)
            .split("\r\n")
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
            })
            .collect();
        parts.push(Part {
            headers,
            body: content.to_vec(),
        });
        at = next + 2 + delimiter.len();
    }
}

/// The file name a `Content-Disposition` names (`filename*=utf-8''…` or `filename="…"`).
fn disposition_filename(value: &str) -> Option<String> {
    value.split(';').find_map(|p| {
        let (name, v) = p.split_once('=')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                let encoded = v.trim().split_once("''").map_or(v.trim(), |(_, e)| e);
                percent_encoding::percent_decode_str(encoded)
                    .decode_utf8()
                    .ok()
                    .map(|s| s.into_owned())
            }
            "filename" => Some(v.trim().trim_matches('"').to_string()),
            _ => None,
        }
    })
}

fn bad_answer(server: &str, why: &str) -> Error {
    Error::Federation(FederationError::BadResponse {
        server: server.to_string(),
        why: why.to_string(),
    })
}

impl Services {
    /// `mxc://{server}/{media_id}` opened to be read: ours, or another server's fetched
    /// (once) and kept.
    pub(crate) async fn open_media(&self, server: &str, media_id: &str) -> Result<MediaFile> {
        if server != self.server_name() {
            self.fetch_remote_media(server, media_id).await?;
        }
        self.media.open(server, media_id).await
    }

    /// A thumbnail of `mxc://{server}/{media_id}`, another server's made from its kept file.
    pub(crate) async fn media_thumbnail(
        &self,
        server: &str,
        media_id: &str,
        width: u32,
        height: u32,
        method: ThumbnailMethod,
    ) -> Result<Media> {
        if server != self.server_name() {
            self.fetch_remote_media(server, media_id).await?;
        }
        self.media
            .thumbnail(server, media_id, width, height, method)
            .await
    }

    /// Fetches another server's file unless it is kept already.
    async fn fetch_remote_media(&self, server: &str, media_id: &str) -> Result<()> {
        if !valid_media_id(media_id) {
            return Err(Error::NotFound("media not found".into()));
        }
        if self.media.open_remote(server, media_id).await?.is_some() {
            return Ok(());
        }
        // Without federation, another server's media is simply not here.
        let Ok(client) = self.federation.client() else {
            return Err(Error::NotFound("media not found".into()));
        };
        let uri = format!(
            "/_matrix/federation/v1/media/download/{}",
            path_segment(media_id)
        );
        let answer = client.get_bytes(server, &uri).await?;
        let (content_type, filename, bytes) = self.media_part(server, answer).await?;
        self.media
            .keep_remote(server, media_id, &content_type, filename, &bytes)
            .await
    }

    /// The file of a federation media answer: (content type, file name, bytes).
    async fn media_part(
        &self,
        server: &str,
        answer: RawAnswer,
    ) -> Result<(String, Option<String>, Vec<u8>)> {
        let boundary = answer
            .content_type
            .as_deref()
            .and_then(boundary)
            .ok_or_else(|| bad_answer(server, "the media answer is not multipart/mixed"))?;
        let mut parts = parse_multipart(&answer.bytes, &boundary)
            .filter(|p| p.len() == 2)
            .ok_or_else(|| bad_answer(server, "the media answer is not two parts"))?;
        let file = parts.pop().expect("two parts");
        let metadata: Option<Value> = serde_json::from_slice(&parts[0].body).ok();
        if !metadata.is_some_and(|m| m.is_object()) {
            return Err(bad_answer(
                server,
                "the media metadata is not a JSON object",
            ));
        }
        if let Some(location) = file.header("location") {
            let fetched = self.federation.client()?.get_url(server, location).await?;
            let content_type = fetched
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into());
            return Ok((content_type, None, fetched.bytes));
        }
        let content_type = file
            .header("content-type")
            .unwrap_or("application/octet-stream")
            .to_string();
        let filename = file
            .header("content-disposition")
            .and_then(disposition_filename);
        Ok((content_type, filename, file.body))
    }

    /// GET /_matrix/federation/v1/media/download/{mediaId}: one of our files, whole.
    pub(crate) async fn media_for_server(&self, media_id: &str) -> Result<Media> {
        self.media.download(self.server_name(), media_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_part_answer_gives_its_metadata_and_its_file_byte_exact() {
        let file = b"\x00\x01binary\r\n--notquite\r\n";
        let mut body = b"--XyZ\r\nContent-Type: application/json\r\n\r\n{}\r\n--XyZ\r\n".to_vec();
        body.extend_from_slice(b"Content-Type: image/png\r\nContent-Disposition: inline; filename*=utf-8''a%20b.png\r\n\r\n");
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let ct = "multipart/mixed; boundary=\"XyZ\"";
        let parts = parse_multipart(&body, &boundary(ct).unwrap()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, b"{}");
        assert_eq!(parts[1].header("content-type"), Some("image/png"));
        assert_eq!(parts[1].body, file);
        let name = disposition_filename(parts[1].header("content-disposition").unwrap());
        assert_eq!(name.as_deref(), Some("a b.png"));
    }

    #[test]
    fn a_redirect_part_has_a_location_and_no_body() {
        let body = b"--b\r\n\r\n{}\r\n--b\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--b--";
        let parts = parse_multipart(body, "b").unwrap();
        assert_eq!(parts[0].body, b"{}");
        assert_eq!(parts[1].header("location"), Some("https://cdn.example/x"));
        assert!(parts[1].body.is_empty());
    }

    #[test]
    fn a_body_without_its_closing_delimiter_or_of_another_type_is_refused() {
        assert!(parse_multipart(b"--b\r\n\r\n{}\r\n", "b").is_none());
        assert!(boundary("application/json").is_none());
        assert!(boundary("multipart/mixed").is_none());
    }
}
