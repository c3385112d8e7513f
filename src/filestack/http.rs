//! Sending one request and reading its answer, with bounded bodies and
//! errors that never carry a URL, a policy or a signature.

use serde::de::DeserializeOwned;

use crate::filestack::error::{BODY_EXCERPT_LIMIT, FilestackError, from_status};

/// Largest JSON answer this client reads.
const MAX_JSON_BODY: usize = 1024 * 1024;
/// Largest error body read (only an excerpt is kept).
const MAX_ERROR_BODY: usize = 16 * BODY_EXCERPT_LIMIT;

/// Sends `request`; any status outside 2xx becomes an error, with `secrets`
/// (policy, signature) redacted from the body excerpt.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    secrets: &[&str],
) -> Result<reqwest::Response, FilestackError> {
    let response = request.send().await.map_err(FilestackError::transport)?;
    if response.status().is_success() {
        return Ok(response);
    }
    Err(failure(response, secrets).await)
}

/// The error a non-success answer stands for, with `secrets` redacted from
/// the excerpt of its body.
pub(crate) async fn failure(response: reqwest::Response, secrets: &[&str]) -> FilestackError {
    let status = response.status().as_u16();
    let body = read_limited(response, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    from_status(status, &body, secrets)
}

/// Reads and parses a JSON answer of at most 1 MiB.
pub(crate) async fn json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, FilestackError> {
    let body = read_limited(response, MAX_JSON_BODY).await?;
    serde_json::from_slice(&body)
        .map_err(|error| FilestackError::Protocol(format!("{what}: invalid JSON answer: {error}")))
}

/// Reads a body, stopping after `limit` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, FilestackError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FilestackError::transport)? {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == limit {
            break;
        }
    }
    Ok(body)
}

/// `base` and `path` joined by exactly one `/`.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Refuses anything but `[A-Za-z0-9_-]+`, so a handle cannot change a URL's path.
pub(crate) fn check_handle(handle: &str) -> Result<(), FilestackError> {
    let valid = !handle.is_empty()
        && handle.len() <= 128
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(FilestackError::InvalidHandle)
    }
}

#[cfg(test)]
mod tests {
    use super::{check_handle, join};

    #[test]
    fn handles_that_could_escape_the_path_are_refused() {
        assert!(check_handle("AbCdEfGhIjKlMnOpQrSt").is_ok());
        assert!(check_handle("a_b-c").is_ok());
        for bad in ["", "../x", "a/b", "a?b=1", "a b", "ä"] {
            assert!(check_handle(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn joining_keeps_exactly_one_slash() {
        assert_eq!(join("http://h/api/", "/file/x"), "http://h/api/file/x");
        assert_eq!(
            join("http://h", "multipart/start"),
            "http://h/multipart/start"
        );
    }
}
