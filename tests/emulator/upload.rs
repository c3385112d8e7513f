//! The emulator's Upload API: multipart uploads, FII, form-data, policies.

use filegate::filestack::policy::{Call, Policy, Security};
use serde_json::{Value, json};
use support::content::{data, md5_b64};
use support::emulator::{API_KEY, APP_SECRET, TestEmulator, etag, policy, query};
use support::{MIB, unix_now};

#[tokio::test]
async fn a_three_part_upload_round_trips_byte_for_byte() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let data = data(5 * MIB * 2 + 123_456);
    let done = emu.upload(&data, 5 * MIB).await;
    assert_eq!(done["status"], "Stored");
    assert_eq!(done["size"], data.len());
    assert_eq!(done["filename"], "data.bin");
    let handle = done["handle"].as_str().unwrap();
    assert_eq!(handle.len(), 20);
    assert!(handle.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(done["url"], format!("{}/{handle}", emu.base_url));
    let read = emu.sign(&policy(&[Call::Read]).with_handle(handle));
    let response = client
        .get(format!("{}/{handle}", emu.base_url))
        .query(&query(&read))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    assert_eq!(status, 200);
    assert!(body == data, "downloaded bytes differ");
    let stats = emu.stats().await;
    assert_eq!(stats.pending_uploads(), 0);
    assert_eq!(stats.stored_files(), 1);
    assert_eq!(stats.requests("part_put"), 3);
    emu.stop().await;
}

#[tokio::test]
async fn start_answers_a_bare_location_url_and_the_upload_type_for_fii() {
    let emu = TestEmulator::start().await;
    let regular = emu.start_upload(10, false).await;
    for key in ["uri", "region", "upload_id", "location_url"] {
        assert!(regular[key].is_string(), "{key} missing in {regular}");
    }
    assert_eq!(
        regular["location_url"].as_str().unwrap(),
        emu.base_url.trim_start_matches("http://")
    );
    assert!(regular.get("upload_type").is_none());
    let fii = emu.start_upload(10, true).await;
    assert_eq!(fii["upload_type"], "intelligent_ingestion");
}

#[tokio::test]
async fn the_presigned_put_carries_s3_headers_and_answers_a_quoted_md5_etag() {
    let emu = TestEmulator::start().await;
    let start = emu.start_upload(11, false).await;
    let mut body = emu.session(&start);
    body["part"] = json!(1);
    body["size"] = json!(11);
    body["md5"] = json!("XrY7u+Ae7tCTyyK7j1rNww==");
    let (status, answer) = emu.post_json("/multipart/upload", &body).await;
    assert_eq!(status, 200);
    let headers = answer["headers"].as_object().unwrap();
    assert_eq!(headers["Content-MD5"], "XrY7u+Ae7tCTyyK7j1rNww==");
    for name in ["Authorization", "x-amz-date", "x-amz-content-sha256"] {
        assert!(headers.contains_key(name), "{name} missing");
    }
    let response = emu
        .put_chunk(&start, 1, None, b"hello world".to_vec())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["etag"],
        "\"5eb63bbbe01eeed093cb22bb8f5acdc3\""
    );
    assert_eq!(response.headers()["access-control-expose-headers"], "ETag");
}

#[tokio::test]
async fn a_part_with_a_wrong_md5_or_size_or_signature_is_refused() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let start = emu.start_upload(11, false).await;
    let mut body = emu.session(&start);
    body["part"] = json!(1);
    body["size"] = json!(11);
    body["md5"] = json!(md5_b64(b"hello world"));
    let (_, answer) = emu.post_json("/multipart/upload", &body).await;
    let url = answer["url"].as_str().unwrap();
    let put = |bytes: &'static [u8], drop_header: Option<&str>| {
        let mut request = client.put(url).body(bytes);
        for (name, value) in answer["headers"].as_object().unwrap() {
            if Some(name.as_str()) != drop_header {
                request = request.header(name, value.as_str().unwrap());
            }
        }
        request.send()
    };
    let wrong_md5 = put(b"hello WORLD", None).await.unwrap();
    assert_eq!(wrong_md5.status(), 400);
    assert!(wrong_md5.text().await.unwrap().contains("BadDigest"));
    assert_eq!(put(b"hello", None).await.unwrap().status(), 400);
    assert_eq!(put(b"hello world!!", None).await.unwrap().status(), 400);
    let unsigned = put(b"hello world", Some("Authorization")).await.unwrap();
    assert_eq!(unsigned.status(), 403);
    assert_eq!(put(b"hello world", None).await.unwrap().status(), 200);
}

