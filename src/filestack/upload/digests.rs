//! The digests of an upload, computed while its bytes are cut into parts: the
//! MD5 of each part (`/multipart/upload` wants it) and, when the caller asks,
//! the SHA-256 of the whole stream.
//!
//! Both functions eat 64-byte blocks. When the part and the stream are at the
//! same offset within a block (always, when the part size is a multiple of
//! 64), every block goes to MD5 and then to SHA-256 in one loop: MD5 is one
//! long chain of dependent additions and SHA-256 runs on the SHA extensions,
//! so the CPU overlaps the two (`cargo bench --bench filegate` prints what
//! each way costs, under "Hashing").

use md5::Md5;
use sha2::{Digest, Sha256};

const BLOCK: u64 = 64;

/// MD5 of the current part and, optionally, SHA-256 of everything so far.
pub struct Digests {
    part: Md5,
    part_len: u64,
    whole: Option<Sha256>,
    whole_len: u64,
}

impl Digests {
    /// Digests of parts only, or of parts and the whole stream.
    pub fn new(whole: bool) -> Self {
        Self {
            part: Md5::new(),
            part_len: 0,
            whole: whole.then(Sha256::new),
            whole_len: 0,
        }
    }

    /// Adds bytes to the current part (and the whole stream).
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.whole {
            None => self.part.update(bytes),
            Some(whole) if self.part_len % BLOCK == self.whole_len % BLOCK => {
                let head = ((BLOCK - self.part_len % BLOCK) % BLOCK) as usize;
                let (head, rest) = bytes.split_at(head.min(bytes.len()));
                let mut blocks = rest.chunks_exact(BLOCK as usize);
                self.part.update(head);
                whole.update(head);
                for block in &mut blocks {
                    self.part.update(block);
                    whole.update(block);
                }
                self.part.update(blocks.remainder());
                whole.update(blocks.remainder());
            }
            Some(whole) => {
                self.part.update(bytes);
                whole.update(bytes);
            }
        }
        self.part_len += bytes.len() as u64;
        self.whole_len += bytes.len() as u64;
    }

    /// The MD5 of the part so far; the next bytes start a new part.
    pub fn finish_part(&mut self) -> [u8; 16] {
        self.part_len = 0;
        self.part.finalize_reset().into()
    }

    /// The SHA-256 of the whole stream, when it was asked for.
    pub fn finish(&mut self) -> Option<[u8; 32]> {
        self.whole.take().map(|whole| whole.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use md5::Md5;
    use sha2::{Digest, Sha256};

    use super::Digests;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    /// Feeds `bytes` in `chunk`-sized pieces, cutting parts of `part` bytes.
    fn digests(bytes: &[u8], part: usize, chunk: usize) -> (Vec<[u8; 16]>, [u8; 32]) {
        let mut digests = Digests::new(true);
        let mut parts = Vec::new();
        let mut in_part = 0;
        for piece in bytes.chunks(chunk) {
            let mut piece = piece;
            while !piece.is_empty() {
                let (now, later) = piece.split_at((part - in_part).min(piece.len()));
                digests.update(now);
                in_part += now.len();
                if in_part == part {
                    parts.push(digests.finish_part());
                    in_part = 0;
                }
                piece = later;
            }
        }
        if in_part > 0 {
            parts.push(digests.finish_part());
        }
        (parts, digests.finish().expect("asked for"))
    }

    #[test]
    fn part_and_stream_digests_match_one_pass_each_at_any_alignment() {
        let bytes = data(10_000);
        let whole: [u8; 32] = Sha256::digest(&bytes).into();
        for part in [64, 128, 1024, 4096, 100, 1000, 3333] {
            let expected: Vec<[u8; 16]> =
                bytes.chunks(part).map(|p| Md5::digest(p).into()).collect();
            for chunk in [1, 7, 63, 64, 65, 500, 4096, 10_000] {
                assert_eq!(
                    digests(&bytes, part, chunk),
                    (expected.clone(), whole),
                    "part {part}, chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn the_sdk_vector_and_the_empty_stream() {
        let mut digests = Digests::new(false);
        digests.update(b"hello");
        digests.update(b" world");
        let md5 = digests.finish_part();
        assert_eq!(base64_of(&md5), "XrY7u+Ae7tCTyyK7j1rNww==");
        assert_eq!(digests.finish(), None);
        let mut empty = Digests::new(true);
        assert_eq!(empty.finish_part(), <[u8; 16]>::from(Md5::digest(b"")));
        assert_eq!(empty.finish(), Some(Sha256::digest(b"").into()));
    }

    fn base64_of(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}
