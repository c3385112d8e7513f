//! Cutting a byte stream into parts of exactly `part_size` bytes (the last
//! one shorter), checking the declared size as bytes arrive.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::filestack::error::{BoxError, FilestackError};
use crate::filestack::upload::Sha256Check;
use crate::filestack::upload::digests::Digests;

/// One part of the stream and the MD5 of its bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Part {
    pub(crate) bytes: Bytes,
    pub(crate) md5: [u8; 16],
}

/// Spare part buffers kept for reuse.
const MAX_SPARE_BUFFERS: usize = 2;

/// Reads parts from a stream. Holds the part being filled, the unread tail
/// of the last chunk, and at most [`MAX_SPARE_BUFFERS`] buffers of finished
/// parts for reuse.
///
/// With a declared size, each part buffer is allocated once at its exact
/// size and filled with one copy of the stream's bytes; a chunk that crosses
/// a part boundary is split without copying. Bytes are hashed as they are
/// copied ([`Digests`]); with [`Sha256Check::Expect`], a stream whose
/// SHA-256 differs fails when its end is read, so the upload stops before
/// `complete`.
pub(crate) struct PartReader<S> {
    stream: S,
    part_size: usize,
    declared: Option<u64>,
    digests: Digests,
    sha256: Sha256Check,
    /// The SHA-256 of the whole stream, once it ended (when asked for).
    whole_sha256: Option<[u8; 32]>,
    /// Bytes read but not yet in a part: the tail of the last chunk.
    pending: Bytes,
    /// The part being filled.
    current: BytesMut,
    /// Buffers of uploaded parts, for the next ones.
    spare: Vec<BytesMut>,
    received: u64,
    /// Bytes handed out in parts.
    taken: u64,
    ended: bool,
    parts: u32,
}

