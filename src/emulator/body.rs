//! Streaming request bodies to disk while hashing them, with a size cap, so
//! that no file is ever held whole in memory.

use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

/// What a streamed write produced.
#[derive(Debug, Clone)]
pub struct Written {
    /// Bytes written.
    pub size: u64,
    /// Raw MD5 digest of the bytes.
    pub md5: Vec<u8>,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
}

impl Written {
    /// The MD5 as lowercase hex (the S3 ETag without quotes).
    pub fn md5_hex(&self) -> String {
        hex::encode(&self.md5)
    }
}

/// Why a streamed write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error("disk error: {0}")]
    Io(#[from] std::io::Error),
}

/// MD5 and SHA-256 computed as bytes pass.
#[derive(Default)]
pub struct Hashes {
    md5: Md5,
    sha256: Sha256,
    size: u64,
}

impl Hashes {
    /// Feeds bytes to both hashes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The digests of everything fed so far.
    pub fn finish(self) -> Written {
        Written {
            size: self.size,
            md5: self.md5.finalize().to_vec(),
            sha256: hex::encode(self.sha256.finalize()),
        }
    }
}

/// Writes `stream` to a new file at `path`, refusing more than `max` bytes.
/// On any error the partial file is removed.
pub async fn write_stream<S, E>(stream: S, path: &Path, max: u64) -> Result<Written, WriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let result = write_inner(stream, path, max).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    result
}

async fn write_inner<S, E>(stream: S, path: &Path, max: u64) -> Result<Written, WriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(path).await?;
    let mut hashes = Hashes::default();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| WriteError::Body(e.to_string()))?;
        if hashes.size + chunk.len() as u64 > max {
            return Err(WriteError::TooLarge(max));
        }
        hashes.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(hashes.finish())
}

/// Appends the file at `src` to `dst`, feeding the bytes to `hashes`.
pub async fn append_file(
    src: &Path,
    dst: &mut tokio::fs::File,
    hashes: &mut Hashes,
) -> std::io::Result<()> {
    let file = tokio::fs::File::open(src).await?;
    let mut chunks = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        hashes.update(&chunk);
        dst.write_all(&chunk).await?;
    }
    Ok(())
}
