//! Fault injection and statistics of the emulator.

use std::time::{Duration, Instant};

use filegate::filestack::policy::Call;
use serde_json::{Value, json};
use support::content::{data, md5_b64};
use support::emulator::{TestEmulator, etag, policy, query};

#[tokio::test]
async fn an_armed_status_fails_the_next_n_requests_of_that_route() {
    let emu = TestEmulator::start().await;
    emu.fault(json!({"route": "multipart_start", "status": 503, "count": 2}))
        .await;
    let body = json!({"apikey": support::emulator::API_KEY, "size": 1});
    assert_eq!(emu.post_json("/multipart/start", &body).await.0, 503);
    assert_eq!(emu.post_json("/multipart/start", &body).await.0, 503);
    let (status, _) = emu.post_json("/multipart/start", &body).await;
    assert_eq!(
        status, 403,
        "the third request reaches the handler (no policy)"
    );
    assert_eq!(emu.stats().await.requests("multipart_start"), 3);
}

#[tokio::test]
async fn complete_answers_202_k_times_before_it_succeeds() {
    let emu = TestEmulator::start().await;
    let start = emu.start_upload(5, false).await;
    let put = emu.put_chunk(&start, 1, None, b"12345".to_vec()).await;
    let etag = etag(&put);
    let parts = json!([{"part_number": 1, "etag": etag}]);
    emu.fault(json!({"route": "multipart_complete", "accepted": 2}))
        .await;
    for _ in 0..2 {
        let (status, body) = emu.complete(&start, 5, parts.clone()).await;
        assert_eq!((status, body), (202, Value::Null));
    }
    let (status, done) = emu.complete(&start, 5, parts).await;
    assert_eq!(status, 200);
    assert_eq!(done["size"], 5);
    let stats = emu.stats().await;
    assert_eq!(stats.requests("multipart_complete"), 3);
    assert_eq!(stats.pending_uploads(), 0);
}

#[tokio::test]
async fn a_cut_download_drops_the_connection_mid_body() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let data = data(200_000);
    let done = emu.upload(&data, 100_000).await;
    let url = format!(
        "{}/api/file/{}",
        emu.base_url,
        done["handle"].as_str().unwrap()
    );
    let read = emu.sign(&policy(&[Call::Read]));
    emu.fault(json!({"route": "file_get", "cut_after_bytes": 1000}))
        .await;
    let cut = match client.get(&url).query(&query(&read)).send().await {
        Ok(response) => response.bytes().await.map(|b| b.len()),
        Err(error) => Err(error),
    };
    assert!(cut.is_err(), "the body must not arrive whole: {cut:?}");
    let whole = client.get(&url).query(&query(&read)).send().await.unwrap();
    assert_eq!(whole.bytes().await.unwrap().len(), data.len());
}

#[tokio::test]
async fn a_cut_part_upload_gets_no_answer_and_can_be_retried() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let data = data(50_000);
    let start = emu.start_upload(data.len(), false).await;
    emu.fault(json!({"route": "part_put", "cut_after_bytes": 1000}))
        .await;
    let mut body = emu.session(&start);
    body["part"] = json!(1);
    body["size"] = json!(data.len());
    body["md5"] = json!(md5_b64(&data));
    let (_, answer) = emu.post_json("/multipart/upload", &body).await;
    let mut put = client
        .put(answer["url"].as_str().unwrap())
        .body(data.clone());
    for (name, value) in answer["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert!(put.send().await.is_err(), "the connection must be dropped");
    let retry = emu.put_chunk(&start, 1, None, data.clone()).await;
    assert_eq!(retry.status(), 200);
    let etag = etag(&retry);
    let parts = json!([{"part_number": 1, "etag": etag}]);
    let (status, _) = emu.complete(&start, data.len(), parts).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn latency_is_added_and_clearing_disarms_every_fault() {
    let emu = TestEmulator::start().await;
    emu.fault(json!({"route": "cdn", "latency_ms": 300})).await;
    let missing = format!("{}/AAAAAAAAAAAAAAAAAAAA", emu.base_url);
    let began = Instant::now();
    let (status, _) = emu.get(&missing).await;
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 403);
    emu.fault(json!({"route": "cdn", "status": 500, "count": 5}))
        .await;
    emu.clear_faults().await;
    let (status, _) = emu.get(&missing).await;
    assert_eq!(status, 403);
    let bad = json!({"route": "nowhere", "status": 500});
    assert_eq!(emu.post_json("/_emulator/faults", &bad).await.0, 400);
}