impl<S, E> PartReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    pub(crate) fn new(
        stream: S,
        part_size: usize,
        declared: Option<u64>,
        sha256: Sha256Check,
    ) -> Self {
        Self {
            stream,
            part_size,
            declared,
            digests: Digests::new(sha256.is_wanted()),
            sha256,
            whole_sha256: None,
            pending: Bytes::new(),
            current: BytesMut::new(),
            spare: Vec::new(),
            received: 0,
            taken: 0,
            ended: false,
            parts: 0,
        }
    }

    /// The next part, or `None` after the last. An empty stream gives one
    /// empty part. Cancel-safe: bytes read are kept in the reader, not in
    /// the future.
    pub(crate) async fn next_part(&mut self) -> Result<Option<Part>, FilestackError> {
        loop {
            self.fill_from_pending();
            if self.current.len() >= self.part_size {
                return Ok(Some(self.take()));
            }
            if self.ended {
                let last = !self.current.is_empty() || self.parts == 0;
                return Ok(last.then(|| self.take()));
            }
            self.read_chunk().await?;
        }
    }

    /// Whether the stream has no byte left (reads at most one more chunk).
    pub(crate) async fn at_end(&mut self) -> Result<bool, FilestackError> {
        while self.is_empty() && !self.ended {
            self.read_chunk().await?;
        }
        Ok(self.is_empty())
    }

    /// Bytes read from the stream so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The SHA-256 of the whole stream, once it ended, when it was asked for.
    pub(crate) fn sha256(&self) -> Option<[u8; 32]> {
        self.whole_sha256
    }

    /// Gives back an uploaded part; its buffer is reused when no one else
    /// holds it.
    pub(crate) fn recycle(&mut self, part: Bytes) {
        if self.spare.len() >= MAX_SPARE_BUFFERS {
            return;
        }
        if let Ok(mut buffer) = part.try_into_mut() {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.current.is_empty()
    }

    /// Moves pending bytes into the current part, up to the part size.
    fn fill_from_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.current.capacity() == 0 {
            self.current = self.buffer_for_next_part();
        }
        let room = self.part_size.saturating_sub(self.current.len());
        let bytes = self.pending.split_to(room.min(self.pending.len()));
        self.current.extend_from_slice(&bytes);
        self.digests.update(&bytes);
    }

    /// A buffer for the next part: its exact size when the size was
    /// declared (a spare one if large enough), else room for the pending
    /// bytes, growing as needed.
    fn buffer_for_next_part(&mut self) -> BytesMut {
        let wanted = match self.declared {
            Some(declared) => declared
                .saturating_sub(self.taken)
                .min(self.part_size as u64) as usize,
            None => self.part_size.min(self.pending.len().max(64 * 1024)),
        };
        match self.spare.iter().position(|b| b.capacity() >= wanted) {
            Some(index) => self.spare.swap_remove(index),
            None => BytesMut::with_capacity(wanted),
        }
    }

    fn take(&mut self) -> Part {
        self.parts += 1;
        let bytes = std::mem::take(&mut self.current).freeze();
        self.taken += bytes.len() as u64;
        Part {
            bytes,
            md5: self.digests.finish_part(),
        }
    }

    async fn read_chunk(&mut self) -> Result<(), FilestackError> {
        match self.stream.next().await {
            None => {
                self.ended = true;
                if let Some(declared) = self.declared.filter(|d| *d != self.received) {
                    return Err(FilestackError::SizeMismatch {
                        declared,
                        received: self.received,
                    });
                }
                self.whole_sha256 = self.sha256.verify(self.digests.finish())?;
                Ok(())
            }
            Some(Err(error)) => Err(FilestackError::Stream(error.into())),
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if let Some(declared) = self.declared.filter(|d| self.received > *d) {
                    return Err(FilestackError::SizeMismatch {
                        declared,
                        received: self.received,
                    });
                }
                debug_assert!(
                    self.pending.is_empty(),
                    "a chunk is read once the last one is used"
                );
                self.pending = chunk;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use futures_util::stream;
    use md5::Md5;
    use sha2::{Digest, Sha256};

    use super::PartReader;
    use crate::filestack::error::FilestackError;
    use crate::filestack::upload::Sha256Check;

    const MIB: usize = 1024 * 1024;

    fn chunks(total: usize, chunk: usize) -> Vec<Result<Bytes, Infallible>> {
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        data.chunks(chunk.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    async fn part_sizes(total: usize, part: usize, chunk: usize) -> Vec<usize> {
        let mut reader = PartReader::new(
            stream::iter(chunks(total, chunk)),
            part,
            Some(total as u64),
            Sha256Check::Off,
        );
        let mut sizes = Vec::new();
        while let Some(part) = reader.next_part().await.unwrap() {
            sizes.push(part.bytes.len());
        }
        sizes
    }

    #[tokio::test]
    async fn streams_are_cut_into_parts_of_exactly_the_part_size() {
        let part = 5 * MIB;
        assert_eq!(part_sizes(0, part, 1000).await, [0]);
        assert_eq!(part_sizes(1, part, 1000).await, [1]);
        assert_eq!(part_sizes(part, part, 65_536).await, [part]);
        assert_eq!(part_sizes(part + 1, part, 65_536).await, [part, 1]);
        assert_eq!(
            part_sizes(12 * MIB + 123, part, 100_003).await,
            [part, part, 2_097_275]
        );
    }

    #[tokio::test]
    async fn chunks_larger_than_a_part_are_split_across_parts() {
        assert_eq!(part_sizes(25, 10, 25).await, [10, 10, 5]);
        assert_eq!(part_sizes(25, 10, 7).await, [10, 10, 5]);
    }

    #[tokio::test]
    async fn parts_carry_the_stream_bytes_in_order() {
        let mut reader = PartReader::new(stream::iter(chunks(25, 3)), 10, None, Sha256Check::Off);
        let mut all = Vec::new();
        while let Some(part) = reader.next_part().await.unwrap() {
            all.extend_from_slice(&part.bytes);
        }
        let expected: Vec<u8> = (0..25).map(|i| (i % 251) as u8).collect();
        assert_eq!(all, expected);
    }

    #[tokio::test]
    async fn more_bytes_than_declared_fail_at_the_first_extra_chunk() {
        let items = vec![
            Ok::<_, Infallible>(Bytes::from_static(b"12345")),
            Ok(Bytes::from_static(b"678")),
        ];
        let mut reader = PartReader::new(stream::iter(items), 100, Some(6), Sha256Check::Off);
        let error = reader.next_part().await.unwrap_err();
        assert!(matches!(
            error,
            FilestackError::SizeMismatch {
                declared: 6,
                received: 8
            }
        ));
    }

    #[tokio::test]
    async fn fewer_bytes_than_declared_fail_at_the_end_of_the_stream() {
        let mut reader =
            PartReader::new(stream::iter(chunks(20, 4)), 10, Some(21), Sha256Check::Off);
        assert_eq!(
            reader.next_part().await.unwrap().map(|p| p.bytes.len()),
            Some(10)
        );
        assert_eq!(
            reader.next_part().await.unwrap().map(|p| p.bytes.len()),
            Some(10)
        );
        let error = reader.next_part().await.unwrap_err();
        assert!(matches!(
            error,
            FilestackError::SizeMismatch {
                declared: 21,
                received: 20
            }
        ));
    }

    #[tokio::test]
    async fn at_end_tells_whether_a_stream_fits_in_one_part() {
        let mut exact = PartReader::new(stream::iter(chunks(10, 5)), 10, None, Sha256Check::Off);
        assert_eq!(
            exact.next_part().await.unwrap().map(|p| p.bytes.len()),
            Some(10)
        );
        assert!(exact.at_end().await.unwrap());
        let mut longer = PartReader::new(stream::iter(chunks(11, 5)), 10, None, Sha256Check::Off);
        assert_eq!(
            longer.next_part().await.unwrap().map(|p| p.bytes.len()),
            Some(10)
        );
        assert!(!longer.at_end().await.unwrap());
        assert_eq!(longer.received(), 11);
    }

    #[tokio::test]
    async fn with_a_declared_size_each_part_is_allocated_at_its_exact_size() {
        let total = 25;
        let mut reader = PartReader::new(
            stream::iter(chunks(total, 7)),
            10,
            Some(25),
            Sha256Check::Off,
        );
        let mut capacities = Vec::new();
        while let Some(part) = reader.next_part().await.unwrap() {
            let buffer = part
                .bytes
                .try_into_mut()
                .expect("the reader keeps no reference");
            capacities.push((buffer.len(), buffer.capacity()));
        }
        assert_eq!(capacities, [(10, 10), (10, 10), (5, 5)]);
    }

    #[tokio::test]
    async fn the_buffer_of_a_recycled_part_is_reused_for_the_next_one() {
        let mut reader =
            PartReader::new(stream::iter(chunks(30, 5)), 10, Some(30), Sha256Check::Off);
        let first = reader.next_part().await.unwrap().unwrap().bytes;
        let address = first.as_ptr();
        reader.recycle(first);
        let second = reader.next_part().await.unwrap().unwrap().bytes;
        assert_eq!(second.as_ptr(), address);
        let held = second.clone();
        reader.recycle(second);
        let third = reader.next_part().await.unwrap().unwrap().bytes;
        assert_ne!(
            third.as_ptr(),
            held.as_ptr(),
            "a shared buffer is not reused"
        );
        let expected: Vec<u8> = (20..30).map(|i| (i % 251) as u8).collect();
        assert_eq!(third, expected);
    }

    #[tokio::test]
    async fn parts_carry_their_md5_and_the_reader_the_sha256_of_the_stream() {
        let total = 3 * 4096 + 100;
        let bytes: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let whole: [u8; 32] = Sha256::digest(&bytes).into();
        for check in [Sha256Check::Compute, Sha256Check::Expect(whole)] {
            let items = chunks(total, 1000);
            let mut reader = PartReader::new(stream::iter(items), 4096, Some(total as u64), check);
            let mut md5s = Vec::new();
            while let Some(part) = reader.next_part().await.unwrap() {
                assert_eq!(part.md5, <[u8; 16]>::from(Md5::digest(&part.bytes)));
                md5s.push(part.md5);
            }
            assert_eq!(md5s.len(), 4);
            assert_eq!(reader.sha256(), Some(whole));
        }
        let mut unasked = PartReader::new(stream::iter(chunks(10, 3)), 10, None, Sha256Check::Off);
        while unasked.next_part().await.unwrap().is_some() {}
        assert_eq!(unasked.sha256(), None);
    }

    #[tokio::test]
    async fn a_stream_with_another_sha256_fails_when_its_end_is_read() {
        let bytes: Vec<u8> = (0..20).map(|i| (i % 251) as u8).collect();
        let mut expected: [u8; 32] = Sha256::digest(&bytes).into();
        expected[31] ^= 1;
        let items = chunks(20, 4);
        let mut reader = PartReader::new(
            stream::iter(items),
            10,
            Some(20),
            Sha256Check::Expect(expected),
        );
        assert!(reader.next_part().await.unwrap().is_some());
        assert!(reader.next_part().await.unwrap().is_some());
        let error = reader.next_part().await.unwrap_err();
        assert!(
            matches!(error, FilestackError::ChecksumMismatch),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_error_is_reported_as_such() {
        let items = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("gone")),
        ];
        let mut reader = PartReader::new(stream::iter(items), 10, None, Sha256Check::Off);
        assert!(matches!(
            reader.next_part().await,
            Err(FilestackError::Stream(_))
        ));
    }
}
