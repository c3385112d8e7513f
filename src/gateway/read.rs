//! Read: a document's bytes, or a range of them, as a stream of messages.
//!
//! The stream pulls from Filestack only when the caller's stream is polled
//! (when tonic has room to send), so a slow caller holds back the Filestack
//! body through TCP and HTTP/2 flow control, and the gateway holds at most
//! one message of bytes per read. HTTP chunks are gathered into messages of
//! [`READ_MESSAGE_BYTES`].
//!
//! Every read checks that Filestack served exactly the range. A read of the
//! whole file of a document with a `sha256` also hashes the bytes as they
//! pass and holds back the last message until the hash is checked: a
//! caller never receives all of a file with wrong bytes and no error.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::db::DocumentRow;
use crate::filestack::{ByteRange, FilestackError};
use crate::gateway::Gateway;
use crate::gateway::domain::{DocumentId, OwnerId};
use crate::gateway::error::GatewayError;

/// Bytes of the file per message (the proto promises at most 2 MiB). Large
/// enough that per-message costs (a wake-up, a gRPC header, an encode
/// buffer) vanish, small enough that a read holds little memory and that
/// the next message is gathered while the last one is sent (a default
/// client's 2 MiB stream window holds two). With `cargo bench --bench
/// filegate` (section `read`), 256 KiB, 512 KiB, 1 MiB and 2 MiB cost the
/// gateway the same CPU per GiB within the noise of a shared machine.
pub const READ_MESSAGE_BYTES: usize = 1024 * 1024;
const _: () = assert!(READ_MESSAGE_BYTES <= 2 * 1024 * 1024);

/// Where a read starts and how far it goes, as the caller asked: checked,
/// not yet resolved against a file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSpec {
    /// From the start when not negative; else from the end.
    offset: i64,
    /// `None`: to the end of the file.
    limit: Option<u64>,
}

impl ReadSpec {
    /// `read_limit` 0 reads to the end; negative is refused.
    pub fn parse(read_offset: i64, read_limit: i64) -> Result<ReadSpec, GatewayError> {
        let limit = match read_limit {
            0 => None,
            n if n > 0 => Some(n as u64),
            _ => {
                return Err(GatewayError::invalid(
                    "read_limit",
                    "must not be negative (0 reads to the end)",
                ));
            }
        };
        Ok(ReadSpec {
            offset: read_offset,
            limit,
        })
    }

    /// The bytes `start..end` of a file of `size` bytes: a negative offset
    /// counts from the end (clamped to the start), a limit past the end
    /// stops there, and an offset past the end is OUT_OF_RANGE.
    pub fn resolve(self, size: u64) -> Result<(u64, u64), GatewayError> {
        let start = match u64::try_from(self.offset) {
            Ok(offset) if offset > size => {
                return Err(GatewayError::ReadOffsetOutOfRange {
                    offset: self.offset,
                    size,
                });
            }
            Ok(offset) => offset,
            Err(_) => size.saturating_sub(self.offset.unsigned_abs()),
        };
        let end = self
            .limit
            .map_or(size, |limit| start.saturating_add(limit).min(size));
        Ok((start, end))
    }
}

/// A read under way: the document, the range it serves, and its bytes as
/// messages. The messages stream yields at least one item (an empty one for
/// an empty range), so that a first message always exists.
pub struct DocumentRead {
    pub document: DocumentRow,
    /// The range served, `start..end`, and the file's size.
    pub start: u64,
    pub end: u64,
    pub size: u64,
    pub messages: BoxStream<'static, Result<Bytes, GatewayError>>,
}

impl Gateway {
    /// Reads `spec` of the caller's document (NOT_FOUND / PERMISSION_DENIED
    /// as for every document call). Filestack is asked before this returns,
    /// so an unknown file or an outage fails the call before any message.
    pub async fn read(
        &self,
        owner: &OwnerId,
        id: &DocumentId,
        spec: ReadSpec,
    ) -> Result<DocumentRead, GatewayError> {
        let document = self.owned_document(owner, id).await?;
        let size = u64::try_from(document.size_bytes).unwrap_or(0);
        let (start, end) = spec.resolve(size)?;
        let expected_sha256 = match document.sha256.as_deref() {
            Some(sha256) if !sha256.is_empty() && (start, end) == (0, size) => Some(sha256),
            _ => None,
        };
        let upstream = if start < end {
            let range = ByteRange { start, end };
            let read = self.filestack.read_range(&document.handle, range).await?;
            if read.size != size {
                return Err(GatewayError::LengthMismatch(format!(
                    "Filestack holds {} bytes, the document {size}",
                    read.size
                )));
            }
            Some(read.bytes)
        } else {
            None
        };
        let messages = Messages {
            upstream,
            expected: end - start,
            received: 0,
            carry: None,
            buffer: BytesMut::new(),
            sha256: expected_sha256.map(|hex| (Sha256::new(), hex.to_owned())),
            done: false,
        };
        Ok(DocumentRead {
            document,
            start,
            end,
            size,
            messages: messages.into_stream(),
        })
    }
}

/// Gathers Filestack's chunks into messages, counting and hashing them.
struct Messages {
    /// `None` for an empty range, or once the body ended.
    upstream: Option<BoxStream<'static, Result<Bytes, FilestackError>>>,
    /// Bytes in the range.
    expected: u64,
    /// Bytes taken from upstream so far.
    received: u64,
    /// Bytes received but not yet in a message.
    carry: Option<Bytes>,
    /// The message being gathered.
    buffer: BytesMut,
    /// The hash of the bytes so far, and the document's (lowercase hex).
    sha256: Option<(Sha256, String)>,
    /// The last message was produced.
    done: bool,
}

