//! Other servers' media kept for local clients: a file fetched over federation is received
//! like an upload (under `media/.partial/`, synced, renamed into place under
//! `media/remote/<server>/`) and only then given its row, so a row never names a missing file.

use std::path::PathBuf;

use super::{internal, place, MediaFile, MediaService};
use crate::service::identifiers::valid_server_name;
use crate::service::{now_ms, Error, Result};
use crate::storage::remote::RemoteMediaRow;

/// Whether `media_id` may name a file: the spec's media id characters.
pub(crate) fn valid_media_id(media_id: &str) -> bool {
    !media_id.is_empty()
        && media_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl MediaService {
    /// The directory of `server`'s kept media; `NotFound` for a name that is not a server's.
    fn remote_dir(&self, server: &str) -> Result<PathBuf> {
        if !valid_server_name(server) || server.contains(['/', '\\']) || server.starts_with('.') {
            return Err(Error::NotFound("media not found".into()));
        }
        Ok(self.dir.join("remote").join(server))
    }

    /// A remote file kept before, opened to be read; `None` when it was never fetched.
    pub(crate) async fn open_remote(
        &self,
        server: &str,
        media_id: &str,
    ) -> Result<Option<MediaFile>> {
        if !valid_media_id(media_id) {
            return Err(Error::NotFound("media not found".into()));
        }
        let dir = self.remote_dir(server)?;
        let Some(row) = self.storage.remote_media(server, media_id).await? else {
            return Ok(None);
        };
        let Ok(file) = tokio::fs::File::open(dir.join(media_id)).await else {
            return Ok(None);
        };
        let size = file
            .metadata()
            .await
            .map_err(internal("reading a media file's size"))?
            .len();
        Ok(Some(MediaFile {
            content_type: row.content_type,
            filename: row.filename,
            size,
            file,
        }))
    }

    /// Keeps `bytes`, fetched from `server`, as `mxc://{server}/{media_id}`.
    pub(crate) async fn keep_remote(
        &self,
        server: &str,
        media_id: &str,
        content_type: &str,
        filename: Option<String>,
        bytes: &[u8],
    ) -> Result<()> {
        if !valid_media_id(media_id) {
            return Err(Error::NotFound("media not found".into()));
        }
        let dir = self.remote_dir(server)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(internal("creating a remote media directory"))?;
        let (partial, size) = self.receive(bytes).await?;
        place(partial, &dir, media_id).await?;
        let row = RemoteMediaRow {
            content_type: content_type.to_string(),
            filename,
        };
        self.storage
            .insert_remote_media(server, media_id, &row, size as i64, now_ms())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_are_the_spec_characters_only() {
        assert!(valid_media_id("AbC09_-"));
        assert!(!valid_media_id(""));
        assert!(!valid_media_id("../x"));
        assert!(!valid_media_id("a.b"));
    }
}
