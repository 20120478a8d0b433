//! The media repository: uploads stored as files under `data_dir/media` with their content
//! type and file name, downloads by `mxc://` URI, and PNG / JPEG thumbnails (scale or crop).

use std::io::Cursor;
use std::path::PathBuf;

use image::imageops::FilterType;
use image::ImageFormat;

use super::keys::signing::random_alnum;
use super::{now_ms, Error, Result};
use crate::storage::Storage;

pub struct MediaService {
    storage: Storage,
    dir: PathBuf,
    server_name: String,
    pub max_upload_bytes: usize,
}

/// A stored file as a download answers it.
pub struct Media {
    pub content_type: String,
    pub filename: Option<String>,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbnailMethod {
    Scale,
    Crop,
}

/// Thumbnails are at most this large on a side, whatever is asked.
const MAX_THUMBNAIL_SIDE: u32 = 1600;

impl MediaService {
    pub fn new(
        storage: Storage,
        dir: PathBuf,
        server_name: String,
        max_upload_bytes: usize,
    ) -> Self {
        MediaService {
            storage,
            dir,
            server_name,
            max_upload_bytes,
        }
    }

    /// Stores an upload and answers its `mxc://` URI. The file is written and synced before
    /// its row is, so a row never names a missing file.
    pub async fn upload(
        &self,
        uploader: &str,
        content_type: Option<&str>,
        filename: Option<&str>,
        bytes: &[u8],
    ) -> Result<String> {
        if bytes.len() > self.max_upload_bytes {
            return Err(Error::TooLarge(format!(
                "the upload is {} bytes; the limit is {}",
                bytes.len(),
                self.max_upload_bytes
            )));
        }
        if filename.is_some_and(|f| f.len() > 255 || f.contains('/') || f.contains('\0')) {
            return Err(Error::InvalidParam("invalid file name".into()));
        }
        let media_id = random_alnum(24);
        let path = self.dir.join(&media_id);
        let data = bytes.to_vec();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&data)?;
            f.sync_all()
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(format!("writing media: {e}")))?;
        let content_type = content_type
            .filter(|c| !c.is_empty())
            .unwrap_or("application/octet-stream");
        self.storage
            .insert_media(
                &media_id,
                content_type,
                filename,
                bytes.len() as i64,
                uploader,
                now_ms(),
            )
            .await?;
        Ok(format!("mxc://{}/{media_id}", self.server_name))
    }

    pub async fn download(&self, server: &str, media_id: &str) -> Result<Media> {
        let not_found = || Error::NotFound("media not found".into());
        if server != self.server_name || !media_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(not_found());
        }
        let row = self.storage.media(media_id).await?.ok_or_else(not_found)?;
        let bytes = tokio::fs::read(self.dir.join(media_id))
            .await
            .map_err(|_| not_found())?;
        Ok(Media {
            content_type: row.content_type,
            filename: row.filename,
            bytes,
        })
    }

    /// A thumbnail of a PNG or JPEG upload, in the upload's format.
    pub async fn thumbnail(
        &self,
        server: &str,
        media_id: &str,
        width: u32,
        height: u32,
        method: ThumbnailMethod,
    ) -> Result<Media> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidParam(
                "width and height must be positive".into(),
            ));
        }
        let original = self.download(server, media_id).await?;
        let format = match original.content_type.as_str() {
            "image/png" => ImageFormat::Png,
            "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
            other => {
                return Err(Error::NotFound(format!("no thumbnails for {other}")));
            }
        };
        let (w, h) = (
            width.min(MAX_THUMBNAIL_SIDE),
            height.min(MAX_THUMBNAIL_SIDE),
        );
        let bytes = tokio::task::spawn_blocking(move || -> std::result::Result<Vec<u8>, String> {
            let img = image::load_from_memory_with_format(&original.bytes, format)
                .map_err(|e| e.to_string())?;
            let thumb = match method {
                ThumbnailMethod::Scale => {
                    if img.width() <= w && img.height() <= h {
                        img
                    } else {
                        img.resize(w, h, FilterType::Triangle)
                    }
                }
                ThumbnailMethod::Crop => img.resize_to_fill(w, h, FilterType::Triangle),
            };
            let mut out = Cursor::new(Vec::new());
            let thumb = if format == ImageFormat::Jpeg {
                image::DynamicImage::ImageRgb8(thumb.to_rgb8())
            } else {
                thumb
            };
            thumb
                .write_to(&mut out, format)
                .map_err(|e| e.to_string())?;
            Ok(out.into_inner())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::InvalidParam(format!("the media is not a readable image: {e}")))?;
        Ok(Media {
            content_type: if format == ImageFormat::Png {
                "image/png".into()
            } else {
                "image/jpeg".into()
            },
            filename: None,
            bytes,
        })
    }
}
