//! Filestack security policies: the JSON policy, its base64 encoding and its
//! HMAC-SHA256 signature (protocol reference, section 3).
//!
//! Policies built here are encoded exactly as the official Python SDK encodes
//! them (keys sorted, `", "` and `": "` separators, ASCII-only, URL-safe base64
//! with padding), so that the same policy gives the same string and signature.
//! Decoding is lenient, as Filestack's is: both base64 alphabets, with or
//! without padding, any key order, unknown keys ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::secret::Secret;

/// An operation a policy can allow (the `call` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Call {
    Pick,
    Read,
    Stat,
    Write,
    WriteUrl,
    Store,
    Convert,
    Remove,
    Exif,
    RunWorkflow,
}

impl Call {
    pub const ALL: [Call; 10] = [
        Call::Pick,
        Call::Read,
        Call::Stat,
        Call::Write,
        Call::WriteUrl,
        Call::Store,
        Call::Convert,
        Call::Remove,
        Call::Exif,
        Call::RunWorkflow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Call::Pick => "pick",
            Call::Read => "read",
            Call::Stat => "stat",
            Call::Write => "write",
            Call::WriteUrl => "writeUrl",
            Call::Store => "store",
            Call::Convert => "convert",
            Call::Remove => "remove",
            Call::Exif => "exif",
            Call::RunWorkflow => "runWorkflow",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Call {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Call::ALL.into_iter().find(|c| c.as_str() == s).ok_or(())
    }
}

/// A security policy (protocol reference, section 3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Unix seconds after which the policy is no longer valid.
    pub expiry: i64,
    /// Allowed operations; `None` allows everything except `exif`.
    pub call: Option<Vec<Call>>,
    /// Only this handle.
    pub handle: Option<String>,
    /// Regex that external processing sources must match.
    pub url: Option<String>,
    /// Largest file that may be stored, in bytes.
    pub max_size: Option<u64>,
    /// Smallest file that may be stored, in bytes.
    pub min_size: Option<u64>,
    /// Regex the storage path must match.
    pub path: Option<String>,
    /// Regex the storage container must match.
    pub container: Option<String>,
}

/// Why a policy string could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy signature does not match")]
    BadSignature,
    #[error("policy is not valid base64")]
    BadEncoding,
    #[error("policy is not a JSON object")]
    BadJson,
    #[error("policy has no valid expiry")]
    MissingExpiry,
}

impl Policy {
    /// A policy valid until `expiry` (unix seconds) for the given calls.
    pub fn new(expiry: i64, calls: &[Call]) -> Self {
        Self {
            expiry,
            call: Some(calls.to_vec()),
            ..Self::default()
        }
    }

    pub fn with_handle(mut self, handle: impl Into<String>) -> Self {
        self.handle = Some(handle.into());
        self
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = Some(max_size);
        self
    }

    /// Whether the policy allows `call` (an absent list allows all but `exif`).
    pub fn allows(&self, call: Call) -> bool {
        match &self.call {
            Some(calls) => calls.contains(&call),
            None => call != Call::Exif,
        }
    }

    /// The policy as Python's `json.dumps(policy, sort_keys=True)` writes it.
    pub fn to_json(&self) -> String {
        let mut map: BTreeMap<&str, Value> = BTreeMap::new();
        map.insert("expiry", Value::from(self.expiry));
        if let Some(calls) = &self.call {
            let calls = calls.iter().map(|c| Value::from(c.as_str())).collect();
            map.insert("call", Value::Array(calls));
        }
        let strings = [
            ("handle", &self.handle),
            ("url", &self.url),
            ("path", &self.path),
            ("container", &self.container),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                map.insert(key, Value::from(value.as_str()));
            }
        }
        if let Some(max) = self.max_size {
            map.insert("maxSize", Value::from(max));
        }
        if let Some(min) = self.min_size {
            map.insert("minSize", Value::from(min));
        }
        python_json(&map)
    }

    /// The URL-safe base64 policy string, padding kept.
    pub fn encode(&self) -> String {
        URL_SAFE.encode(self.to_json())
    }

    /// Decodes a policy string as received, in either base64 alphabet, with or
    /// without padding. Unknown keys and unknown call names are ignored.
    pub fn decode(policy_b64: &str) -> Result<Policy, PolicyError> {
        let normalized: String = policy_b64
            .trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        let bytes = URL_SAFE_NO_PAD
            .decode(normalized)
            .map_err(|_| PolicyError::BadEncoding)?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| PolicyError::BadJson)?;
        let object = value.as_object().ok_or(PolicyError::BadJson)?;
        let expiry = object
            .get("expiry")
            .and_then(json_integer)
            .ok_or(PolicyError::MissingExpiry)?;
        let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        let size = |key: &str| {
            object
                .get(key)
                .and_then(json_integer)
                .map(|n| n.max(0) as u64)
        };
        let call = object.get("call").map(|calls| match calls {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|c| c.parse().ok())
                .collect(),
            Value::String(one) => one.parse().into_iter().collect(),
            _ => Vec::new(),
        });
        Ok(Policy {
            expiry,
            call,
            handle: string("handle"),
            url: string("url"),
            max_size: size("maxSize"),
            min_size: size("minSize"),
            path: string("path"),
            container: string("container"),
        })
    }
}

