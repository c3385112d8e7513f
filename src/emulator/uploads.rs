//! Pending multipart uploads, between `/multipart/start` and
//! `/multipart/complete`. Kept in memory (a restart forgets them and empties
//! `uploads/`); the parts themselves are files in the data dir.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::emulator::error::ApiError;
use crate::emulator::store::{StoreTarget, random_id};
use crate::filestack::policy::sign_hex;

/// At most this many uploads may be pending at once.
pub const MAX_PENDING: usize = 1024;
/// S3's part number limit.
pub const MAX_PARTS: u32 = 10_000;
/// At most this many chunks per part (Intelligent Ingestion).
const MAX_CHUNKS: usize = 1024;
/// An upload not completed within this time is forgotten.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// One pending upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub apikey: String,
    pub size: u64,
    pub target: StoreTarget,
    pub fii: bool,
    pub parts: BTreeMap<u32, Part>,
    /// When `start` registered it.
    pub started: Instant,
}

/// The chunks of one part, by offset within the part.
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub chunks: BTreeMap<u64, Chunk>,
    pub committed: bool,
}

/// One expected (and maybe received) chunk.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub size: u64,
    /// Base64 MD5 the client announced, if any.
    pub md5: Option<String>,
    /// Hex MD5 of the bytes received, once the PUT succeeded.
    pub etag: Option<String>,
}

impl Part {
    /// The part's size, when its chunks are all received and contiguous
    /// from offset 0.
    pub fn contiguous_size(&self) -> Result<u64, String> {
        let mut next = 0;
        for (offset, chunk) in &self.chunks {
            if *offset != next {
                return Err(format!("chunk at offset {next} is missing"));
            }
            if chunk.etag.is_none() {
                return Err(format!("chunk at offset {offset} was not uploaded"));
            }
            next += chunk.size;
        }
        if next == 0 {
            return Err("part has no data".to_owned());
        }
        Ok(next)
    }
}

/// The registry of pending uploads.
#[derive(Debug)]
pub struct Uploads {
    inner: Mutex<HashMap<String, Upload>>,
    /// Key of the emulator's presigned-URL signatures (random per process).
    signing_key: String,
}

impl Default for Uploads {
    fn default() -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            signing_key: random_id(32),
        }
    }
}

impl Uploads {
    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, Upload>>, ApiError> {
        self.inner
            .lock()
            .map_err(|_| ApiError::internal("upload registry lock poisoned"))
    }

    /// Registers a new upload and returns its id.
    pub fn start(&self, upload: Upload) -> Result<String, ApiError> {
        let mut map = self.lock()?;
        if map.len() >= MAX_PENDING {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "too many pending uploads",
            ));
        }
        let id = random_id(32);
        map.insert(id.clone(), upload);
        Ok(id)
    }

    /// How many uploads are pending.
    pub fn pending(&self) -> usize {
        self.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Forgets uploads older than [`MAX_AGE`] and returns their ids.
    pub fn expire(&self) -> Vec<String> {
        let Ok(mut map) = self.lock() else {
            return Vec::new();
        };
        let old: Vec<String> = map
            .iter()
            .filter(|(_, u)| u.started.elapsed() > MAX_AGE)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            map.remove(id);
        }
        old
    }

    /// A copy of a pending upload.
    pub fn get(&self, id: &str) -> Result<Upload, ApiError> {
        self.lock()?
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("invalid params: unknown upload_id"))
    }

    /// Announces a chunk (`/multipart/upload`); a repeated announcement
    /// replaces the previous one.
    pub fn expect_chunk(
        &self,
        id: &str,
        part: u32,
        offset: u64,
        chunk: Chunk,
    ) -> Result<(), ApiError> {
        let mut map = self.lock()?;
        let upload = map
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("invalid params: unknown upload_id"))?;
        let entry = upload.parts.entry(part).or_default();
        if entry.chunks.len() >= MAX_CHUNKS && !entry.chunks.contains_key(&offset) {
            return Err(ApiError::bad_request("invalid params: too many chunks"));
        }
        entry.committed = false;
        entry.chunks.insert(offset, chunk);
        Ok(())
    }

    /// The announced chunk at (`part`, `offset`).
    pub fn chunk(&self, id: &str, part: u32, offset: u64) -> Result<Chunk, ApiError> {
        let map = self.lock()?;
        map.get(id)
            .and_then(|u| u.parts.get(&part))
            .and_then(|p| p.chunks.get(&offset))
            .cloned()
            .ok_or_else(|| ApiError::not_found("no such upload part").s3("NoSuchUpload"))
    }

    /// Records a received chunk.
    pub fn chunk_received(
        &self,
        id: &str,
        part: u32,
        offset: u64,
        etag: String,
    ) -> Result<(), ApiError> {
        let mut map = self.lock()?;
        let chunk = map
            .get_mut(id)
            .and_then(|u| u.parts.get_mut(&part))
            .and_then(|p| p.chunks.get_mut(&offset))
            .ok_or_else(|| ApiError::not_found("no such upload part").s3("NoSuchUpload"))?;
        chunk.etag = Some(etag);
        Ok(())
    }

    /// Commits a part (Intelligent Ingestion): its chunks must be contiguous.
    pub fn commit(&self, id: &str, part: u32) -> Result<(), ApiError> {
        let mut map = self.lock()?;
        let upload = map
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("invalid params: unknown upload_id"))?;
        let part = upload
            .parts
            .get_mut(&part)
            .ok_or_else(|| ApiError::bad_request("invalid params: part was never uploaded"))?;
        part.contiguous_size()
            .map_err(|why| ApiError::bad_request(format!("invalid params: part: {why}")))?;
        part.committed = true;
        Ok(())
    }

    /// Removes an upload (completed or abandoned).
    pub fn remove(&self, id: &str) -> Option<Upload> {
        self.lock().ok().and_then(|mut m| m.remove(id))
    }

    /// Puts back an upload whose completion failed.
    pub fn restore(&self, id: String, upload: Upload) {
        if let Ok(mut map) = self.lock() {
            map.insert(id, upload);
        }
    }

    /// The signature the presigned PUT URL of a chunk carries.
    pub fn presign(&self, id: &str, part: u32, offset: u64, size: u64, md5: &str) -> String {
        let message = format!("{id}:{part}:{offset}:{size}:{md5}");
        sign_hex(self.signing_key.as_bytes(), message.as_bytes())
    }
}
