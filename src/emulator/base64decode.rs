//! `base64decode=true` on `POST /api/store/{location}` and on an overwrite
//! (`POST|PUT /api/file/{handle}`) (protocol reference, sections 4.1 and
//! 7.3): the body (raw, or the `fileUpload` form field) is base64 text and
//! the stored file is its decoding. The text is decoded as it streams in,
//! never held whole in memory.
//!
//! Read leniently, as the official SDKs' own decoders do: the standard or
//! the URL-safe alphabet, with or without `=` padding, ASCII whitespace
//! (line breaks of wrapped base64) ignored. Anything else (a character
//! outside the alphabet, data after the padding, a length no base64 text
//! has) is a 400 that says so.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::emulator::error::ApiError;
use crate::emulator::fields::parse_bool;
use crate::emulator::file_api::QueryMap;

/// Standard alphabet (URL-safe characters are mapped onto it first), padding
/// optional, non-zero trailing bits accepted.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The error every undecodable body gets.
const NOT_BASE64: &str = "invalid params: base64decode=true but the body is not valid base64";

/// Whether the query asks for the body to be decoded: `base64decode=true`
/// (the SDKs send `true` or `false`; `1`, `0` and an empty value are read as
/// PHP writes booleans). Absent means no; any other value is a 400.
pub fn requested(query: &QueryMap) -> Result<bool, ApiError> {
    match query.get("base64decode") {
        None => Ok(false),
        Some(value) => parse_bool(value).ok_or_else(|| {
            ApiError::bad_request("invalid params: base64decode must be true or false")
        }),
    }
}

/// The decoding of a stream of base64 text, chunk by chunk; the stream ends
/// with an error (the message a client gets) at the first bad byte.
pub fn decode_stream<S, E>(text: S) -> impl Stream<Item = Result<Bytes, String>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let state = (Box::pin(text), Decoder::default(), false);
    futures_util::stream::unfold(state, |(mut text, mut decoder, done)| async move {
        if done {
            return None;
        }
        loop {
            let decoded = match text.next().await {
                Some(Ok(chunk)) => match decoder.feed(&chunk) {
                    Ok(bytes) if bytes.is_empty() => continue,
                    other => other,
                },
                Some(Err(e)) => Err(e.to_string()),
                None => match decoder.finish() {
                    Ok(bytes) if bytes.is_empty() => return None,
                    other => other,
                },
            };
            let done = decoded.is_err() || decoder.finished;
            return Some((decoded.map(Bytes::from), (text, decoder, done)));
        }
    })
}

/// Decodes base64 text fed in arbitrary pieces.
#[derive(Debug, Default)]
struct Decoder {
    /// Alphabet characters not yet decoded (fewer than 4, or a group held
    /// back until it is known not to be the last).
    pending: Vec<u8>,
    /// A group with `=` padding was decoded: only whitespace may follow.
    padded: bool,
    /// The input ended.
    finished: bool,
}

impl Decoder {
    /// Decodes every whole 4-character group `text` completes.
    fn feed(&mut self, text: &[u8]) -> Result<Vec<u8>, String> {
        for &byte in text {
            let byte = match byte {
                b'-' => b'+',
                b'_' => b'/',
                b if b.is_ascii_whitespace() => continue,
                b => b,
            };
            if self.padded {
                return Err(format!("{NOT_BASE64} (data after the = padding)"));
            }
            self.pending.push(byte);
        }
        let whole = self.pending.len() / 4 * 4;
        let group: Vec<u8> = self.pending.drain(..whole).collect();
        self.decode(&group)
    }

    /// Decodes what is left at the end of the input.
    fn finish(&mut self) -> Result<Vec<u8>, String> {
        self.finished = true;
        let rest = std::mem::take(&mut self.pending);
        self.decode(&rest)
    }

    fn decode(&mut self, groups: &[u8]) -> Result<Vec<u8>, String> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        if self.padded {
            return Err(format!("{NOT_BASE64} (data after the = padding)"));
        }
        self.padded = groups.ends_with(b"=");
        LENIENT
            .decode(groups)
            .map_err(|e| format!("{NOT_BASE64} ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::Decoder;

    fn decode_in(pieces: &[&str]) -> Result<Vec<u8>, String> {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(decoder.feed(piece.as_bytes())?);
        }
        out.extend(decoder.finish()?);
        Ok(out)
    }

    #[test]
    fn text_split_anywhere_decodes_the_same() {
        let whole = decode_in(&["ZGVjb2RlZCE="]).unwrap();
        assert_eq!(whole, b"decoded!");
        for cut in 0..12 {
            let (a, b) = "ZGVjb2RlZCE=".split_at(cut);
            assert_eq!(decode_in(&[a, b]).unwrap(), whole, "cut at {cut}");
        }
        assert_eq!(decode_in(&["ZGVj\r\nb2Rl", " ZCE\n"]).unwrap(), whole);
        assert_eq!(decode_in(&["ZGVjb2RlZCE"]).unwrap(), whole, "unpadded");
        assert_eq!(decode_in(&["-_8="]).unwrap(), decode_in(&["+/8="]).unwrap());
        assert_eq!(decode_in(&[""]).unwrap(), b"");
    }

    #[test]
    fn bad_text_is_refused_with_a_reason() {
        for bad in [
            &["ZGVj*b2Rl"][..],
            &["QQ==", "QUJD"],
            &["QQ==QUJD"],
            &["QUJDR"],
        ] {
            let error = decode_in(bad).unwrap_err();
            assert!(error.contains("not valid base64"), "{bad:?}: {error}");
        }
    }
}