impl Messages {
    /// Each message is produced when the stream is polled, inside the span
    /// that was current when the read began.
    fn into_stream(self) -> BoxStream<'static, Result<Bytes, GatewayError>> {
        let span = tracing::Span::current();
        futures_util::stream::try_unfold(self, move |mut messages| {
            async move {
                let message = messages.next_message().await?;
                Ok(message.map(|message| (message, messages)))
            }
            .instrument(span.clone())
        })
        .boxed()
    }

    /// The next message, `None` after the last. The last is produced only
    /// once the body has ended with exactly the range's bytes and, for a
    /// checked read, their hash is the document's.
    async fn next_message(&mut self) -> Result<Option<Bytes>, GatewayError> {
        if self.done {
            return Ok(None);
        }
        let left =
            self.expected - self.received + self.carry.as_ref().map_or(0, |c| c.len() as u64);
        let capacity =
            usize::try_from(left).map_or(READ_MESSAGE_BYTES, |left| left.min(READ_MESSAGE_BYTES));
        // Takes back the previous message's memory once tonic has encoded
        // (and dropped) it: no new allocation, no fresh pages to fault in.
        self.buffer.reserve(capacity);
        loop {
            if let Some(mut chunk) = self.carry.take() {
                let room = READ_MESSAGE_BYTES - self.buffer.len();
                if chunk.len() > room {
                    self.carry = Some(chunk.split_off(room));
                }
                self.buffer.extend_from_slice(&chunk);
            }
            let all_received = self.carry.is_none() && self.received == self.expected;
            if all_received {
                self.finish().await?;
                self.done = true;
                return Ok(Some(self.buffer.split().freeze()));
            }
            if self.buffer.len() == READ_MESSAGE_BYTES {
                return Ok(Some(self.buffer.split().freeze()));
            }
            let chunk = self.next_chunk().await?;
            self.take(chunk)?;
        }
    }

    /// The next chunk of the body; its end before the range's is a mismatch.
    async fn next_chunk(&mut self) -> Result<Bytes, GatewayError> {
        let next = match self.upstream.as_mut() {
            Some(upstream) => upstream.next().await,
            None => None,
        };
        match next {
            Some(chunk) => Ok(chunk?),
            None => Err(GatewayError::LengthMismatch(format!(
                "Filestack served {} of the range's {} bytes",
                self.received, self.expected
            ))),
        }
    }

    /// Counts and hashes `chunk`, and keeps it for the next message.
    fn take(&mut self, chunk: Bytes) -> Result<(), GatewayError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.received += chunk.len() as u64;
        if self.received > self.expected {
            return Err(GatewayError::LengthMismatch(format!(
                "Filestack served more than the range's {} bytes",
                self.expected
            )));
        }
        if let Some((hasher, _)) = self.sha256.as_mut() {
            hasher.update(&chunk);
        }
        self.carry = Some(chunk);
        Ok(())
    }

    /// Once every byte of the range arrived: the body must end there, and
    /// a checked read's hash must be the document's.
    async fn finish(&mut self) -> Result<(), GatewayError> {
        while let Some(upstream) = self.upstream.as_mut() {
            match upstream.next().await {
                None => self.upstream = None,
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(_)) => {
                    return Err(GatewayError::LengthMismatch(format!(
                        "Filestack served more than the range's {} bytes",
                        self.expected
                    )));
                }
                Some(Err(error)) => return Err(error.into()),
            }
        }
        if let Some((hasher, expected)) = self.sha256.take() {
            if hex::encode(hasher.finalize()) != expected {
                return Err(GatewayError::DataCorrupted);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ReadSpec;
    use crate::gateway::error::GatewayError;

    fn resolve(offset: i64, limit: i64, size: u64) -> (u64, u64) {
        let spec = ReadSpec::parse(offset, limit).expect("a valid spec");
        spec.resolve(size).expect("within the file")
    }

    #[test]
    fn ranges_resolve_as_cloud_storage_reads_do() {
        assert_eq!(resolve(0, 0, 100), (0, 100), "the whole file");
        assert_eq!(resolve(10, 20, 100), (10, 30));
        assert_eq!(resolve(10, 0, 100), (10, 100), "to the end");
        assert_eq!(resolve(90, 50, 100), (90, 100), "limit clamped");
        assert_eq!(resolve(-10, 0, 100), (90, 100), "the last 10 bytes");
        assert_eq!(resolve(-10, 4, 100), (90, 94));
        assert_eq!(resolve(-500, 0, 100), (0, 100), "clamped to the start");
        assert_eq!(resolve(i64::MIN, i64::MAX, 100), (0, 100));
        assert_eq!(resolve(100, 0, 100), (100, 100), "at the end: empty");
        assert_eq!(resolve(0, 0, 0), (0, 0));
    }

    #[test]
    fn an_offset_past_the_end_and_a_negative_limit_are_refused() {
        let past = ReadSpec::parse(101, 0).unwrap().resolve(100).unwrap_err();
        assert!(matches!(
            past,
            GatewayError::ReadOffsetOutOfRange {
                offset: 101,
                size: 100
            }
        ));
        let negative = ReadSpec::parse(0, -1).unwrap_err();
        assert!(matches!(
            negative,
            GatewayError::InvalidArgument {
                field: "read_limit",
                ..
            }
        ));
    }
}
