//! The data directory: stored files, their JSON metadata sidecars, the
//! transformation cache, pending upload parts and a scratch area.
//!
//! Layout under the data dir: `files/HANDLE` (content), `files/HANDLE.json`
//! ([`FileMeta`]), `cache/HANDLE/…` (rendered transformations), `uploads/ID/…`
//! (multipart parts), `tmp/` (files being written). Content and sidecars are
//! written to `tmp/` first and renamed, so a crash never leaves a half-written
//! stored file. `tmp/` and `uploads/` are emptied at start-up.

use std::path::{Path, PathBuf};

use rand::RngExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::emulator::error::unix_now_ms;

/// What the emulator knows about a stored file (its sidecar).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileMeta {
    pub handle: String,
    pub filename: String,
    pub mimetype: String,
    pub size: u64,
    /// Upload time, unix milliseconds.
    pub uploaded: i64,
    /// Lowercase hex MD5 of the content.
    pub md5: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub location: String,
    pub path: Option<String>,
    pub container: String,
    pub key: String,
}

/// Where and under which name an upload is stored (the `store` options).
#[derive(Debug, Clone)]
pub struct StoreTarget {
    pub filename: String,
    pub mimetype: String,
    pub path: Option<String>,
    pub container: Option<String>,
    /// The storage location asked for, as [`location_name`] spells it
    /// (`S3` when the client named none).
    pub location: String,
}

/// The storage locations Filestack knows, as its SDKs spell them
/// (filestack-python's `S3, gcs, azure, rackspace, dropbox`; filestack-js
/// takes `s3` too): `S3` in capitals, the others in lower case.
const LOCATIONS: [&str; 5] = ["S3", "gcs", "azure", "rackspace", "dropbox"];

/// The location reported for a `location` a client sent (matched without
/// regard to case: `s3`, `S3`, `GCS`, ...), `None` for one Filestack does not
/// know. Every location is stored in the local folder; metadata reports
/// the one asked for.
pub fn location_name(asked: &str) -> Option<&'static str> {
    LOCATIONS
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(asked.trim()))
}

/// The location reported when a client names none.
pub const DEFAULT_LOCATION: &str = "S3";

/// Container reported when the client names none.
pub const DEFAULT_CONTAINER: &str = "filegate-emulator";

