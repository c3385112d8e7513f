//! Checked domain types. Proto messages are parsed into these once, at the
//! gRPC edge; code below that never sees a raw proto type or an unchecked
//! string. Each `parse` returns the [`GatewayError`] the caller receives.

use std::fmt;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};

use crate::gateway::error::GatewayError;

/// Who owns a document: the `sub` of the caller's token. It becomes part of
/// the storage path `user-uploads/{owner}/`, so it is restricted to
/// `[A-Za-z0-9._@+-]`, 1..=128 characters, and never `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerId(String);

impl OwnerId {
    pub fn parse(sub: &str) -> Option<OwnerId> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._@+-".contains(c);
        let ok =
            (1..=128).contains(&sub.len()) && sub.chars().all(allowed) && sub != "." && sub != "..";
        ok.then(|| OwnerId(sub.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The storage path prefix of this owner's uploads.
    pub fn upload_prefix(&self) -> String {
        format!("user-uploads/{}/", self.0)
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An opaque, unguessable document id: `doc_` and 24 random alphanumerics
/// (about 143 bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentId(String);

impl DocumentId {
    const PREFIX: &'static str = "doc_";
    const RANDOM_LEN: usize = 24;

    pub fn generate() -> DocumentId {
        let random = Alphanumeric.sample_string(&mut rand::rng(), Self::RANDOM_LEN);
        DocumentId(format!("{}{random}", Self::PREFIX))
    }

    /// A malformed id is INVALID_ARGUMENT; a well-formed unknown one is
    /// NOT_FOUND later, at the database.
    pub fn parse(raw: &str) -> Result<DocumentId, GatewayError> {
        let random = raw.strip_prefix(Self::PREFIX).unwrap_or_default();
        if random.len() == Self::RANDOM_LEN && random.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(DocumentId(raw.to_owned()))
        } else {
            Err(GatewayError::invalid(
                "document_id",
                "must be an id returned by filegate (doc_ and 24 letters or digits)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Filestack handle: `[A-Za-z0-9_-]`, 1..=64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

impl Handle {
    pub fn parse(raw: &str) -> Result<Handle, GatewayError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if (1..=64).contains(&raw.len()) && raw.chars().all(allowed) {
            Ok(Handle(raw.to_owned()))
        } else {
            Err(GatewayError::invalid(
                "handle",
                "must be a Filestack handle: 1 to 64 letters, digits, '_' or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of an upload, opaque and unguessable: `upl_` and 24 random
/// alphanumerics. It names the upload's journal entry and storage path, and
/// is the `upload_id` of a resumable upload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    pub const PREFIX: &'static str = "upl_";
    const RANDOM_LEN: usize = 24;

    pub fn generate() -> UploadId {
        let random = Alphanumeric.sample_string(&mut rand::rng(), Self::RANDOM_LEN);
        UploadId(format!("{}{random}", Self::PREFIX))
    }

    /// A malformed id is INVALID_ARGUMENT `upload_id`.
    pub fn parse(raw: &str) -> Result<UploadId, GatewayError> {
        let random = raw.strip_prefix(Self::PREFIX).unwrap_or_default();
        if random.len() == Self::RANDOM_LEN && random.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(UploadId(raw.to_owned()))
        } else {
            Err(GatewayError::invalid(
                "upload_id",
                "must be an id returned by StartUpload (upl_ and 24 letters or digits)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file name: never a path, and shown as it reads. Non-empty, at most 255
/// bytes, not `.` or `..`, and none of [`Filename::refuses`]: `/`, `\`,
/// characters that look like them, control characters (NUL included), line
/// and paragraph separators, private-use characters, and format characters
/// such as the bidirectional overrides that make `invoice\u{202E}gnp.exe`
/// display as `invoiceexe.png` (zero-width joiners stay: scripts and emoji
/// sequences need them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filename(String);

impl Filename {
    const MAX_BYTES: usize = 255;

    pub fn parse(raw: &str) -> Result<Filename, GatewayError> {
        let bad = raw.is_empty()
            || raw.len() > Self::MAX_BYTES
            || raw == "."
            || raw == ".."
            || raw.chars().any(Self::refuses)
            || !raw.chars().any(Self::shows);
        if bad {
            return Err(GatewayError::invalid(
                "spec.filename",
                "must be a file name of 1 to 255 bytes with a visible character and without '/', \
                 '\\', look-alikes of them, control, format (such as bidirectional overrides), \
                 separator, private-use or noncharacters",
            ));
        }
        Ok(Filename(raw.to_owned()))
    }

    /// A name Filestack reported (a browser upload), with the characters
    /// `parse` refuses left out and cut to 255 bytes; `None` when nothing
    /// usable is left.
    pub fn cleaned(raw: &str) -> Option<Filename> {
        let mut name = String::with_capacity(raw.len().min(Self::MAX_BYTES));
        for c in raw.chars().filter(|&c| !Self::refuses(c)) {
            if name.len() + c.len_utf8() > Self::MAX_BYTES {
                break;
            }
            name.push(c);
        }
        Self::parse(&name).ok()
    }

    /// Whether `c` may not appear in a file name.
    pub fn refuses(c: char) -> bool {
        use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
        const SEPARATOR_LOOKALIKES: [char; 8] = [
            '\u{2044}', '\u{2215}', '\u{2216}', '\u{29F5}', '\u{29F8}', '\u{29F9}', '\u{FF0F}',
            '\u{FF3C}',
        ];
        // Hangul fillers: letters that render as nothing.
        const INVISIBLE_LETTERS: [char; 4] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'];
        if c == '/' || c == '\\' {
            return true;
        }
        if SEPARATOR_LOOKALIKES.contains(&c) || INVISIBLE_LETTERS.contains(&c) {
            return true;
        }
        // Noncharacters (U+FDD0..U+FDEF, and the last two of every plane):
        // never meant for interchange.
        if ('\u{FDD0}'..='\u{FDEF}').contains(&c) || (c as u32) & 0xFFFE == 0xFFFE {
            return true;
        }
        match c.general_category() {
            GeneralCategory::Format => c != '\u{200C}' && c != '\u{200D}',
            GeneralCategory::Control
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate => true,
            _ => false,
        }
    }

    /// Whether `c` shows by itself: not a space, a combining mark or a
    /// joiner. A name needs one such character, or it displays as nothing.
    fn shows(c: char) -> bool {
        use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
        !c.is_whitespace()
            && !matches!(
                c.general_category(),
                GeneralCategory::SpaceSeparator
                    | GeneralCategory::NonspacingMark
                    | GeneralCategory::EnclosingMark
                    | GeneralCategory::Format
            )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A MIME type (`type/subtype`, optional parameters), at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType(String);

impl ContentType {
    /// The given type, or one guessed from the file name when empty.
    pub fn parse_or_guess(raw: &str, filename: &Filename) -> Result<ContentType, GatewayError> {
        if raw.is_empty() {
            let guess = mime_guess::from_path(filename.as_str()).first_or_octet_stream();
            return Ok(ContentType(guess.essence_str().to_owned()));
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
        };
        let essence = raw.split(';').next().unwrap_or_default().trim();
        let valid = raw.len() <= 255
            && raw.is_ascii()
            && !raw.chars().any(|c| c.is_ascii_control())
            && essence
                .split_once('/')
                .is_some_and(|(kind, sub)| token(kind) && token(sub));
        if valid {
            Ok(ContentType(raw.to_ascii_lowercase()))
        } else {
            Err(GatewayError::invalid(
                "spec.content_type",
                "must be a MIME type such as image/png",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lowercase hex SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn parse(raw: &str) -> Result<Sha256Hex, GatewayError> {
        if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Sha256Hex(raw.to_ascii_lowercase()))
        } else {
            Err(GatewayError::invalid(
                "spec.sha256",
                "must be 64 hex digits (the SHA-256 of the file)",
            ))
        }
    }

    pub fn from_digest(digest: &[u8]) -> Sha256Hex {
        Sha256Hex(hex::encode(digest))
    }

    /// The 32 bytes it spells.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut bytes = [0; 32];
        hex::decode_to_slice(&self.0, &mut bytes).expect("checked at parse");
        bytes
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caller's idempotency key: 1..=128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// `None` for an empty key.
    pub fn parse(raw: &str, field: &'static str) -> Result<Option<RequestId>, GatewayError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() <= 128 && raw.chars().all(|c| c.is_ascii_graphic()) {
            Ok(Some(RequestId(raw.to_owned())))
        } else {
            Err(GatewayError::invalid(
                field,
                "must be at most 128 printable ASCII characters",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a signed URL or policy lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(Duration);

impl Ttl {
    /// Absent: `default`. Present: positive and at most `max`.
    pub fn parse(
        raw: Option<&prost_types::Duration>,
        default: Duration,
        max: Duration,
    ) -> Result<Ttl, GatewayError> {
        let Some(raw) = raw else {
            return Ok(Ttl(default.min(max)));
        };
        let positive = raw.seconds > 0 || (raw.seconds == 0 && raw.nanos > 0);
        let nanos_ok = (0..1_000_000_000).contains(&raw.nanos);
        let duration = Duration::new(raw.seconds.max(0) as u64, raw.nanos.max(0) as u32);
        if !positive || !nanos_ok || duration > max {
            return Err(GatewayError::invalid(
                "ttl",
                format!("must be positive and at most {} s", max.as_secs()),
            ));
        }
        // Filestack expiries are whole seconds: round up.
        Ok(Ttl(Duration::from_secs(
            duration.as_secs() + u64::from(duration.subsec_nanos() > 0),
        )))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

/// How a thumbnail fits its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Clip,
    Crop,
    Scale,
    Max,
}

/// Output format of a thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpg,
    Png,
    Webp,
    Gif,
}

/// A checked thumbnail request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbnailSpec {
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    pub enhance: bool,
    pub format: Option<ImageFormat>,
}

impl ThumbnailSpec {
    pub const MAX_DIMENSION: i32 = 10_000;

    pub fn parse_dimension(value: i32, field: &'static str) -> Result<u32, GatewayError> {
        if (1..=Self::MAX_DIMENSION).contains(&value) {
            Ok(value as u32)
        } else {
            Err(GatewayError::invalid(
                field,
                "must be between 1 and 10000 pixels",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ContentType, DocumentId, Filename, Handle, OwnerId, Sha256Hex, Ttl};
    use std::time::Duration;

    #[test]
    fn generated_document_ids_parse_and_differ() {
        let a = DocumentId::generate();
        let b = DocumentId::generate();
        assert_ne!(a, b);
        assert_eq!(DocumentId::parse(a.as_str()).unwrap(), a);
        assert!(DocumentId::parse("doc_short").is_err());
        assert!(DocumentId::parse("").is_err());
        assert!(DocumentId::parse(&"x".repeat(10_000)).is_err());
    }

    #[test]
    fn filenames_refuse_paths_and_control_characters() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a\0b",
            "tab\tname",
            &"n".repeat(256),
        ] {
            assert!(Filename::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Filename::parse("report 2026 (final).pdf").is_ok());
        assert!(Filename::parse("résumé.txt").is_ok());
    }

    #[test]
    fn filenames_refuse_every_character_that_spoofs_how_they_read() {
        // Bidirectional embeddings, overrides, isolates and marks; other
        // format characters (zero-width space, word joiner, BOM, soft
        // hyphen, tags); separators; private use; slash look-alikes;
        // invisible letters.
        let spoofers = [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
            '\u{2028}',
            '\u{2029}',
            '\u{E000}',
            '\u{F8FF}',
            '\u{2215}',
            '\u{FF0F}',
            '\u{2044}',
            '\u{FF3C}',
            '\u{3164}',
            '\u{0085}',
            '\u{007F}',
            '\u{FFFE}',
            '\u{FFFF}',
            '\u{FDD0}',
            '\u{1FFFE}',
        ];
        for c in spoofers {
            let name = format!("invoice{c}gnp.exe");
            assert!(Filename::parse(&name).is_err(), "U+{:04X}", c as u32);
            assert_eq!(
                Filename::cleaned(&name).map(|n| n.as_str().to_owned()),
                Some("invoicegnp.exe".to_owned()),
                "U+{:04X}",
                c as u32
            );
        }
        // Scripts and emoji that need joiners and selectors stay valid.
        for good in [
            "می\u{200C}خواهم.txt",
            "👩\u{200D}💻.png",
            "❤\u{FE0F}.jpg",
            "日本語.pdf",
            "Ελληνικά.doc",
        ] {
            assert!(Filename::parse(good).is_ok(), "{good}");
        }
        assert_eq!(Filename::cleaned("\u{202E}\u{202E}"), None);
        // Names that display as nothing: spaces of any kind, combining marks
        // with nothing to combine with.
        for blank in [
            " ",
            "   ",
            "\u{00A0}",
            "\u{3000}",
            "\u{0301}",
            " \u{20DD} ",
            "\u{200D}",
        ] {
            assert!(Filename::parse(blank).is_err(), "{blank:?}");
        }
        for shown in [" a", "a ", "e\u{0301}.txt", "\u{00A0}x"] {
            assert!(Filename::parse(shown).is_ok(), "{shown:?}");
        }
        assert_eq!(
            Filename::cleaned(&"é".repeat(200)).map(|n| n.as_str().len()),
            Some(254)
        );
    }

    #[test]
    fn owners_must_be_safe_path_segments() {
        assert!(OwnerId::parse("alice@example.com").is_some());
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(OwnerId::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            OwnerId::parse("bob").unwrap().upload_prefix(),
            "user-uploads/bob/"
        );
    }

    #[test]
    fn handles_and_hashes_are_checked() {
        assert!(Handle::parse("AbCdEfGhIjKlMnOpQrSt").is_ok());
        assert!(Handle::parse("ünïcode").is_err());
        assert!(Handle::parse(&"a".repeat(10_240)).is_err());
        assert!(Sha256Hex::parse(&"A".repeat(64)).is_ok());
        assert!(Sha256Hex::parse("abc").is_err());
    }

    #[test]
    fn content_type_is_guessed_from_the_name_when_absent() {
        let name = Filename::parse("photo.PNG").unwrap();
        assert_eq!(
            ContentType::parse_or_guess("", &name).unwrap().as_str(),
            "image/png"
        );
        let unknown = Filename::parse("blob").unwrap();
        assert_eq!(
            ContentType::parse_or_guess("", &unknown).unwrap().as_str(),
            "application/octet-stream"
        );
        assert!(ContentType::parse_or_guess("not a type", &name).is_err());
        assert!(ContentType::parse_or_guess("text/plain; charset=utf-8", &name).is_ok());
    }

    #[test]
    fn ttl_defaults_and_bounds() {
        let day = Duration::from_secs(86_400);
        let five = Duration::from_secs(300);
        assert_eq!(Ttl::parse(None, five, day).unwrap().as_duration(), five);
        let zero = prost_types::Duration {
            seconds: 0,
            nanos: 0,
        };
        assert!(Ttl::parse(Some(&zero), five, day).is_err());
        let negative = prost_types::Duration {
            seconds: -5,
            nanos: 0,
        };
        assert!(Ttl::parse(Some(&negative), five, day).is_err());
        let over = prost_types::Duration {
            seconds: 86_401,
            nanos: 0,
        };
        assert!(Ttl::parse(Some(&over), five, day).is_err());
        let half = prost_types::Duration {
            seconds: 0,
            nanos: 500_000_000,
        };
        assert_eq!(
            Ttl::parse(Some(&half), five, day).unwrap().as_duration(),
            Duration::from_secs(1)
        );
    }
}