#[tokio::test]
async fn an_injected_status_answers_after_the_whole_body_and_keeps_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let emu = TestEmulator::start().await;
    emu.fault(json!({"route": "part_put", "status": 500})).await;
    // A body far larger than the socket buffers: a server answering before
    // reading it and closing would break this write (the JS SDK then dies
    // of an unhandled EPIPE instead of retrying the part).
    let size = 32 * 1024 * 1024;
    let addr = emu.base_url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /s3/unknown?partNumber=1&offset=0 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {size}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
        .write_all(&vec![b'x'; size])
        .await
        .expect("the whole body is read before the injected answer");
    let next = format!("GET /_emulator/stats HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    socket.write_all(next.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let read_both = async {
        while !String::from_utf8_lossy(&seen).contains("HTTP/1.1 200") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "connection closed after: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_both)
        .await
        .expect("both answers within 30 s");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 500"), "{text}");
}

/// A one-part upload of `bytes`, everything but `complete`: the start
/// answer and the parts to complete with.
async fn ready_to_complete(emu: &TestEmulator, bytes: &[u8]) -> (Value, Value) {
    let start = emu.start_upload(bytes.len(), false).await;
    let put = emu.put_chunk(&start, 1, None, bytes.to_vec()).await;
    assert_eq!(put.status(), 200);
    let parts = json!([{"part_number": 1, "etag": etag(&put)}]);
    (start, parts)
}

#[tokio::test]
async fn a_repeated_complete_is_404_by_default_and_the_same_file_when_set() {
    let emu = TestEmulator::start().await;
    let (start, parts) = ready_to_complete(&emu, b"once").await;
    let (status, first) = emu.complete(&start, 4, parts.clone()).await;
    assert_eq!(status, 200, "{first}");
    let (status, _) = emu.complete(&start, 4, parts.clone()).await;
    assert_eq!(status, 404, "a completed upload id is forgotten");

    emu.set_repeated_complete("same_file").await;
    let (status, again) = emu.complete(&start, 4, parts.clone()).await;
    assert_eq!((status, &again), (200, &first), "the first answer again");
    assert_eq!(emu.stats().await.stored_files(), 1, "no second file");
    let settings: Value = emu
        .http()
        .get(format!("{}/_emulator/settings", emu.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings, json!({"repeated_complete": "same_file"}));

    // An upload id never completed is still unknown.
    let (other, other_parts) = ready_to_complete(&emu, b"other").await;
    let mut unknown = other.clone();
    unknown["upload_id"] = json!("never-started");
    assert_eq!(emu.complete(&unknown, 5, other_parts.clone()).await.0, 404);
    assert_eq!(emu.complete(&other, 5, other_parts).await.0, 200);

    emu.set_repeated_complete("not_found").await;
    assert_eq!(emu.complete(&start, 4, parts).await.0, 404);
}

#[tokio::test]
async fn a_lost_answer_lets_the_request_take_effect_and_cuts_the_connection() {
    let emu = TestEmulator::start().await;
    for cut in [0, 1, 30] {
        let (start, parts) = ready_to_complete(&emu, b"answer lost").await;
        emu.fault(json!({"route": "multipart_complete", "cut_response_after_bytes": cut}))
            .await;
        let security = emu.sign(&policy(&[Call::Pick]));
        let mut body = emu.session(&start);
        body["filename"] = json!("lost.bin");
        body["size"] = json!(11);
        body["parts"] = parts;
        body["policy"] = json!(security.policy);
        body["signature"] = json!(security.signature);
        let url = format!("{}/multipart/complete", emu.base_url);
        let answer = async {
            let response = emu.http().post(&url).json(&body).send().await?;
            response.bytes().await
        };
        let read = answer.await;
        assert!(read.is_err(), "cut at {cut}: the answer is lost: {read:?}");
    }
    let files = emu.files().await;
    assert_eq!(files.len(), 3, "each complete took effect: {files:?}");
    assert!(files.iter().all(|(_, key)| key.ends_with("_lost.bin")));
}