/// An integer, also when sent as a float or a numeric string.
fn json_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A signed policy: the policy string and its signature, as they travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub policy: String,
    pub signature: String,
}

impl Security {
    /// Encodes and signs `policy` with the app secret.
    pub fn sign(policy: &Policy, app_secret: &Secret) -> Self {
        let encoded = policy.encode();
        let signature = sign_hex(app_secret.expose().as_bytes(), encoded.as_bytes());
        Self {
            policy: encoded,
            signature,
        }
    }

    /// The CDN task form, `security=p:<policy>,s:<signature>`.
    pub fn url_task(&self) -> String {
        format!("security=p:{},s:{}", self.policy, self.signature)
    }

    /// Checks the signature against the policy string as received (in
    /// constant time, hex compared case-insensitively), then decodes it.
    pub fn verify(&self, app_secret: &Secret) -> Result<Policy, PolicyError> {
        let expected = sign_hex(app_secret.expose().as_bytes(), self.policy.as_bytes());
        if !constant_time_eq(
            expected.as_bytes(),
            self.signature.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(PolicyError::BadSignature);
        }
        Policy::decode(&self.policy)
    }
}

/// Lowercase hex HMAC-SHA256 of `message` under `key`.
pub fn sign_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Byte-string equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Serializes like Python's `json.dumps(..., sort_keys=True)` with default
/// separators and `ensure_ascii=True`.
fn python_json(map: &BTreeMap<&str, Value>) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    serde::Serialize::serialize(map, &mut serializer).expect("serializing JSON values to memory");
    String::from_utf8(out).expect("the formatter writes ASCII")
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for ch in fragment.chars() {
            if ch.is_ascii() {
                w.write_all(&[ch as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Call, Policy, PolicyError, Security, sign_hex};
    use crate::secret::Secret;

    // Protocol reference 11.1: computed with filestack-python 4.0.0.
    const HANDLE: &str = "AbCdEfGhIjKlMnOpQrSt";
    const PY_POLICY: &str = "eyJjYWxsIjogWyJyZWFkIiwgImNvbnZlcnQiXSwgImV4cGlyeSI6IDE3MDAwMDAwMDAsICJoYW5kbGUiOiAiQWJDZEVmR2hJaktsTW5PcFFyU3QifQ==";
    const PY_SIGNATURE: &str = "d061aa949aebea5a6862e536b19f18349f8f57f3cfdd9871dbf4e939714decf8";

    fn vector_policy() -> Policy {
        Policy::new(1_700_000_000, &[Call::Read, Call::Convert]).with_handle(HANDLE)
    }

    #[test]
    fn policy_json_matches_python_sorted_spaced_form() {
        assert_eq!(
            vector_policy().to_json(),
            r#"{"call": ["read", "convert"], "expiry": 1700000000, "handle": "AbCdEfGhIjKlMnOpQrSt"}"#
        );
    }

    #[test]
    fn policy_and_signature_match_the_python_sdk_vector() {
        let security = Security::sign(&vector_policy(), &Secret::new("test-app-secret"));
        assert_eq!(security.policy, PY_POLICY);
        assert_eq!(security.signature, PY_SIGNATURE);
        assert_eq!(
            security.url_task(),
            format!("security=p:{PY_POLICY},s:{PY_SIGNATURE}")
        );
    }

    #[test]
    fn signatures_of_other_sdks_policy_strings_match_their_vectors() {
        let cases = [
            (
                "eyJleHBpcnkiOjE3MDAwMDAwMDAsImNhbGwiOlsicmVhZCIsImNvbnZlcnQiXSwiaGFuZGxlIjoiQWJDZEVmR2hJaktsTW5PcFFyU3QifQ==",
                "test-app-secret",
                "6499037a5706f1195d062197ff0f967d9c1fe046d4c28946c2c90b002e3f9ac7",
            ),
            (
                "eyJjYWxsIjpbInJlYWQiLCJjb252ZXJ0Il0sImV4cGlyeSI6MTcwMDAwMDAwMCwiaGFuZGxlIjoiQWJDZEVmR2hJaktsTW5PcFFyU3QifQ==",
                "test-app-secret",
                "213f131033a0ebe17d4d4d1f95efa3584aaeb84882bc64cf2daff566c0dca7ee",
            ),
            (
                "eyJjYWxsIjogWyJyZWFkIl0sICJleHBpcnkiOiAxNTYyNzYzMTQ2fQ==",
                "SECURITY-SECRET",
                "89f1325dca54cfce976163fb692bb266f28129525b8c6bb0eeadf4b7d450e2f0",
            ),
            (
                "eyJjYWxsIjogWyJyZWFkIl0sICJleHBpcnkiOiAyNTMzODE5NjQ0MTV9",
                "SECURITY-SECRET",
                "f61fa1effb0638ab5b6e208d5d2fd9343f8557d8a0bf529c6d8542935f77bb3c",
            ),
            (
                "eyJleHBpcmVzIjogMTIzfQ==",
                "secret",
                "379d2ba0d5be34eddf09f873b7f38643dc51599b0afcd564f52733b52d698748",
            ),
            (
                "eyJleHBpcnkiOjE1MjM1OTU2MDAsImNhbGwiOlsicGljayIsInJlYWQiLCJzdGF0Iiwid3JpdGUiLCJ3cml0ZVVybCIsInN0b3JlIiwiY29udmVydCIsInJlbW92ZSIsImV4aWYiLCJydW5Xb3JrZmxvdyJdLCJoYW5kbGUiOiJURVNUX0hBTkRMRSJ9",
                "testAppSecret",
                "7df0536104cdcc16370ad6494cdbda30c9773a62eec6e5153fa539544db6206e",
            ),
            (
                "eyJleHBpcnkiOjE2MTcyMjgwMDB9",
                "MBVEKA6ARFGNDDTVY7IQDZ4HYU",
                "8ff61ba46198ad2778933e578e62fdf37ca4e28193655e8cd04f775598165f90",
            ),
        ];
        for (policy, secret, signature) in cases {
            assert_eq!(
                sign_hex(secret.as_bytes(), policy.as_bytes()),
                signature,
                "{policy}"
            );
        }
    }

    #[test]
    fn policies_encoded_by_js_and_go_decode_to_the_same_policy() {
        let js = "eyJleHBpcnkiOjE3MDAwMDAwMDAsImNhbGwiOlsicmVhZCIsImNvbnZlcnQiXSwiaGFuZGxlIjoiQWJDZEVmR2hJaktsTW5PcFFyU3QifQ==";
        let go = "eyJjYWxsIjpbInJlYWQiLCJjb252ZXJ0Il0sImV4cGlyeSI6MTcwMDAwMDAwMCwiaGFuZGxlIjoiQWJDZEVmR2hJaktsTW5PcFFyU3QifQ";
        assert_eq!(Policy::decode(js).unwrap(), vector_policy());
        assert_eq!(Policy::decode(go).unwrap(), vector_policy());
        assert_eq!(Policy::decode(PY_POLICY).unwrap(), vector_policy());
    }

    #[test]
    fn the_full_js_call_list_decodes_every_call() {
        let all = "eyJleHBpcnkiOjE1MjM1OTU2MDAsImNhbGwiOlsicGljayIsInJlYWQiLCJzdGF0Iiwid3JpdGUiLCJ3cml0ZVVybCIsInN0b3JlIiwiY29udmVydCIsInJlbW92ZSIsImV4aWYiLCJydW5Xb3JrZmxvdyJdLCJoYW5kbGUiOiJURVNUX0hBTkRMRSJ9";
        let policy = Policy::decode(all).unwrap();
        assert_eq!(policy.call, Some(Call::ALL.to_vec()));
        assert_eq!(policy.handle.as_deref(), Some("TEST_HANDLE"));
    }

    #[test]
    fn verify_accepts_the_vector_and_refuses_a_tampered_policy_or_signature() {
        let secret = Secret::new("test-app-secret");
        let good = Security {
            policy: PY_POLICY.into(),
            signature: PY_SIGNATURE.to_uppercase(),
        };
        assert_eq!(good.verify(&secret).unwrap(), vector_policy());
        let tampered = Security {
            policy: PY_POLICY.replace("eyJj", "eyJk"),
            signature: PY_SIGNATURE.into(),
        };
        assert_eq!(tampered.verify(&secret), Err(PolicyError::BadSignature));
        let wrong_secret = Secret::new("other");
        assert_eq!(good.verify(&wrong_secret), Err(PolicyError::BadSignature));
    }

    #[test]
    fn a_policy_without_expiry_is_refused() {
        assert_eq!(
            Policy::decode("eyJleHBpcmVzIjogMTIzfQ=="),
            Err(PolicyError::MissingExpiry)
        );
        assert_eq!(Policy::decode("not base64!"), Err(PolicyError::BadEncoding));
    }

    #[test]
    fn absent_call_list_allows_everything_but_exif() {
        let open = Policy {
            expiry: 1,
            ..Policy::default()
        };
        assert!(open.allows(Call::Remove));
        assert!(!open.allows(Call::Exif));
        let narrow = Policy::new(1, &[Call::Read]);
        assert!(narrow.allows(Call::Read));
        assert!(!narrow.allows(Call::Convert));
    }

    #[test]
    fn non_ascii_is_escaped_like_python() {
        let policy = Policy {
            expiry: 1,
            path: Some("dossiers/é".into()),
            ..Policy::default()
        };
        assert_eq!(
            policy.to_json(),
            r#"{"expiry": 1, "path": "dossiers/\u00e9"}"#
        );
    }
}
