//! `POST /multipart/start`, `/multipart/upload` and `/multipart/commit`
//! (protocol reference, sections 5.2–5.4).
//!
//! `start` and `complete` need a policy allowing `pick` when security is on.
//! `upload` and `commit` check a policy only when one is sent (the Python SDK
//! sends none there): they are bound to an `upload_id` that only a verified
//! `start` hands out, and to the API key given at `start`.

use axum::Json;
use axum::extract::{Request, State};
use serde_json::{Value, json};

use crate::emulator::auth::{check_apikey, check_store_rules};
use crate::emulator::error::{ApiError, unix_now};
use crate::emulator::fields::Fields;
use crate::emulator::state::Shared;
use crate::emulator::store::{DEFAULT_LOCATION, StoreTarget, location_name, random_id};
use crate::emulator::uploads::{Chunk, MAX_PART_SIZE, MAX_PARTS, Upload};
use crate::filestack::policy::Call;

/// `POST /multipart/start`.
pub async fn start(State(state): State<Shared>, req: Request) -> Result<Json<Value>, ApiError> {
    let fields = Fields::read(req).await?;
    let apikey = fields.apikey();
    check_apikey(apikey.as_deref(), &state.api_key)?;
    let size = fields
        .u64("size")
        .filter(|s| *s > 0)
        .ok_or_else(|| ApiError::bad_request("invalid params: size"))?;
    let target = target_from(&fields, None)?;
    let policy = state
        .guard
        .check(fields.security().as_ref(), &[Call::Pick], None)?;
    check_store_rules(
        policy.as_ref(),
        Some(size),
        target.path.as_deref(),
        target.container.as_deref(),
    )?;
    let fii = fields.bool("fii").unwrap_or(false);
    let upload = Upload {
        apikey: apikey.unwrap_or_default(),
        size,
        target,
        fii,
        parts: Default::default(),
        started: std::time::Instant::now(),
    };
    for expired in state.uploads.expire() {
        tracing::info!(upload_id = expired, "abandoned upload forgotten");
        let _ = tokio::fs::remove_dir_all(state.store.upload_dir(&expired)).await;
    }
    let upload_id = state.uploads.start(upload)?;
    if let Err(e) = tokio::fs::create_dir_all(state.store.upload_dir(&upload_id)).await {
        state.uploads.remove(&upload_id);
        return Err(ApiError::internal(e));
    }
    let mut answer = json!({
        "uri": format!("/filegate-emulator/{}", random_id(20)),
        "region": "us-east-1",
        "upload_id": upload_id,
        "location_url": state.host,
    });
    if fii {
        answer["upload_type"] = json!("intelligent_ingestion");
    }
    Ok(Json(answer))
}

/// `POST /multipart/upload`: announces a part (or an FII chunk) and answers
/// the presigned PUT the client must send it with.
pub async fn upload(State(state): State<Shared>, req: Request) -> Result<Json<Value>, ApiError> {
    let fields = Fields::read(req).await?;
    let (id, _) = pending(&state, &fields)?;
    let part = part_number(&fields)?;
    let size = fields
        .u64("size")
        .filter(|s| *s > 0 && *s <= MAX_PART_SIZE)
        .ok_or_else(|| ApiError::bad_request("invalid params: size"))?;
    let offset = fields.u64("offset").unwrap_or(0);
    let md5 = fields.str("md5").filter(|m| !m.is_empty());
    let chunk = Chunk {
        size,
        md5: md5.clone(),
        etag: None,
    };
    state.uploads.expect_chunk(&id, part, offset, chunk)?;
    let signature = state
        .uploads
        .presign(&id, part, offset, size, md5.as_deref().unwrap_or(""));
    let date = amz_date(unix_now());
    let mut headers = json!({
        "Authorization": format!(
            "AWS4-HMAC-SHA256 Credential=FILEGATEEMULATOR/{}/us-east-1/s3/aws4_request, \
             SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date, Signature={signature}",
            &date[..8]
        ),
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "x-amz-date": date,
    });
    if let Some(md5) = md5 {
        headers["Content-MD5"] = json!(md5);
    }
    Ok(Json(json!({
        "url": format!("{}/s3/{id}?partNumber={part}&offset={offset}", state.base_url()),
        "headers": headers,
        "location_url": state.host,
    })))
}

/// `POST /multipart/commit` (Intelligent Ingestion): the part's chunks must
/// be uploaded and contiguous.
pub async fn commit(State(state): State<Shared>, req: Request) -> Result<Json<Value>, ApiError> {
    let fields = Fields::read(req).await?;
    let (id, _) = pending(&state, &fields)?;
    let part = part_number(&fields)?;
    state.uploads.commit(&id, part)?;
    Ok(Json(json!({})))
}

/// The pending upload a follow-up call names, after checking its API key and
/// (when sent) its policy.
pub fn pending(state: &Shared, fields: &Fields) -> Result<(String, Upload), ApiError> {
    check_apikey(fields.apikey().as_deref(), &state.api_key)?;
    let id = fields
        .str("upload_id")
        .ok_or_else(|| ApiError::bad_request("invalid params: upload_id"))?;
    let upload = state.uploads.get(&id)?;
    if fields.apikey().as_deref() != Some(upload.apikey.as_str()) {
        return Err(ApiError::bad_request("invalid params: apikey"));
    }
    if let Some(security) = fields.security() {
        state.guard.check(Some(&security), &[Call::Pick], None)?;
    }
    Ok((id, upload))
}

fn part_number(fields: &Fields) -> Result<u32, ApiError> {
    fields
        .u64("part")
        .filter(|p| (1..=u64::from(MAX_PARTS)).contains(p))
        .map(|p| p as u32)
        .ok_or_else(|| ApiError::bad_request("invalid params: part"))
}

/// Filename, MIME type, path, container and location of an upload, from
/// `fields`, falling back to `earlier` (what `start` was given). A location
/// Filestack does not know is a 400.
pub fn target_from(
    fields: &Fields,
    earlier: Option<&StoreTarget>,
) -> Result<StoreTarget, ApiError> {
    let filename = fields
        .str("filename")
        .or_else(|| earlier.map(|t| t.filename.clone()))
        .unwrap_or_else(|| "unnamed_file".to_owned());
    let mimetype = fields
        .str("mimetype")
        .or_else(|| earlier.map(|t| t.mimetype.clone()))
        .unwrap_or_else(|| guess_mimetype(&filename));
    let location = match fields.store_str("location") {
        Some(asked) => location_name(&asked)
            .ok_or_else(|| ApiError::bad_request("invalid params: store location"))?
            .to_owned(),
        None => earlier.map_or_else(|| DEFAULT_LOCATION.to_owned(), |t| t.location.clone()),
    };
    Ok(StoreTarget {
        path: fields
            .store_str("path")
            .or_else(|| earlier.and_then(|t| t.path.clone())),
        container: fields
            .store_str("container")
            .or_else(|| earlier.and_then(|t| t.container.clone())),
        filename,
        mimetype,
        location,
    })
}

/// The MIME type guessed from a file name, `application/octet-stream` if none.
pub fn guess_mimetype(filename: &str) -> String {
    mime_guess::from_path(filename)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// `YYYYMMDDTHHMMSSZ` for unix seconds (the `x-amz-date` format).
fn amz_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::amz_date;

    #[test]
    fn amz_dates_are_formatted_like_s3() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_536_743_147), "20180912T090547Z");
    }
}
