//! `POST /multipart/complete` (protocol reference, section 5.5): checks every
//! part, assembles them into one stored file and forgets the upload.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::Json;
use axum::extract::{Request, State};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::emulator::auth::check_store_rules;
use crate::emulator::body::{Hashes, append_file};
use crate::emulator::error::ApiError;
use crate::emulator::fields::Fields;
use crate::emulator::multipart::{pending, target_from};
use crate::emulator::state::Shared;
use crate::emulator::store::{FileMeta, random_id};
use crate::emulator::uploads::{Part, Upload};
use crate::filestack::policy::Call;

/// `POST /multipart/complete`.
pub async fn complete(State(state): State<Shared>, req: Request) -> Result<Json<Value>, ApiError> {
    let fields = Fields::read(req).await?;
    if let Some(answer) = fields
        .str("upload_id")
        .and_then(|id| state.completed.replay(&id))
    {
        state
            .guard
            .check(fields.security().as_ref(), &[Call::Pick], None)?;
        tracing::info!("repeated complete answered with the stored file");
        return Ok(Json(answer));
    }
    let (id, _) = pending(&state, &fields)?;
    let policy = state
        .guard
        .check(fields.security().as_ref(), &[Call::Pick], None)?;
    let upload = state
        .uploads
        .remove(&id)
        .ok_or_else(|| ApiError::not_found("invalid params: unknown upload_id"))?;
    let checked = target_from(&fields, Some(&upload.target)).and_then(|target| {
        let chunks = check_parts(&state, &id, &upload, &fields)?;
        check_store_rules(
            policy.as_ref(),
            Some(upload.size),
            target.path.as_deref(),
            target.container.as_deref(),
        )?;
        Ok((target, chunks))
    });
    let (target, chunks) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            state.uploads.restore(id, upload);
            return Err(error);
        }
    };
    let tmp = state.store.tmp_path();
    let stored = assemble(&chunks, &tmp).await;
    let _ = tokio::fs::remove_dir_all(state.store.upload_dir(&id)).await;
    let hashes = stored.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ApiError::internal(e)
    })?;
    let handle = random_id(20);
    let written = hashes.finish();
    let meta = state.store.describe(&handle, &tmp, &written, &target).await;
    state
        .store
        .commit(&tmp, &meta)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(handle, size = meta.size, "multipart upload stored");
    state.notify("fp.upload", upload_event(&state, &meta));
    let mut answer = json!({
        "handle": meta.handle,
        "url": state.cdn_url(&meta.handle),
        "filename": meta.filename,
        "size": meta.size,
        "mimetype": meta.mimetype,
        "status": "Stored",
        "container": meta.container,
        "key": meta.key,
    });
    // The JS SDK exposes the echoed tags as the uploaded file's `uploadTags`.
    if let Some(tags) = fields.get("upload_tags").filter(|t| t.is_object()) {
        answer["upload_tags"] = tags.clone();
    }
    state.completed.remember(&id, &answer);
    Ok(Json(answer))
}

/// The `fp.upload` webhook text of a stored file.
pub fn upload_event(state: &Shared, meta: &FileMeta) -> Value {
    json!({
        "container": meta.container,
        "url": state.cdn_url(&meta.handle),
        "filename": meta.filename,
        "client": "Computer",
        "key": meta.key,
        "type": meta.mimetype,
        "status": "Stored",
        "size": meta.size,
    })
}

/// The chunk files to concatenate, in order, after checking that parts
/// 1..n are all there, match the given ETags (or, unlisted in an intelligent
/// upload, were committed) and add up to the size.
fn check_parts(
    state: &Shared,
    id: &str,
    upload: &Upload,
    fields: &Fields,
) -> Result<Vec<PathBuf>, ApiError> {
    let given = given_parts(fields.get("parts"))?;
    // Intelligent ingestion completes every part received: committed ones,
    // and parts sent whole and listed with their ETag (the JS SDK's fallback
    // mode lists those, and only those).
    let fii = upload.fii || fields.bool("fii") == Some(true);
    let mut numbers: Vec<u32> = given.keys().copied().collect();
    if fii {
        numbers.extend(upload.parts.keys().filter(|n| !given.contains_key(n)));
        numbers.sort_unstable();
    }
    if numbers.is_empty() || numbers.iter().zip(1..).any(|(n, want)| *n != want) {
        return Err(ApiError::bad_request("invalid params: parts"));
    }
    let mut total = 0;
    let mut files = Vec::new();
    for number in numbers {
        let part = upload.parts.get(&number).ok_or_else(|| {
            ApiError::bad_request(format!("invalid params: parts: part {number} is missing"))
        })?;
        let etag = given.get(&number);
        total += check_part(number, part, etag, fii && etag.is_none())?;
        for offset in part.chunks.keys() {
            files.push(chunk_path(state, id, number, *offset));
        }
    }
    let declared = fields.u64("size").unwrap_or(upload.size);
    if total != upload.size || declared != upload.size {
        return Err(ApiError::bad_request("invalid params: size"));
    }
    Ok(files)
}

