//! File metadata (protocol reference, section 7.2), at
//! `/api/file/{handle}/metadata` and on the CDN at `/{handle}/metadata`.
//! Needs `stat`, plus `exif` when `exif=true` is asked.
//!
//! `uploaded` is in unix **milliseconds**. `md5` and `sha256` are lowercase
//! hex, computed once when the file was stored. `sha1`, `sha224`, `sha384`,
//! `sha512`, `cloud`, `source_url` and `exif` are answered as `null`: the
//! emulator does not compute them.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value, json};

use crate::emulator::auth::query_security;
use crate::emulator::error::ApiError;
use crate::emulator::file_api::{ApiHandle, QueryMap, known};
use crate::emulator::state::Shared;
use crate::emulator::store::FileMeta;
use crate::filestack::policy::Call;

/// Fields a client may ask for.
const FIELDS: [&str; 20] = [
    "size",
    "mimetype",
    "filename",
    "width",
    "height",
    "uploaded",
    "writeable",
    "cloud",
    "source_url",
    "md5",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "location",
    "path",
    "container",
    "key",
    "exif",
];

/// Fields answered when none is asked for.
const DEFAULTS: [&str; 8] = [
    "size",
    "mimetype",
    "filename",
    "uploaded",
    "writeable",
    "location",
    "path",
    "container",
];

/// `GET /api/file/{handle}/metadata`.
pub async fn api_metadata(
    State(state): State<Shared>,
    Path(ApiHandle(handle)): Path<ApiHandle>,
    Query(query): Query<QueryMap>,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &handle, &query).await
}

/// The metadata answer for `handle` with the fields `query` asks for.
pub async fn metadata(
    state: &Shared,
    handle: &str,
    query: &QueryMap,
) -> Result<Json<Value>, ApiError> {
    let asked: Vec<&str> = FIELDS
        .into_iter()
        .filter(|f| query.get(*f).is_some_and(|v| v == "true"))
        .collect();
    let calls: &[Call] = if asked.contains(&"exif") {
        &[Call::Stat, Call::Exif]
    } else {
        &[Call::Stat]
    };
    state
        .guard
        .check(query_security(query).as_ref(), calls, Some(handle))?;
    let meta = known(state, handle).await?;
    let fields = if asked.is_empty() {
        &DEFAULTS[..]
    } else {
        &asked[..]
    };
    let mut answer = Map::new();
    for field in fields {
        answer.insert((*field).to_owned(), field_value(&meta, field));
    }
    Ok(Json(Value::Object(answer)))
}

fn field_value(meta: &FileMeta, field: &str) -> Value {
    match field {
        "size" => json!(meta.size),
        "mimetype" => json!(meta.mimetype),
        "filename" => json!(meta.filename),
        "width" => json!(meta.width),
        "height" => json!(meta.height),
        "uploaded" => json!(meta.uploaded),
        "writeable" => json!(true),
        "md5" => json!(meta.md5),
        "sha256" => json!(meta.sha256),
        "location" => json!(meta.location),
        "path" => json!(meta.path),
        "container" => json!(meta.container),
        "key" => json!(meta.key),
        _ => Value::Null,
    }
}