#[tokio::test]
async fn complete_refuses_a_missing_part_a_wrong_etag_and_a_wrong_total_size() {
    let emu = TestEmulator::start().await;
    let data = data(300);
    let start = emu.start_upload(data.len(), false).await;
    let mut etags = Vec::new();
    for (i, chunk) in data.chunks(100).enumerate() {
        let response = emu
            .put_chunk(&start, i as u32 + 1, None, chunk.to_vec())
            .await;
        etags.push(etag(&response));
    }
    let part = |n: usize, etag: &str| json!({"part_number": n, "etag": etag});
    let missing = json!([part(1, &etags[0]), part(3, &etags[2])]);
    let (status, error) = emu.complete(&start, 300, missing).await;
    assert_eq!(
        (status, error["error"].as_str().unwrap()),
        (400, "invalid params: parts")
    );
    let wrong = json!([part(1, &etags[0]), part(2, "\"0000\""), part(3, &etags[2])]);
    let (status, _) = emu.complete(&start, 300, wrong).await;
    assert_eq!(status, 400);
    let all = json!([part(1, &etags[0]), part(2, &etags[1]), part(3, &etags[2])]);
    let (status, error) = emu.complete(&start, 299, all.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid params: size");
    assert!(error["timestamp"].is_i64());
    let (status, done) = emu.complete(&start, 300, all).await;
    assert_eq!(status, 200, "a refused complete can be retried: {done}");
}

#[tokio::test]
async fn intelligent_ingestion_chunks_are_committed_then_completed() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let data = data(1000);
    let start = emu.start_upload(data.len(), true).await;
    let commit = |part: u32| {
        let mut body = emu.session(&start);
        body["part"] = json!(part);
        body["size"] = json!(data.len());
        let emu = &emu;
        async move { emu.post_json("/multipart/commit", &body).await.0 }
    };
    // Part 1 in two chunks; committing with a hole is refused.
    emu.put_chunk(&start, 1, Some(0), data[..200].to_vec())
        .await;
    emu.put_chunk(&start, 1, Some(300), data[300..600].to_vec())
        .await;
    assert_eq!(commit(1).await, 400);
    emu.put_chunk(&start, 1, Some(200), data[200..300].to_vec())
        .await;
    assert_eq!(commit(1).await, 200);
    emu.put_chunk(&start, 2, None, data[600..].to_vec()).await;
    assert_eq!(commit(2).await, 200);
    let security = emu.sign(&policy(&[Call::Pick]));
    let mut body = emu.session(&start);
    body["fii"] = json!(true);
    body["size"] = json!(data.len());
    body["filename"] = json!("big.bin");
    body["policy"] = json!(security.policy);
    body["signature"] = json!(security.signature);
    let (status, done) = emu.post_json("/multipart/complete", &body).await;
    assert_eq!(status, 200, "{done}");
    let handle = done["handle"].as_str().unwrap();
    let read = emu.sign(&policy(&[Call::Read]));
    let url = format!("{}/api/file/{handle}", emu.base_url);
    let bytes = client.get(url).query(&query(&read)).send().await.unwrap();
    let bytes = bytes.bytes().await.unwrap();
    assert!(bytes == data);
}

