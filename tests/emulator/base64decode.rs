//! `base64decode` on the one-request store and on overwrite (protocol
//! reference, sections 4.1 and 7.3): with `true` the body is base64 text and
//! the stored bytes are its decoding.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use filegate::filestack::policy::{Call, Security};
use serde_json::Value;
use support::content::{md5_hex, png};
use support::emulator::{API_KEY, TestEmulator, handle_of, policy, query};

/// `POST /api/file/{handle}?base64decode=...` with a raw body.
async fn overwrite_raw(
    emu: &TestEmulator,
    handle: &str,
    base64decode: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let write = emu.sign(&policy(&[Call::Write]).with_handle(handle));
    let mut params = query(&write);
    if let Some(value) = base64decode {
        params.push(("base64decode", value.to_owned()));
    }
    emu.http()
        .post(format!("{}/api/file/{handle}", emu.base_url))
        .query(&params)
        .body(body)
        .send()
        .await
        .expect("overwrite answers")
}

/// The stored bytes of `handle`.
async fn content(emu: &TestEmulator, handle: &str) -> Vec<u8> {
    let read = emu.sign(&policy(&[Call::Read]));
    let response = emu
        .http()
        .get(format!("{}/api/file/{handle}", emu.base_url))
        .query(&query(&read))
        .send()
        .await
        .expect("download answers");
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("a body").to_vec()
}

/// `POST /api/store/S3?base64decode=true` of `body` under `security`.
async fn store_base64(emu: &TestEmulator, security: &Security, body: String) -> reqwest::Response {
    let mut params = query(security);
    params.push(("key", API_KEY.to_owned()));
    params.push(("filename", "decoded.png".to_owned()));
    params.push(("base64decode", "true".to_owned()));
    emu.http()
        .post(format!("{}/api/store/S3", emu.base_url))
        .query(&params)
        .header("Content-Type", "image/png")
        .body(body)
        .send()
        .await
        .expect("store answers")
}

#[tokio::test]
async fn an_overwrite_with_base64decode_true_stores_the_decoded_bytes() {
    let emu = TestEmulator::start().await;
    let handle = handle_of(&emu.store_raw(b"original".to_vec(), "text/plain").await);
    let write = emu.sign(&policy(&[Call::Write]).with_handle(&handle));
    let mut params = query(&write);
    params.push(("base64decode", "true".to_owned()));
    // As filestack-python sends it: a `fileUpload` field named "filename".
    let part = reqwest::multipart::Part::bytes(STANDARD.encode(b"decoded!").into_bytes())
        .file_name("filename")
        .mime_str("application/octet-stream")
        .unwrap();
    let response = emu
        .http()
        .post(format!("{}/api/file/{handle}", emu.base_url))
        .query(&params)
        .multipart(reqwest::multipart::Form::new().part("fileUpload", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["size"], 8);
    assert_eq!(content(&emu, &handle).await, b"decoded!");
    // A raw body, URL-safe, unpadded and wrapped over lines, decodes too.
    let image = png(9, 9);
    let mut wrapped = URL_SAFE_NO_PAD.encode(&image).into_bytes();
    wrapped.splice(10..10, b"\r\n".iter().copied());
    let response = overwrite_raw(&emu, &handle, Some("true"), wrapped).await;
    assert_eq!(response.status(), 200);
    assert_eq!(content(&emu, &handle).await, image);
    let stat = emu.sign(&policy(&[Call::Stat]));
    let mut params = query(&stat);
    params.push(("md5", "true".to_owned()));
    params.push(("width", "true".to_owned()));
    let meta = emu.file_metadata(&handle, &params).await;
    assert_eq!(meta["md5"], md5_hex(&image), "hashes are of the decoding");
    assert_eq!(meta["width"], 9);
}

#[tokio::test]
async fn base64decode_false_or_absent_stores_the_body_as_sent() {
    let emu = TestEmulator::start().await;
    let handle = handle_of(&emu.store_raw(b"original".to_vec(), "text/plain").await);
    let text = STANDARD.encode(b"decoded!").into_bytes();
    for value in [Some("false"), Some("False"), Some("0"), None] {
        let response = overwrite_raw(&emu, &handle, value, text.clone()).await;
        assert_eq!(response.status(), 200, "base64decode={value:?}");
        assert_eq!(content(&emu, &handle).await, text, "base64decode={value:?}");
    }
    let response = overwrite_raw(&emu, &handle, Some("TRUE"), text).await;
    assert_eq!(response.status(), 200);
    assert_eq!(content(&emu, &handle).await, b"decoded!");
}

#[tokio::test]
async fn bad_base64_or_a_bad_base64decode_value_is_a_clear_400_that_changes_nothing() {
    let emu = TestEmulator::start().await;
    let handle = handle_of(&emu.store_raw(b"original".to_vec(), "text/plain").await);
    for (value, body, says) in [
        ("true", "not base64!", "not valid base64"),
        ("true", "QQ==QUJD", "not valid base64"),
        ("true", "QUJDR", "not valid base64"),
        ("yes", "QUJD", "base64decode must be true or false"),
    ] {
        let response = overwrite_raw(&emu, &handle, Some(value), body.into()).await;
        assert_eq!(response.status(), 400, "{value} {body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(says), "{value} {body}: {message}");
    }
    assert_eq!(content(&emu, &handle).await, b"original");
    let pick = emu.sign(&policy(&[Call::Pick]));
    let refused = store_base64(&emu, &pick, "*".repeat(8)).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(emu.stats().await.stored_files(), 1, "nothing new stored");
    let scratch = std::fs::read_dir(emu.dir().join("tmp")).unwrap().count();
    assert_eq!(scratch, 0, "no partial file is left behind");
}

#[tokio::test]
async fn a_store_with_base64decode_true_stores_the_decoded_bytes_and_bounds_their_size() {
    let emu = TestEmulator::start().await;
    let image = png(6, 4);
    let text = STANDARD.encode(&image);
    assert!(text.len() > image.len());
    let exact = emu.sign(&policy(&[Call::Pick]).with_max_size(image.len() as u64));
    let response = store_base64(&emu, &exact, text.clone()).await;
    assert_eq!(response.status(), 200, "maxSize bounds the decoded bytes");
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["size"], image.len());
    assert_eq!(stored["type"], "image/png");
    assert_eq!(content(&emu, &handle_of(&stored)).await, image);
    let smaller = emu.sign(&policy(&[Call::Pick]).with_max_size(image.len() as u64 - 1));
    let refused = store_base64(&emu, &smaller, text).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(emu.stats().await.stored_files(), 1);
}
