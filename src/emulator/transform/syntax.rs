//! Lexical layer of CDN paths: splitting on separators while respecting
//! double quotes and `[...]` lists, percent-decoding, and raw parameter values.

/// A raw parameter value, quotes already removed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `v` or `"v, with / and ,"`.
    Scalar(String),
    /// `[a,b,"c/d"]`.
    List(Vec<String>),
}

impl Value {
    /// Parses one value as it appears after `key:`.
    pub(crate) fn parse(raw: &str) -> Value {
        let raw = raw.trim();
        match raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(inner) if inner.trim().is_empty() => Value::List(Vec::new()),
            Some(inner) => Value::List(
                split_top(inner, ',')
                    .into_iter()
                    .map(|item| unquote(item.trim()).to_owned())
                    .collect(),
            ),
            None => Value::Scalar(unquote(raw).to_owned()),
        }
    }
}

/// Splits `input` on `sep`, except inside double quotes or square brackets.
/// An unbalanced quote or bracket simply extends to the end of the input.
pub(crate) fn split_top(input: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in input.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '[' if !in_quotes => depth += 1,
            ']' if !in_quotes => depth = depth.saturating_sub(1),
            c if c == sep && !in_quotes && depth == 0 => {
                parts.push(&input[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

/// Removes one pair of surrounding double quotes, if present.
pub(crate) fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(s)
}

/// Decodes `%XX` escapes (a client may send `"` as `%22`); malformed escapes
/// and sequences that are not UTF-8 are kept as they are.
pub(crate) fn percent_decode(input: &str) -> String {
    if !input.contains('%') {
        return input.to_owned();
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| input.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{Value, percent_decode, split_top};

    #[test]
    fn slashes_inside_quotes_and_brackets_do_not_split() {
        let parts = split_top(r#"store=path:"dir/a.png"/zip/["src://a/b.jpg","x"]/H"#, '/');
        assert_eq!(
            parts,
            vec![
                r#"store=path:"dir/a.png""#,
                "zip",
                r#"["src://a/b.jpg","x"]"#,
                "H"
            ]
        );
    }

    #[test]
    fn commas_inside_lists_do_not_split_parameters() {
        let parts = split_top("dim:[10,20,300,400],x:1", ',');
        assert_eq!(parts, vec!["dim:[10,20,300,400]", "x:1"]);
    }

    #[test]
    fn values_are_scalars_or_lists_without_quotes() {
        assert_eq!(Value::parse("200"), Value::Scalar("200".into()));
        assert_eq!(Value::parse(r#""a,b/c""#), Value::Scalar("a,b/c".into()));
        assert_eq!(
            Value::parse(r#"[top, "left"]"#),
            Value::List(vec!["top".into(), "left".into()])
        );
        assert_eq!(Value::parse("[]"), Value::List(Vec::new()));
    }

    #[test]
    fn percent_escapes_are_decoded_and_malformed_ones_kept() {
        assert_eq!(percent_decode("%22a%2Fb%22"), "\"a/b\"");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("plain"), "plain");
    }
}