#[tokio::test]
async fn the_form_data_variant_with_a_parts_string_is_accepted() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let security = emu.sign(&policy(&[Call::Pick]));
    let form = |pairs: Vec<(&str, String)>| {
        pairs
            .into_iter()
            .fold(reqwest::multipart::Form::new(), |f, (k, v)| {
                f.text(k.to_owned(), v)
            })
    };
    let post = |path: &str, pairs| {
        client
            .post(format!("{}/multipart/{path}", emu.base_url))
            .multipart(form(pairs))
            .send()
    };
    let common = vec![
        ("apikey", API_KEY.to_owned()),
        ("policy", security.policy.clone()),
        ("signature", security.signature.clone()),
    ];
    let mut start_fields = common.clone();
    start_fields.extend([
        ("filename", "a.txt".to_owned()),
        ("mimetype", "text/plain".to_owned()),
        ("size", "11".to_owned()),
        ("store_location", "S3".to_owned()),
        ("store_path", "docs/a.txt".to_owned()),
    ]);
    let start: Value = post("start", start_fields)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids = common.clone();
    for key in ["uri", "region", "upload_id"] {
        ids.push((key, start[key].as_str().unwrap().to_owned()));
    }
    let mut upload_fields = ids.clone();
    upload_fields.extend([
        ("part", "1".to_owned()),
        ("size", "11".to_owned()),
        ("md5", md5_b64(b"hello world")),
    ]);
    let answer: Value = post("upload", upload_fields)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut put = client
        .put(answer["url"].as_str().unwrap())
        .body("hello world");
    for (name, value) in answer["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let etag = etag(&put.send().await.unwrap());
    let mut complete_fields = ids;
    complete_fields.extend([("size", "11".to_owned()), ("parts", format!("1:{etag}"))]);
    let response = post("complete", complete_fields).await.unwrap();
    assert_eq!(response.status(), 200);
    let done: Value = response.json().await.unwrap();
    assert_eq!(done["filename"], "a.txt");
    assert_eq!(done["mimetype"], "text/plain");
    assert_eq!(done["key"], "docs/a.txt");
}

#[tokio::test]
async fn lenient_inputs_of_other_sdks_are_accepted() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let security = emu.sign(&policy(&[Call::Pick]));
    let start_body = json!({
        "apikey": API_KEY, "filename": "x.txt", "size": 5, "fii": false, "alt": "text",
        "store": {"location": "S3", "workflows": "wf-1", "filename": "x.txt"},
        "policy": security.policy, "signature": security.signature, "unknown": [1, 2],
    });
    let (status, start) = emu.post_json("/multipart/start", &start_body).await;
    assert_eq!(status, 200, "{start}");
    // No md5: the PUT is not checked against one.
    let mut body = emu.session(&start);
    body["part"] = json!("1");
    body["size"] = json!("5");
    let (status, answer) = emu.post_json("/multipart/upload", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["headers"].get("Content-MD5").is_none());
    let mut put = client.put(answer["url"].as_str().unwrap()).body("12345");
    for (name, value) in answer["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let etag = etag(&put.send().await.unwrap());
    let mut done = emu.session(&start);
    done["upload_type"] = json!("intelligent_ingestion");
    done["location_region"] = json!("us-east-1");
    done["upload_tags"] = json!(null);
    done["store"] = json!({"location": "s3", "workflows": [{"id": "wf-1"}]});
    done["parts"] = json!([{"part_number": 1, "etag": etag}]);
    done["policy"] = json!(security.policy);
    done["signature"] = json!(security.signature);
    let (status, stored) = emu.post_json("/multipart/complete", &done).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["mimetype"], "text/plain");
}

/// `/multipart/start` with `apikey` and, when given, a policy.
async fn start_with(emu: &TestEmulator, security: Option<Security>, apikey: &str) -> (u16, Value) {
    let mut body = json!({"apikey": apikey, "filename": "a", "size": 10});
    if let Some(security) = security {
        body["policy"] = json!(security.policy);
        body["signature"] = json!(security.signature);
    }
    emu.post_json("/multipart/start", &body).await
}

