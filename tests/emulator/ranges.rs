//! `Range` on the emulator's downloads (CDN and File API), as S3 answers it,
//! seen by a plain HTTP client.

use filegate::filestack::policy::Call;
use filegate::filestack::urls::signed_url;
use reqwest::StatusCode;
use serde_json::json;
use support::content::data;
use support::emulator::{TestEmulator, handle_of, policy, query};

/// A stored file of `len` bytes: its bytes, handle and a signed CDN URL.
async fn stored_file(emu: &TestEmulator, len: usize) -> (Vec<u8>, String, String) {
    let bytes = data(len);
    let handle = handle_of(
        &emu.store_raw(bytes.clone(), "application/octet-stream")
            .await,
    );
    let read = emu.sign(&policy(&[Call::Read]).with_handle(&handle));
    let url = signed_url(&emu.base_url, &handle, &read);
    (bytes, handle, url)
}

/// A stored file of `len` bytes: its bytes and a signed CDN URL.
async fn stored(emu: &TestEmulator, len: usize) -> (Vec<u8>, String) {
    let (bytes, _, url) = stored_file(emu, len).await;
    (bytes, url)
}

/// GET `url` with `Range: range` (none when `None`).
async fn get(emu: &TestEmulator, url: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = emu.http().get(url);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    request.send().await.expect("GET answers")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    let value = response.headers().get(name);
    let value = value.unwrap_or_else(|| panic!("a {name} header"));
    value.to_str().expect("ASCII").to_owned()
}

/// Status, Content-Range (empty when absent), Content-Length and body.
async fn answer(response: reqwest::Response) -> (StatusCode, String, String, Vec<u8>) {
    let status = response.status();
    let range = response
        .headers()
        .get("content-range")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let length = header(&response, "content-length");
    assert_eq!(header(&response, "accept-ranges"), "bytes");
    let body = response.bytes().await.expect("a body").to_vec();
    (status, range, length, body)
}

#[tokio::test]
async fn a_closed_range_is_206_with_its_content_range_and_only_its_bytes() {
    let emu = TestEmulator::start().await;
    let (bytes, url) = stored(&emu, 300_000).await;
    let (status, range, length, body) =
        answer(get(&emu, &url, Some("bytes=100000-249999")).await).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range, "bytes 100000-249999/300000");
    assert_eq!(length, "150000");
    assert!(body == bytes[100_000..250_000], "the range's bytes");
    let (status, range, _, body) = answer(get(&emu, &url, Some("bytes=299990-400000")).await).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range, "bytes 299990-299999/300000", "the end is clamped");
    assert_eq!(body, bytes[299_990..]);
}

#[tokio::test]
async fn open_ended_and_suffix_ranges_read_to_the_end() {
    let emu = TestEmulator::start().await;
    let (bytes, url) = stored(&emu, 1000).await;
    let (status, range, length, body) = answer(get(&emu, &url, Some("bytes=990-")).await).await;
    assert_eq!(
        (status, range.as_str(), length.as_str()),
        (StatusCode::PARTIAL_CONTENT, "bytes 990-999/1000", "10")
    );
    assert_eq!(body, bytes[990..]);
    let (status, range, _, body) = answer(get(&emu, &url, Some("bytes=-7")).await).await;
    assert_eq!(
        (status, range.as_str()),
        (StatusCode::PARTIAL_CONTENT, "bytes 993-999/1000")
    );
    assert_eq!(body, bytes[993..]);
    let (status, range, _, body) = answer(get(&emu, &url, Some("bytes=-5000")).await).await;
    assert_eq!(
        (status, range.as_str()),
        (StatusCode::PARTIAL_CONTENT, "bytes 0-999/1000"),
        "a suffix longer than the file is the whole file"
    );
    assert_eq!(body, bytes);
}

#[tokio::test]
async fn a_range_past_the_end_is_416_with_the_size() {
    let emu = TestEmulator::start().await;
    let (_, url) = stored(&emu, 1000).await;
    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let response = get(&emu, &url, Some(range)).await;
        assert_eq!(
            response.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{range}"
        );
        assert_eq!(
            header(&response, "content-range"),
            "bytes */1000",
            "{range}"
        );
    }
}

#[tokio::test]
async fn a_malformed_or_multi_range_header_is_ignored() {
    let emu = TestEmulator::start().await;
    let (bytes, url) = stored(&emu, 1000).await;
    for range in [
        None,
        Some("bytes=0-1,5-6"),
        Some("bytes=9-3"),
        Some("lines=0-1"),
    ] {
        let (status, content_range, length, body) = answer(get(&emu, &url, range).await).await;
        assert_eq!(status, StatusCode::OK, "{range:?}");
        assert_eq!((content_range.as_str(), length.as_str()), ("", "1000"));
        assert!(body == bytes, "the whole file for {range:?}");
    }
}

#[tokio::test]
async fn the_file_api_download_serves_ranges_too() {
    let emu = TestEmulator::start().await;
    let (bytes, handle, _) = stored_file(&emu, 1000).await;
    let read = emu.sign(&policy(&[Call::Read]).with_handle(&handle));
    let url = format!("{}/api/file/{handle}", emu.base_url);
    let ranged = emu.http().get(&url).query(&query(&read));
    let response = ranged.header("Range", "bytes=10-19").send().await.unwrap();
    let (status, range, length, body) = answer(response).await;
    assert_eq!(
        (status, range.as_str(), length.as_str()),
        (StatusCode::PARTIAL_CONTENT, "bytes 10-19/1000", "10")
    );
    assert_eq!(body, bytes[10..20]);
    let head = emu.http().head(&url).query(&query(&read));
    let head = head.header("Range", "bytes=-100").send().await.unwrap();
    assert_eq!(head.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&head, "content-range"), "bytes 900-999/1000");
    assert_eq!(header(&head, "content-length"), "100");
}

#[tokio::test]
async fn corrupt_byte_at_flips_one_byte_of_the_next_answer_only() {
    let emu = TestEmulator::start().await;
    let (bytes, url) = stored(&emu, 200_000).await;
    emu.fault(json!({"route": "cdn", "corrupt_byte_at": 150_000}))
        .await;
    let corrupted = emu.get_ok(&url).await;
    assert_eq!(corrupted.len(), bytes.len());
    let differing: Vec<usize> = (0..bytes.len())
        .filter(|&i| corrupted[i] != bytes[i])
        .collect();
    assert_eq!(differing, [150_000]);
    assert_eq!(corrupted[150_000], !bytes[150_000]);
    assert!(emu.get_ok(&url).await == bytes, "one answer only");
    emu.fault(json!({"route": "cdn", "corrupt_byte_at": 5}))
        .await;
    let (_, _, _, body) = answer(get(&emu, &url, Some("bytes=1000-1999")).await).await;
    assert_eq!(body[5], !bytes[1005], "the offset is in the answer's body");
}
