//! Colour values of task parameters: hex (`F00`, `FF0000`, `FF000080`) or a
//! CSS colour name.

/// An RGBA colour.
pub(crate) type Rgba = [u8; 4];

/// Named colours the emulator knows (the CSS basic set plus a few common ones).
const NAMED: [(&str, Rgba); 22] = [
    ("black", [0, 0, 0, 255]),
    ("silver", [192, 192, 192, 255]),
    ("gray", [128, 128, 128, 255]),
    ("grey", [128, 128, 128, 255]),
    ("white", [255, 255, 255, 255]),
    ("maroon", [128, 0, 0, 255]),
    ("red", [255, 0, 0, 255]),
    ("purple", [128, 0, 128, 255]),
    ("fuchsia", [255, 0, 255, 255]),
    ("magenta", [255, 0, 255, 255]),
    ("green", [0, 128, 0, 255]),
    ("lime", [0, 255, 0, 255]),
    ("olive", [128, 128, 0, 255]),
    ("yellow", [255, 255, 0, 255]),
    ("navy", [0, 0, 128, 255]),
    ("blue", [0, 0, 255, 255]),
    ("teal", [0, 128, 128, 255]),
    ("aqua", [0, 255, 255, 255]),
    ("cyan", [0, 255, 255, 255]),
    ("orange", [255, 165, 0, 255]),
    ("pink", [255, 192, 203, 255]),
    ("transparent", [0, 0, 0, 0]),
];

/// Parses a colour; `None` when it is neither hex nor a known name.
pub(crate) fn parse(s: &str) -> Option<Rgba> {
    let s = s.trim().trim_start_matches('#');
    let lower = s.to_ascii_lowercase();
    if let Some((_, rgba)) = NAMED.iter().find(|(name, _)| *name == lower) {
        return Some(*rgba);
    }
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digit = |i: usize| u8::from_str_radix(&s[i..i + 1], 16).ok();
    let pair = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).ok();
    match s.len() {
        3 => Some([digit(0)? * 17, digit(1)? * 17, digit(2)? * 17, 255]),
        6 => Some([pair(0)?, pair(2)?, pair(4)?, 255]),
        8 => Some([pair(0)?, pair(2)?, pair(4)?, pair(6)?]),
        _ => None,
    }
}

/// What to tell a developer who gave a colour we cannot read.
pub(crate) const HINT: &str =
    "expected a hex colour (F00, FF0000 or FF0000FF as RRGGBBAA) or a CSS name such as white";

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn hex_and_named_colours_are_understood() {
        assert_eq!(parse("white"), Some([255, 255, 255, 255]));
        assert_eq!(parse("F00"), Some([255, 0, 0, 255]));
        assert_eq!(parse("00ff00"), Some([0, 255, 0, 255]));
        assert_eq!(parse("FFFFFF80"), Some([255, 255, 255, 128]));
        assert_eq!(parse("#0000FF"), Some([0, 0, 255, 255]));
    }

    #[test]
    fn nonsense_is_not_a_colour() {
        assert_eq!(parse("blurple"), None);
        assert_eq!(parse("FFFF"), None);
        assert_eq!(parse("ééé"), None);
    }
}