/// The data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// 20 random ASCII letters and digits (handles, key prefixes).
pub fn random_id(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Whether `handle` can name a stored file (`[A-Za-z0-9_-]`, 1..=64 chars).
pub fn valid_handle(handle: &str) -> bool {
    !handle.is_empty()
        && handle.len() <= 64
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Store {
    /// Opens (creating) the data dir and empties its scratch areas.
    pub async fn open(root: &Path) -> std::io::Result<Store> {
        let store = Store {
            root: root.to_path_buf(),
        };
        for dir in ["tmp", "uploads"] {
            let path = root.join(dir);
            if tokio::fs::try_exists(&path).await? {
                tokio::fs::remove_dir_all(&path).await?;
            }
        }
        for dir in ["files", "cache", "tmp", "uploads"] {
            tokio::fs::create_dir_all(root.join(dir)).await?;
        }
        Ok(store)
    }

    /// A fresh path in the scratch area.
    pub fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(random_id(24))
    }

    /// The folder holding the parts of a pending upload.
    pub fn upload_dir(&self, upload_id: &str) -> PathBuf {
        self.root.join("uploads").join(upload_id)
    }

    /// The content of a stored file (only call with a valid handle).
    pub fn content_path(&self, handle: &str) -> PathBuf {
        self.root.join("files").join(handle)
    }

    fn meta_path(&self, handle: &str) -> PathBuf {
        self.root.join("files").join(format!("{handle}.json"))
    }

    /// The transformation cache folder of a handle.
    pub fn cache_dir(&self, handle: &str) -> PathBuf {
        self.root.join("cache").join(handle)
    }

    /// The metadata of a stored file, `None` for an unknown or invalid handle.
    pub async fn meta(&self, handle: &str) -> std::io::Result<Option<FileMeta>> {
        if !valid_handle(handle) {
            return Ok(None);
        }
        match tokio::fs::read(self.meta_path(handle)).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Builds the metadata of new content under `handle` for `target`.
    pub async fn describe(
        &self,
        handle: &str,
        content: &Path,
        written: &crate::emulator::body::Written,
        target: &StoreTarget,
    ) -> FileMeta {
        let (width, height) = dimensions(content.to_path_buf()).await;
        let key = storage_key(target);
        FileMeta {
            handle: handle.to_owned(),
            filename: target.filename.clone(),
            mimetype: target.mimetype.clone(),
            size: written.size,
            uploaded: unix_now_ms(),
            md5: written.md5_hex(),
            sha256: written.sha256.clone(),
            width,
            height,
            location: target.location.clone(),
            path: target.path.clone(),
            container: target
                .container
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTAINER.to_owned()),
            key,
        }
    }

    /// Moves `content` (a file in the scratch area) into place for
    /// `meta.handle` and writes its sidecar; replaces an existing file and
    /// drops its cached transformations.
    pub async fn commit(&self, content: &Path, meta: &FileMeta) -> std::io::Result<()> {
        tokio::fs::rename(content, self.content_path(&meta.handle)).await?;
        let json = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        let tmp = self.tmp_path();
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(&json).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, self.meta_path(&meta.handle)).await?;
        self.drop_cache(&meta.handle).await
    }

    /// Deletes a stored file; `false` when there was none.
    pub async fn delete(&self, handle: &str) -> std::io::Result<bool> {
        if !valid_handle(handle) {
            return Ok(false);
        }
        match tokio::fs::remove_file(self.meta_path(handle)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        let _ = tokio::fs::remove_file(self.content_path(handle)).await;
        self.drop_cache(handle).await?;
        Ok(true)
    }

    async fn drop_cache(&self, handle: &str) -> std::io::Result<()> {
        match tokio::fs::remove_dir_all(self.cache_dir(handle)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every stored file's metadata, in handle order.
    pub async fn list(&self) -> std::io::Result<Vec<FileMeta>> {
        let mut entries = tokio::fs::read_dir(self.root.join("files")).await?;
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            let handle = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(meta) = self.meta(handle).await?
            {
                files.push(meta);
            }
        }
        files.sort_by(|a, b| a.handle.cmp(&b.handle));
        Ok(files)
    }

    /// How many files are stored.
    pub async fn count(&self) -> std::io::Result<usize> {
        let mut entries = tokio::fs::read_dir(self.root.join("files")).await?;
        let mut count = 0;
        while let Some(entry) = entries.next_entry().await? {
            if entry.path().extension().is_some_and(|e| e == "json") {
                count += 1;
            }
        }
        Ok(count)
    }
}

/// The storage key: `path` itself, `path` + `RANDOM_filename` when `path`
/// ends with `/`, or `RANDOM_filename` without a path (Filestack's default).
fn storage_key(target: &StoreTarget) -> String {
    let generated = format!("{}_{}", random_id(20), target.filename);
    match &target.path {
        Some(path) if path.ends_with('/') => format!("{path}{generated}"),
        Some(path) if !path.is_empty() => path.clone(),
        _ => generated,
    }
}

/// Width and height from the image header (no full decode), `None` for
/// anything that is not an image this build can read.
async fn dimensions(path: PathBuf) -> (Option<u32>, Option<u32>) {
    let read = tokio::task::spawn_blocking(move || {
        image::ImageReader::open(&path)
            .and_then(|r| r.with_guessed_format())
            .ok()
            .and_then(|r| r.into_dimensions().ok())
    })
    .await;
    match read {
        Ok(Some((w, h))) => (Some(w), Some(h)),
        _ => (None, None),
    }
}
