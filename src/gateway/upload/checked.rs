//! The caller's bytes, checked as they pass: the server's cap, the declared
//! size, and an empty file. The Filestack client hashes them (SHA-256 of the
//! file, in the same pass as the MD5 of each part).

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::gateway::error::GatewayError;
use crate::gateway::upload::ByteStream;

/// The bytes of one upload, counted.
pub(super) struct CheckedBytes {
    bytes: ByteStream,
    received: u64,
    declared: Option<u64>,
    cap: u64,
}

/// What the checked stream learned, read after the Filestack client is done
/// with it.
#[derive(Debug, Default)]
pub(super) struct StreamOutcome {
    /// The first error of the caller's stream.
    pub failure: Option<GatewayError>,
    /// The bytes received, once the whole stream was read and checked.
    pub received: Option<u64>,
}

/// The error handed to the Filestack client when the caller's stream fails
/// (the caller's error itself is kept in the [`StreamOutcome`]).
#[derive(Debug, thiserror::Error)]
#[error("the caller's upload stream was refused")]
pub(super) struct StreamRefused;

impl CheckedBytes {
    pub fn new(bytes: ByteStream, declared: Option<u64>, cap: u64) -> Self {
        Self {
            bytes,
            received: 0,
            declared,
            cap,
        }
    }

    /// The next non-empty chunk; `None` once the stream ended with its size
    /// right.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, GatewayError> {
        loop {
            let chunk = match self.bytes.next().await {
                None => return self.finish().map(|()| None),
                Some(chunk) => chunk?,
            };
            if chunk.is_empty() {
                continue;
            }
            self.received += chunk.len() as u64;
            if self.received > self.cap {
                return Err(GatewayError::FileTooLarge { limit: self.cap });
            }
            if let Some(declared) = self.declared
                && self.received > declared
            {
                return Err(GatewayError::SizeMismatch {
                    declared,
                    received: self.received,
                });
            }
            return Ok(Some(chunk));
        }
    }

    /// At the end of the stream: the size must hold.
    fn finish(&self) -> Result<(), GatewayError> {
        if let Some(declared) = self.declared
            && declared != self.received
        {
            return Err(GatewayError::SizeMismatch {
                declared,
                received: self.received,
            });
        }
        if self.received == 0 {
            return Err(GatewayError::invalid("data", "the file is empty"));
        }
        Ok(())
    }

    /// The whole file, if the stream ends within `limit` bytes; else
    /// SIZE_REQUIRED (a file larger than one part needs its size declared).
    pub async fn read_whole(mut self, limit: u64) -> Result<Bytes, GatewayError> {
        let mut chunks: Vec<Bytes> = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            if self.received > limit {
                return Err(size_required());
            }
            chunks.push(chunk);
        }
        if chunks.len() == 1 {
            return Ok(chunks.swap_remove(0));
        }
        let mut whole = BytesMut::with_capacity(self.received as usize);
        for chunk in chunks {
            whole.extend_from_slice(&chunk);
        }
        Ok(whole.freeze())
    }

    /// The bytes as a stream for the Filestack client. The first error is
    /// kept in `outcome` for the caller of the upload, and so is the size
    /// once the whole stream was read and checked.
    pub fn into_stream(
        self,
        outcome: Arc<Mutex<StreamOutcome>>,
    ) -> impl Stream<Item = Result<Bytes, StreamRefused>> + Send {
        futures_util::stream::unfold(Some((self, outcome)), |state| async move {
            let (mut bytes, outcome) = state?;
            match bytes.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some((bytes, outcome)))),
                Ok(None) => {
                    if let Ok(mut outcome) = outcome.lock() {
                        outcome.received = Some(bytes.received);
                    }
                    None
                }
                Err(error) => {
                    if let Ok(mut outcome) = outcome.lock() {
                        outcome.failure.get_or_insert(error);
                    }
                    Some((Err(StreamRefused), None))
                }
            }
        })
    }
}

/// The error of a file larger than one part without a declared size.
pub(super) fn size_required() -> GatewayError {
    GatewayError::invalid_because(
        "spec.size_bytes",
        "SIZE_REQUIRED",
        "size_bytes is required for files larger than one part",
    )
}
