//! The media repository: uploads stored as files under `data_dir/media` with their content
//! type and file name, other servers' files kept once fetched ([`remote`]), downloads by
//! `mxc://` URI, and PNG / JPEG thumbnails (scale or crop).
//! An upload is streamed into a file under `media/.partial/` as it arrives (never held whole
//! in memory), synced, renamed into place and only then given its row, within the uploader's
//! quota; a user has a bounded number of uploads in progress at once. A download is read from
//! its file as it is sent.

mod remote;
mod thumbnail;

pub(crate) use self::remote::valid_media_id;

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use self::thumbnail::Refusal;
pub(crate) use self::thumbnail::ThumbnailMethod;
use super::keys::signing::random_alnum;
use super::{now_ms, Error, Result};
use crate::config::MediaConfig;
use crate::lock::lock;
use crate::storage::media::NewMedia;
use crate::storage::Storage;

pub(crate) struct MediaService {
    storage: Storage,
    dir: PathBuf,
    server_name: String,
    config: MediaConfig,
    pub(crate) max_upload_bytes: usize,
    /// Uploads in progress, by user; a user is removed when their last one ends.
    uploading: Arc<Mutex<HashMap<String, u32>>>,
    /// Thumbnails being made: each may decode up to `max_image_pixels`, so only as many at
    /// once as there are cores to make them.
    thumbnailing: Semaphore,
}

/// A stored file, whole in memory: a thumbnail, or what a plugin's `download-media` gets.
pub(crate) struct Media {
    pub(crate) content_type: String,
    pub(crate) filename: Option<String>,
    pub(crate) bytes: Vec<u8>,
}

/// A stored file opened for a download, to be read as it is sent.
pub(crate) struct MediaFile {
    pub(crate) content_type: String,
    pub(crate) filename: Option<String>,
    pub(crate) size: u64,
    pub(crate) file: tokio::fs::File,
}

