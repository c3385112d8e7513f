//! `Range` requests on downloads, as Filestack's CDN (S3 behind CloudFront)
//! answers them: one range per request (`bytes=a-b`, `bytes=a-`,
//! `bytes=-n`) gets 206 with `Content-Range: bytes a-b/total`; a range that
//! starts past the end gets 416 with `Content-Range: bytes */total`; a
//! header that is malformed, names another unit or asks for several ranges
//! is ignored (200 with the whole file).

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// No usable range: the whole file, 200.
    Whole,
    /// Bytes `start..=last` of the file, 206.
    Part { start: u64, last: u64 },
    /// A range the file cannot satisfy, 416.
    Unsatisfiable,
}

impl Requested {
    /// Resolves the `Range` header's value (if any) against `size`.
    pub fn resolve(header: Option<&[u8]>, size: u64) -> Requested {
        let Some(spec) = header.and_then(parse) else {
            return Requested::Whole;
        };
        match spec {
            Spec::From { first, last } => {
                if first >= size {
                    return Requested::Unsatisfiable;
                }
                let last = last.map_or(size - 1, |last| last.min(size - 1));
                Requested::Part { start: first, last }
            }
            Spec::Suffix(0) => Requested::Unsatisfiable,
            Spec::Suffix(_) if size == 0 => Requested::Unsatisfiable,
            Spec::Suffix(length) => Requested::Part {
                start: size.saturating_sub(length),
                last: size - 1,
            },
        }
    }
}

/// One parsed byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-[last]`.
    From { first: u64, last: Option<u64> },
    /// `-length`: the last `length` bytes.
    Suffix(u64),
}

/// Parses `bytes=<one range>`; anything else (another unit, several
/// ranges, `last < first`, not numbers) is `None`.
fn parse(header: &[u8]) -> Option<Spec> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (unit, ranges) = text.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || ranges.contains(',') {
        return None;
    }
    let (first, last) = ranges.trim().split_once('-')?;
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if digits { text.parse().ok() } else { None }
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => None,
        (true, false) => Some(Spec::Suffix(number(last)?)),
        (false, true) => Some(Spec::From {
            first: number(first)?,
            last: None,
        }),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            (last >= first).then_some(Spec::From {
                first,
                last: Some(last),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Requested;

    fn resolve(header: &str, size: u64) -> Requested {
        Requested::resolve(Some(header.as_bytes()), size)
    }

    fn part(start: u64, last: u64) -> Requested {
        Requested::Part { start, last }
    }

    #[test]
    fn single_ranges_resolve_against_the_size_as_s3_does() {
        assert_eq!(resolve("bytes=0-9", 100), part(0, 9));
        assert_eq!(resolve("bytes=90-200", 100), part(90, 99), "end clamped");
        assert_eq!(resolve("bytes=10-", 100), part(10, 99));
        assert_eq!(resolve("bytes=-10", 100), part(90, 99));
        assert_eq!(resolve("bytes=-500", 100), part(0, 99), "suffix clamped");
        assert_eq!(resolve("BYTES = 5-5", 100), part(5, 5));
    }

    #[test]
    fn ranges_past_the_end_or_of_nothing_are_unsatisfiable() {
        assert_eq!(resolve("bytes=100-", 100), Requested::Unsatisfiable);
        assert_eq!(resolve("bytes=100-200", 100), Requested::Unsatisfiable);
        assert_eq!(resolve("bytes=-0", 100), Requested::Unsatisfiable);
        assert_eq!(resolve("bytes=0-", 0), Requested::Unsatisfiable);
        assert_eq!(resolve("bytes=-5", 0), Requested::Unsatisfiable);
    }

    #[test]
    fn malformed_or_multiple_ranges_are_ignored() {
        for header in [
            "bytes=0-1,5-6",
            "bytes=9-3",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "items=0-1",
            "bytes 0-1",
            "",
        ] {
            assert_eq!(resolve(header, 100), Requested::Whole, "{header:?}");
        }
        assert_eq!(Requested::resolve(None, 100), Requested::Whole);
    }
}