#[tokio::test]
async fn uploads_without_a_valid_pick_policy_or_api_key_are_refused() {
    let emu = TestEmulator::start().await;
    let read_only = emu.sign(&policy(&[Call::Read]));
    assert_eq!(start_with(&emu, Some(read_only), API_KEY).await.0, 403);
    let expired = emu.sign(&Policy::new(unix_now() - 10, &[Call::Pick]));
    assert_eq!(start_with(&emu, Some(expired), API_KEY).await.0, 403);
    let mut forged = emu.sign(&policy(&[Call::Pick]));
    forged.signature = "00".repeat(32);
    let (status, error) = start_with(&emu, Some(forged), API_KEY).await;
    assert_eq!(status, 403);
    assert!(!error.to_string().contains(APP_SECRET));
    assert_eq!(start_with(&emu, None, API_KEY).await.0, 403);
    let good = emu.sign(&policy(&[Call::Pick]));
    assert_eq!(
        start_with(&emu, Some(good.clone()), "other-key").await.0,
        400
    );
    assert_eq!(start_with(&emu, Some(good), API_KEY).await.0, 200);
    let small = emu.sign(&policy(&[Call::Pick]).with_max_size(9));
    assert_eq!(start_with(&emu, Some(small), API_KEY).await.0, 403);
}

#[tokio::test]
async fn without_security_uploads_need_no_policy() {
    let emu = TestEmulator::start_with(|config| config.security = false).await;
    assert_eq!(start_with(&emu, None, API_KEY).await.0, 200);
}

#[tokio::test]
async fn complete_echoes_the_upload_tags_it_was_given() {
    let emu = TestEmulator::start().await;
    let start = emu.start_upload(5, false).await;
    let put = emu.put_chunk(&start, 1, None, b"12345".to_vec()).await;
    let etag = etag(&put);
    let security = emu.sign(&policy(&[Call::Pick]));
    let mut body = emu.session(&start);
    body["size"] = json!(5);
    body["parts"] = json!([{"part_number": 1, "etag": etag}]);
    body["upload_tags"] = json!({"suite": "sdk-js", "run": "1"});
    body["policy"] = json!(security.policy);
    body["signature"] = json!(security.signature);
    let (status, done) = emu.post_json("/multipart/complete", &body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["upload_tags"], json!({"suite": "sdk-js", "run": "1"}));
    let untagged = emu.upload(b"no tags", 5 * MIB).await;
    assert!(untagged.get("upload_tags").is_none(), "{untagged}");
}

#[tokio::test]
async fn an_intelligent_upload_may_mix_parts_sent_whole_with_committed_parts() {
    // The JS SDK's `intelligent: 'fallback'`: start with `fii`, parts sent
    // whole and listed with their ETags at complete; a part whose PUT failed
    // is sent again as chunks and committed, and is not listed.
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let data = data(1500);
    let start = emu.start_upload(data.len(), true).await;
    let whole = emu.put_chunk(&start, 1, None, data[..1000].to_vec()).await;
    assert_eq!(whole.status(), 200);
    let etag = etag(&whole);
    let chunk = emu
        .put_chunk(&start, 2, Some(0), data[1000..].to_vec())
        .await;
    assert_eq!(chunk.status(), 200);
    let security = emu.sign(&policy(&[Call::Pick]));
    let mut body = emu.session(&start);
    body["fii"] = json!(true);
    body["size"] = json!(data.len());
    body["parts"] = json!([{"part_number": 1, "etag": etag}]);
    body["policy"] = json!(security.policy);
    body["signature"] = json!(security.signature);
    let (status, refused) = emu.post_json("/multipart/complete", &body).await;
    assert_eq!(
        status, 400,
        "part 2 is neither listed nor committed: {refused}"
    );
    let mut commit = emu.session(&start);
    commit["part"] = json!(2);
    commit["size"] = json!(data.len());
    assert_eq!(emu.post_json("/multipart/commit", &commit).await.0, 200);
    let (status, done) = emu.post_json("/multipart/complete", &body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["size"], data.len());
    let handle = done["handle"].as_str().unwrap();
    let read = emu.sign(&policy(&[Call::Read]));
    let response = client
        .get(format!("{}/api/file/{handle}", emu.base_url))
        .query(&query(&read))
        .send()
        .await
        .unwrap();
    assert!(response.bytes().await.unwrap() == data);
}