/// A user's upload that may go ahead: its file name is valid and it holds one of the user's
/// places for uploads in progress, given back when it is dropped.
pub(crate) struct UploadPermit {
    uploader: String,
    filename: Option<String>,
    uploading: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for UploadPermit {
    fn drop(&mut self) {
        let mut uploading = lock(&self.uploading);
        if let Some(n) = uploading.get_mut(&self.uploader) {
            *n -= 1;
            if *n == 0 {
                uploading.remove(&self.uploader);
            }
        }
    }
}

/// A file being received, removed when dropped unless it was moved into place: an upload that
/// fails, is refused or whose client goes away leaves nothing behind.
struct Partial {
    path: PathBuf,
    placed: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where uploads are received, under the media directory (so that the rename into place is
/// atomic). Its name is not a media id, which are alphanumeric.
const PARTIAL_DIR: &str = ".partial";

/// Bytes read from an upload's body and written to its file at a time.
const CHUNK: usize = 64 * 1024;

/// How long a client whose uploads are all in progress is told to wait before another.
const BUSY_RETRY_MS: u64 = 1000;

fn internal(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Internal(format!("{what}: {e}"))
}

impl MediaService {
    /// The service over `dir`; what an earlier run left half-received there is removed.
    pub(crate) fn new(
        storage: Storage,
        dir: PathBuf,
        server_name: String,
        config: MediaConfig,
    ) -> Self {
        let _ = std::fs::remove_dir_all(dir.join(PARTIAL_DIR));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        MediaService {
            storage,
            dir,
            server_name,
            max_upload_bytes: config.max_upload_bytes,
            config,
            uploading: Arc::new(Mutex::new(HashMap::new())),
            thumbnailing: Semaphore::new(cores.clamp(1, 4)),
        }
    }

    /// Checks what can be checked of an upload before its body is read: the file name, the
    /// declared length against the size limit and the quota, and the user's uploads in
    /// progress (`429 M_LIMIT_EXCEEDED` when they are at `max_concurrent_uploads`).
    pub(crate) async fn begin_upload(
        &self,
        uploader: &str,
        filename: Option<&str>,
        declared_len: Option<u64>,
    ) -> Result<UploadPermit> {
        if filename.is_some_and(|f| f.len() > 255 || f.contains('/') || f.contains('\0')) {
            return Err(Error::InvalidParam("invalid file name".into()));
        }
        if let Some(len) = declared_len {
            self.check_size(len)?;
        }
        let permit = {
            let mut uploading = lock(&self.uploading);
            let n = uploading.entry(uploader.to_string()).or_insert(0);
            if *n >= self.config.max_concurrent_uploads {
                return Err(Error::LimitExceeded {
                    retry_after_ms: BUSY_RETRY_MS,
                });
            }
            *n += 1;
            UploadPermit {
                uploader: uploader.to_string(),
                filename: filename.map(str::to_string),
                uploading: self.uploading.clone(),
            }
        };
        let quota = self.config.max_bytes_per_user;
        if quota > 0 {
            let used = u64::try_from(self.storage.media_usage(uploader).await?).unwrap_or(0);
            self.check_quota(used, declared_len.unwrap_or(0))?;
        }
        Ok(permit)
    }

    /// Receives an upload's body, stores it and answers its `mxc://` URI. The file is synced
    /// and renamed into place before its row is written, so a row never names a missing file.
    pub(crate) async fn upload_from(
        &self,
        permit: UploadPermit,
        content_type: Option<&str>,
        body: impl AsyncRead + Unpin,
    ) -> Result<String> {
        let (partial, size) = self.receive(body).await?;
        let media_id = random_alnum(24);
        let content_type = content_type
            .filter(|c| !c.is_empty())
            .unwrap_or("application/octet-stream")
            .to_string();
        let storage = self.storage.clone();
        let dir = self.dir.clone();
        let quota = self.config.max_bytes_per_user;
        let uploader = permit.uploader.clone();
        let filename = permit.filename.clone();
        let id = media_id.clone();
        // A client that goes away now must not stop the upload between its file and its row:
        // the rest runs on a task of its own.
        let stored = tokio::spawn(async move {
            let placed = place(partial, &dir, &id).await?;
            let row = NewMedia {
                media_id: &id,
                content_type: &content_type,
                filename: filename.as_deref(),
                size: size as i64,
                uploader: &uploader,
                now: now_ms(),
            };
            match storage.insert_media_within_quota(&row, quota).await {
                Ok(true) => Ok(()),
                refused => {
                    // No row names the file: it goes.
                    let _ = tokio::fs::remove_file(&placed).await;
                    refused?;
                    let used = u64::try_from(storage.media_usage(&uploader).await?).unwrap_or(0);
                    Err(quota_exceeded(used, size, quota))
                }
            }
        });
        let result = stored
            .await
            .map_err(|e| Error::Internal(format!("storing an upload: {e}")))?;
        drop(permit);
        result.map(|()| format!("mxc://{}/{media_id}", self.server_name))
    }

    /// Stores `bytes` as an upload of `uploader`, under the same limits as a client's upload:
    /// what a plugin's `upload-media` does.
    pub(crate) async fn upload(
        &self,
        uploader: &str,
        content_type: Option<&str>,
        filename: Option<&str>,
        bytes: &[u8],
    ) -> Result<String> {
        let permit = self
            .begin_upload(uploader, filename, Some(bytes.len() as u64))
            .await?;
        self.upload_from(permit, content_type, bytes).await
    }

    fn check_size(&self, len: u64) -> Result<()> {
        if len > self.max_upload_bytes as u64 {
            return Err(Error::TooLarge(format!(
                "the upload is larger than the limit of {} bytes",
                self.max_upload_bytes
            )));
        }
        Ok(())
    }

    fn check_quota(&self, used: u64, more: u64) -> Result<()> {
        let quota = self.config.max_bytes_per_user;
        if quota > 0 && used.saturating_add(more) > quota {
            return Err(quota_exceeded(used, more, quota));
        }
        Ok(())
    }

    /// Writes `body` into a new file under `media/.partial/` as it arrives, up to the size
    /// limit, and syncs it; answers the file and its size.
    async fn receive(&self, mut body: impl AsyncRead + Unpin) -> Result<(Partial, u64)> {
        let dir = self.dir.join(PARTIAL_DIR);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(internal("creating the media directory"))?;
        let partial = Partial {
            path: dir.join(random_alnum(24)),
            placed: false,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial.path)
            .await
            .map_err(internal("creating an upload's file"))?;
        let mut buf = vec![0u8; CHUNK];
        let mut size: u64 = 0;
        loop {
            let n = body.read(&mut buf).await.map_err(|e| {
                Error::InvalidParam(format!("the upload's body could not be read: {e}"))
            })?;
            if n == 0 {
                break;
            }
            size += n as u64;
            self.check_size(size)?;
            file.write_all(&buf[..n])
                .await
                .map_err(internal("writing an upload"))?;
        }
        file.sync_all()
            .await
            .map_err(internal("syncing an upload"))?;
        Ok((partial, size))
    }

    /// The stored file `mxc://{server}/{media_id}`, opened to be read.
    pub(crate) async fn open(&self, server: &str, media_id: &str) -> Result<MediaFile> {
        let not_found = || Error::NotFound("media not found".into());
        if server != self.server_name {
            return self
                .open_remote(server, media_id)
                .await?
                .ok_or_else(not_found);
        }
        if server != self.server_name || !media_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(not_found());
        }
        let row = self.storage.media(media_id).await?.ok_or_else(not_found)?;
        let file = tokio::fs::File::open(self.dir.join(media_id))
            .await
            .map_err(|_| not_found())?;
        let size = file
            .metadata()
            .await
            .map_err(internal("reading a media file's size"))?
            .len();
        Ok(MediaFile {
            content_type: row.content_type,
            filename: row.filename,
            size,
            file,
        })
    }

    /// The stored file `mxc://{server}/{media_id}`, whole (at most `max_upload_bytes`).
    pub(crate) async fn download(&self, server: &str, media_id: &str) -> Result<Media> {
        let mut m = self.open(server, media_id).await?;
        let mut bytes = Vec::with_capacity(m.size.min(self.max_upload_bytes as u64) as usize);
        m.file
            .read_to_end(&mut bytes)
            .await
            .map_err(internal("reading a media file"))?;
        Ok(Media {
            content_type: m.content_type,
            filename: m.filename,
            bytes,
        })
    }

    /// A thumbnail of a PNG or JPEG upload, in the upload's format.
    pub(crate) async fn thumbnail(
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
        let original = self.open(server, media_id).await?;
        let (format, content_type) = match original.content_type.as_str() {
            "image/png" => (image::ImageFormat::Png, "image/png"),
            "image/jpeg" | "image/jpg" => (image::ImageFormat::Jpeg, "image/jpeg"),
            other => {
                return Err(Error::NotFound(format!("no thumbnails for {other}")));
            }
        };
        let target = (
            width.min(MAX_THUMBNAIL_SIDE),
            height.min(MAX_THUMBNAIL_SIDE),
        );
        let max_pixels = self.config.max_image_pixels;
        let _turn = self
            .thumbnailing
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let file = original.file.into_std().await;
        let bytes = tokio::task::spawn_blocking(move || {
            thumbnail::make(BufReader::new(file), format, target, method, max_pixels)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|r| match r {
            Refusal::TooLarge(m) => Error::TooLarge(m),
            Refusal::Unreadable(m) => {
                Error::InvalidParam(format!("the media is not a readable image: {m}"))
            }
        })?;
        Ok(Media {
            content_type: content_type.into(),
            filename: None,
            bytes,
        })
    }
}

/// Thumbnails are at most this large on a side, whatever is asked.
const MAX_THUMBNAIL_SIDE: u32 = 1600;

/// The spec's answer to an upload past a quota: `403 M_FORBIDDEN`.
fn quota_exceeded(used: u64, more: u64, quota: u64) -> Error {
    Error::Forbidden(format!(
        "media quota exceeded: you have stored {used} bytes of {quota}, and this upload is \
         {more} bytes"
    ))
}

/// Moves a received file to `dir/media_id` and syncs the directory, so that the name survives
/// a crash before the row is written; answers its path.
async fn place(mut partial: Partial, dir: &Path, media_id: &str) -> Result<PathBuf> {
    let target = dir.join(media_id);
    tokio::fs::rename(&partial.path, &target)
        .await
        .map_err(internal("moving an upload into place"))?;
    partial.placed = true;
    let synced = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()).await
    };
    if !matches!(synced, Ok(Ok(()))) {
        let _ = tokio::fs::remove_file(&target).await;
        return Err(Error::Internal(format!(
            "syncing the media directory: {synced:?}"
        )));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_partial_file_is_removed_and_a_placed_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        std::fs::write(&gone, b"half").unwrap();
        drop(Partial {
            path: gone.clone(),
            placed: false,
        });
        assert!(!gone.exists());
        let kept = dir.path().join("kept");
        std::fs::write(&kept, b"whole").unwrap();
        drop(Partial {
            path: kept.clone(),
            placed: true,
        });
        assert!(kept.exists());
    }
}
