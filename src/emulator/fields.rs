//! Upload API request bodies, read leniently: JSON (Python, JS, Go, Ruby SDKs)
//! or `multipart/form-data` with flat field names (Java, PHP SDKs: `store_path`
//! for `store.path`, `multipart=true` for `fii`), numbers as numbers or strings.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use serde_json::{Map, Value};

use crate::emulator::error::ApiError;
use crate::filestack::policy::Security;

/// Largest JSON body accepted on the Upload API.
const MAX_JSON_BODY: usize = 1024 * 1024;

/// The fields of one Upload API request.
#[derive(Debug, Clone, Default)]
pub struct Fields(Map<String, Value>);

impl Fields {
    /// Reads a JSON or form-data body (an empty body gives no fields).
    pub async fn read(req: Request) -> Result<Fields, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        if is_form {
            return Self::read_form(req).await;
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|_| ApiError::bad_request("invalid params: body too large or unreadable"))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(Fields(map)),
            _ => Err(ApiError::bad_request(
                "invalid params: body is not a JSON object",
            )),
        }
    }

    async fn read_form(req: Request) -> Result<Fields, ApiError> {
        let bad = |_| ApiError::bad_request("invalid params: unreadable form data");
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|_| ApiError::bad_request("invalid params: unreadable form data"))?;
        let mut map = Map::new();
        let mut store = Map::new();
        while let Some(field) = form.next_field().await.map_err(bad)? {
            let Some(name) = field.name().map(str::to_owned) else {
                continue;
            };
            let text = field.text().await.map_err(bad)?;
            match name.strip_prefix("store_") {
                Some(key) => {
                    store.insert(key.to_owned(), Value::String(text));
                }
                None if name == "multipart" => {
                    map.insert("fii".to_owned(), Value::String(text));
                }
                None => {
                    map.insert(name, Value::String(text));
                }
            }
        }
        if !store.is_empty() {
            map.insert("store".to_owned(), Value::Object(store));
        }
        Ok(Fields(map))
    }

    /// The raw value of a field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A string field (numbers are turned into strings).
    pub fn str(&self, key: &str) -> Option<String> {
        value_str(self.get(key)?)
    }

    /// A non-negative integer field, sent as a number or a numeric string.
    pub fn u64(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean field: `true`/`false`, `1`/`0`, or a string [`parse_bool`] reads.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_u64() != Some(0)),
            Value::String(s) => parse_bool(s),
            _ => None,
        }
    }

    /// A string inside the `store` object.
    pub fn store_str(&self, key: &str) -> Option<String> {
        match self.get("store")? {
            Value::Object(store) => store.get(key).and_then(value_str),
            _ => None,
        }
    }

    /// The API key (`apikey`, `apiKey` or `key`).
    pub fn apikey(&self) -> Option<String> {
        self.str("apikey")
            .or_else(|| self.str("apiKey"))
            .or_else(|| self.str("key"))
    }

    /// The `policy` and `signature` fields, when both are present.
    pub fn security(&self) -> Option<Security> {
        Some(Security {
            policy: self.str("policy")?,
            signature: self.str("signature")?,
        })
    }
}

/// A boolean as the SDKs write it in a string: `true`/`1` or `false`/`0`/empty
/// (any case; PHP turns booleans into `1` and an empty string), `None` for
/// anything else.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" | "" => Some(false),
        _ => None,
    }
}

fn value_str(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
