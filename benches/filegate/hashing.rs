//! What hashing costs an upload, on one core: the MD5 of each part (the
//! multipart protocol's; the direct client pays it too) and the SHA-256 of
//! the whole file (the gateway's contract), in one pass as the gateway
//! computes them and in two passes for comparison.

use std::time::Instant;

use filegate::filestack::upload::Digests;
use sha2::{Digest, Sha256};

use crate::report::{HashingResult, median};

/// Median MiB/s of each way of hashing `bytes`, cut in parts of `part` bytes
/// and fed in `chunk`-byte pieces (as the gateway receives them).
pub fn rates(bytes: &[u8], part: usize, chunk: usize, runs: usize) -> HashingResult {
    let mib = bytes.len() as f64 / (1u64 << 20) as f64;
    let rate = |hash: &dyn Fn()| {
        let rates: Vec<f64> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                hash();
                mib / started.elapsed().as_secs_f64()
            })
            .collect();
        median(&rates)
    };
    HashingResult {
        md5_parts_mib_s: rate(&|| {
            std::hint::black_box(digest(bytes, part, chunk, false));
        }),
        md5_and_sha256_one_pass_mib_s: rate(&|| {
            std::hint::black_box(digest(bytes, part, chunk, true));
        }),
        md5_and_sha256_two_passes_mib_s: rate(&|| {
            let parts = digest(bytes, part, chunk, false);
            let mut whole = Sha256::new();
            for piece in bytes.chunks(chunk) {
                whole.update(piece);
            }
            std::hint::black_box((parts, whole.finalize()));
        }),
    }
}

/// The MD5 of each part and, with `whole`, the SHA-256 of all of `bytes`.
fn digest(
    bytes: &[u8],
    part: usize,
    chunk: usize,
    whole: bool,
) -> (Vec<[u8; 16]>, Option<[u8; 32]>) {
    let mut digests = Digests::new(whole);
    let mut parts = Vec::with_capacity(bytes.len().div_ceil(part));
    for part_bytes in bytes.chunks(part) {
        for piece in part_bytes.chunks(chunk) {
            digests.update(piece);
        }
        parts.push(digests.finish_part());
    }
    (parts, digests.finish())
}
