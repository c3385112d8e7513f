//! A whole CDN path, `[APIKEY/]{TASK/}SOURCE`, to a [`Chain`].

use super::names::is_filestack_task;
use super::params::{Params, bad};
use super::parse::split_segment;
use super::syntax::{percent_decode, split_top, unquote};
use super::{Chain, Task, TransformError};
use crate::filestack::policy::Security;

/// Most segments (API key, tasks and source) a path may have.
const MAX_SEGMENTS: usize = 34;

/// Parses a CDN path; see [`super::parse_chain`].
pub(crate) fn parse(path: &str) -> Result<Chain, TransformError> {
    let path = percent_decode(path);
    let segments = split_top(path.trim_matches('/'), '/');
    if segments.len() > MAX_SEGMENTS {
        return Err(bad(
            "chain",
            "tasks",
            &format!("at most {} tasks in one URL", MAX_SEGMENTS - 2),
        ));
    }
    let source_at = source_start(&segments);
    let handle = handle(&segments[source_at..])?;
    let mut chain = Chain {
        apikey: None,
        security: None,
        tasks: Vec::new(),
        handle,
    };
    let mut leading = &segments[..source_at];
    if let Some(first) = leading.first().filter(|s| is_apikey(s)) {
        chain.apikey = Some((*first).to_owned());
        leading = &leading[1..];
    }
    for segment in leading.iter().filter(|s| !s.trim().is_empty()) {
        add_segment(&mut chain, segment)?;
    }
    Ok(chain)
}

/// Where the source begins: the last segment, or earlier when an unquoted
/// URL-like source (`https://...`, `src://...`, `b64://...`) was split on `/`.
fn source_start(segments: &[&str]) -> usize {
    let last = segments.len().saturating_sub(1);
    segments
        .windows(2)
        .position(|pair| is_scheme(pair[0]) && pair[1].is_empty())
        .unwrap_or(last)
}

fn is_scheme(segment: &str) -> bool {
    segment
        .strip_suffix(':')
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The handle named by the source segments, or why they are not one.
fn handle(source: &[&str]) -> Result<String, TransformError> {
    let joined = source.join("/");
    let raw = unquote(joined.trim());
    if raw.starts_with('[') {
        return Err(TransformError::BadSource(
            "several sources ([h1,h2]) are not supported by the emulator".to_owned(),
        ));
    }
    if raw.contains("://") {
        return Err(TransformError::BadSource(
            "external URL, storage alias and b64 sources are not supported by the emulator; use a handle"
                .to_owned(),
        ));
    }
    let valid = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(TransformError::BadSource(format!(
            "{raw:?} is not a handle (letters, digits, _ and -)"
        )));
    }
    Ok(raw.to_owned())
}

/// A first segment is an API key when it has no `=` and is no task name.
fn is_apikey(segment: &str) -> bool {
    !segment.contains('=') && !segment.trim().is_empty() && !is_filestack_task(segment.trim())
}

fn add_segment(chain: &mut Chain, segment: &str) -> Result<(), TransformError> {
    let (name, raw) = split_segment(segment);
    match name {
        "security" => {
            let security = security(raw)?;
            if chain.security.replace(security).is_some() {
                return Err(bad("security", "security", "given more than once"));
            }
        }
        "cache" | "debug" => {}
        _ => chain.tasks.push(Task::parse(segment)?),
    }
    Ok(())
}

fn security(raw: Option<&str>) -> Result<Security, TransformError> {
    let mut p = Params::parse("security", raw)?;
    let policy = p.text(&["policy", "p"])?;
    let signature = p.text(&["signature", "s"])?;
    let reason = "security needs both policy (p) and signature (s)";
    let policy = policy.ok_or_else(|| p.bad("policy", reason))?;
    let signature = signature.ok_or_else(|| p.bad("signature", reason))?;
    p.finish("policy (p) and signature (s)")?;
    Ok(Security { policy, signature })
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