/// The size of one part, after checking it is whole, committed (when
/// `must_commit`) and has the ETag the client gave (checked for single-chunk
/// parts, whose ETag is the MD5 of their bytes).
fn check_part(
    number: u32,
    part: &Part,
    etag: Option<&String>,
    must_commit: bool,
) -> Result<u64, ApiError> {
    if must_commit && !part.committed {
        return Err(ApiError::bad_request(format!(
            "invalid params: parts: part {number} was not committed"
        )));
    }
    let size = part.contiguous_size().map_err(|why| {
        ApiError::bad_request(format!("invalid params: parts: part {number}: {why}"))
    })?;
    let single = match part.chunks.values().collect::<Vec<_>>().as_slice() {
        [chunk] => chunk.etag.clone(),
        _ => None,
    };
    if let (Some(given), Some(actual)) = (etag, single) {
        if *given != actual {
            return Err(ApiError::bad_request(format!(
                "invalid params: parts: wrong etag for part {number}"
            )));
        }
    }
    Ok(size)
}

/// The file holding one received chunk.
pub fn chunk_path(state: &Shared, id: &str, part: u32, offset: u64) -> PathBuf {
    state.store.upload_dir(id).join(format!("{part}-{offset}"))
}

/// `parts` as a list of `{part_number, etag}` or a `"1:etag;2:etag"` string,
/// ETags normalized (quotes dropped, lowercase).
fn given_parts(value: Option<&Value>) -> Result<BTreeMap<u32, String>, ApiError> {
    let bad = || ApiError::bad_request("invalid params: parts");
    let mut parts = BTreeMap::new();
    match value {
        None => {}
        Some(Value::String(text)) => {
            for item in text.split(';').filter(|s| !s.trim().is_empty()) {
                let (number, etag) = item.split_once(':').ok_or_else(bad)?;
                let number = number.trim().parse().map_err(|_| bad())?;
                parts.insert(number, normalize_etag(etag));
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let number = item
                    .get("part_number")
                    .and_then(Value::as_u64)
                    .ok_or_else(bad)?;
                let etag = item.get("etag").and_then(Value::as_str).ok_or_else(bad)?;
                parts.insert(
                    u32::try_from(number).map_err(|_| bad())?,
                    normalize_etag(etag),
                );
            }
        }
        Some(_) => return Err(bad()),
    }
    Ok(parts)
}

fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_ascii_lowercase()
}

async fn assemble(chunks: &[PathBuf], tmp: &std::path::Path) -> std::io::Result<Hashes> {
    let mut out = tokio::fs::File::create(tmp).await?;
    let mut hashes = Hashes::default();
    for chunk in chunks {
        append_file(chunk, &mut out, &mut hashes).await?;
    }
    out.flush().await?;
    out.sync_all().await?;
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::given_parts;

    #[test]
    fn parts_are_read_from_a_list_or_a_form_string() {
        let list = json!([{"part_number": 2, "etag": "\"AB\""}, {"part_number": 1, "etag": "cd"}]);
        let parsed = given_parts(Some(&list)).unwrap();
        assert_eq!(parsed.get(&1).map(String::as_str), Some("cd"));
        assert_eq!(parsed.get(&2).map(String::as_str), Some("ab"));
        let text = json!("1:\"cd\";2:ab");
        assert_eq!(given_parts(Some(&text)).unwrap(), parsed);
        assert!(given_parts(Some(&json!("1-cd"))).is_err());
    }
}
