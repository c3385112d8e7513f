//! The emulator's Upload API: multipart uploads, FII, form-data, policies.

#[path = "support/emulator.rs"]
mod support;

use filegate::filestack::policy::{Call, Policy, Security};
use serde_json::{Value, json};
use support::{
    API_KEY, complete, config, etag, md5_b64, pattern, policy, post_json, put_chunk, session, sign,
    start, start_upload, upload,
};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_three_part_upload_round_trips_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let data = pattern(5 * MIB * 2 + 123_456, 7);
    let done = upload(&client, &emu.base, &data, 5 * MIB).await;
    assert_eq!(done["status"], "Stored");
    assert_eq!(done["size"], data.len());
    assert_eq!(done["filename"], "data.bin");
    let handle = done["handle"].as_str().unwrap();
    assert_eq!(handle.len(), 20);
    assert!(handle.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(done["url"], format!("{}/{handle}", emu.base));
    let read = sign(&policy(&[Call::Read]).with_handle(handle));
    let response = client
        .get(format!("{}/{handle}", emu.base))
        .query(&support::query(&read))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    assert_eq!(status, 200);
    assert!(body == data, "downloaded bytes differ");
    let stats: Value = client
        .get(format!("{}/_emulator/stats", emu.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["pending_uploads"], 0);
    assert_eq!(stats["stored_files"], 1);
    assert_eq!(stats["requests"]["part_put"], 3);
    emu.stop().await;
}

#[tokio::test]
async fn start_answers_a_bare_location_url_and_the_upload_type_for_fii() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let regular = start_upload(&client, &emu.base, 10, false).await;
    for key in ["uri", "region", "upload_id", "location_url"] {
        assert!(regular[key].is_string(), "{key} missing in {regular}");
    }
    assert_eq!(
        regular["location_url"].as_str().unwrap(),
        emu.base.trim_start_matches("http://")
    );
    assert!(regular.get("upload_type").is_none());
    let fii = start_upload(&client, &emu.base, 10, true).await;
    assert_eq!(fii["upload_type"], "intelligent_ingestion");
}

#[tokio::test]
async fn the_presigned_put_carries_s3_headers_and_answers_a_quoted_md5_etag() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let start = start_upload(&client, &emu.base, 11, false).await;
    let mut body = session(&start);
    body["part"] = json!(1);
    body["size"] = json!(11);
    body["md5"] = json!("XrY7u+Ae7tCTyyK7j1rNww==");
    let (status, answer) =
        post_json(&client, &format!("{}/multipart/upload", emu.base), &body).await;
    assert_eq!(status, 200);
    let headers = answer["headers"].as_object().unwrap();
    assert_eq!(headers["Content-MD5"], "XrY7u+Ae7tCTyyK7j1rNww==");
    for name in ["Authorization", "x-amz-date", "x-amz-content-sha256"] {
        assert!(headers.contains_key(name), "{name} missing");
    }
    let response = put_chunk(&client, &emu.base, &start, 1, None, b"hello world".to_vec()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["etag"],
        "\"5eb63bbbe01eeed093cb22bb8f5acdc3\""
    );
    assert_eq!(response.headers()["access-control-expose-headers"], "ETag");
}

#[tokio::test]
async fn a_part_with_a_wrong_md5_or_size_or_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let start = start_upload(&client, &emu.base, 11, false).await;
    let mut body = session(&start);
    body["part"] = json!(1);
    body["size"] = json!(11);
    body["md5"] = json!(md5_b64(b"hello world"));
    let (_, answer) = post_json(&client, &format!("{}/multipart/upload", emu.base), &body).await;
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
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let data = pattern(300, 1);
    let start = start_upload(&client, &emu.base, data.len(), false).await;
    let mut etags = Vec::new();
    for (i, chunk) in data.chunks(100).enumerate() {
        let response = put_chunk(
            &client,
            &emu.base,
            &start,
            i as u32 + 1,
            None,
            chunk.to_vec(),
        )
        .await;
        etags.push(etag(&response));
    }
    let part = |n: usize, etag: &str| json!({"part_number": n, "etag": etag});
    let missing = json!([part(1, &etags[0]), part(3, &etags[2])]);
    let (status, error) = complete(&client, &emu.base, &start, 300, missing).await;
    assert_eq!(
        (status, error["error"].as_str().unwrap()),
        (400, "invalid params: parts")
    );
    let wrong = json!([part(1, &etags[0]), part(2, "\"0000\""), part(3, &etags[2])]);
    let (status, _) = complete(&client, &emu.base, &start, 300, wrong).await;
    assert_eq!(status, 400);
    let all = json!([part(1, &etags[0]), part(2, &etags[1]), part(3, &etags[2])]);
    let (status, error) = complete(&client, &emu.base, &start, 299, all.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid params: size");
    assert!(error["timestamp"].is_i64());
    let (status, done) = complete(&client, &emu.base, &start, 300, all).await;
    assert_eq!(status, 200, "a refused complete can be retried: {done}");
}

#[tokio::test]
async fn intelligent_ingestion_chunks_are_committed_then_completed() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let data = pattern(1000, 3);
    let start = start_upload(&client, &emu.base, data.len(), true).await;
    let commit = |part: u32| {
        let mut body = session(&start);
        body["part"] = json!(part);
        body["size"] = json!(data.len());
        let url = format!("{}/multipart/commit", emu.base);
        let client = client.clone();
        async move { post_json(&client, &url, &body).await.0 }
    };
    // Part 1 in two chunks; committing with a hole is refused.
    put_chunk(&client, &emu.base, &start, 1, Some(0), data[..200].to_vec()).await;
    put_chunk(
        &client,
        &emu.base,
        &start,
        1,
        Some(300),
        data[300..600].to_vec(),
    )
    .await;
    assert_eq!(commit(1).await, 400);
    put_chunk(
        &client,
        &emu.base,
        &start,
        1,
        Some(200),
        data[200..300].to_vec(),
    )
    .await;
    assert_eq!(commit(1).await, 200);
    put_chunk(&client, &emu.base, &start, 2, None, data[600..].to_vec()).await;
    assert_eq!(commit(2).await, 200);
    let security = sign(&policy(&[Call::Pick]));
    let mut body = session(&start);
    body["fii"] = json!(true);
    body["size"] = json!(data.len());
    body["filename"] = json!("big.bin");
    body["policy"] = json!(security.policy);
    body["signature"] = json!(security.signature);
    let (status, done) =
        post_json(&client, &format!("{}/multipart/complete", emu.base), &body).await;
    assert_eq!(status, 200, "{done}");
    let handle = done["handle"].as_str().unwrap();
    let read = sign(&policy(&[Call::Read]));
    let url = format!("{}/api/file/{handle}", emu.base);
    let bytes = client
        .get(url)
        .query(&support::query(&read))
        .send()
        .await
        .unwrap();
    let bytes = bytes.bytes().await.unwrap();
    assert!(bytes == data);
}

#[tokio::test]
async fn the_form_data_variant_with_a_parts_string_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let security = sign(&policy(&[Call::Pick]));
    let form = |pairs: Vec<(&str, String)>| {
        pairs
            .into_iter()
            .fold(reqwest::multipart::Form::new(), |f, (k, v)| {
                f.text(k.to_owned(), v)
            })
    };
    let post = |path: &str, pairs| {
        client
            .post(format!("{}/multipart/{path}", emu.base))
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
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let security = sign(&policy(&[Call::Pick]));
    let start_body = json!({
        "apikey": API_KEY, "filename": "x.txt", "size": 5, "fii": false, "alt": "text",
        "store": {"location": "S3", "workflows": "wf-1", "filename": "x.txt"},
        "policy": security.policy, "signature": security.signature, "unknown": [1, 2],
    });
    let (status, start) = post_json(
        &client,
        &format!("{}/multipart/start", emu.base),
        &start_body,
    )
    .await;
    assert_eq!(status, 200, "{start}");
    // No md5: the PUT is not checked against one.
    let mut body = session(&start);
    body["part"] = json!("1");
    body["size"] = json!("5");
    let (status, answer) =
        post_json(&client, &format!("{}/multipart/upload", emu.base), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["headers"].get("Content-MD5").is_none());
    let mut put = client.put(answer["url"].as_str().unwrap()).body("12345");
    for (name, value) in answer["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let etag = etag(&put.send().await.unwrap());
    let mut done = session(&start);
    done["upload_type"] = json!("intelligent_ingestion");
    done["location_region"] = json!("us-east-1");
    done["upload_tags"] = json!(null);
    done["store"] = json!({"location": "s3", "workflows": [{"id": "wf-1"}]});
    done["parts"] = json!([{"part_number": 1, "etag": etag}]);
    done["policy"] = json!(security.policy);
    done["signature"] = json!(security.signature);
    let (status, stored) =
        post_json(&client, &format!("{}/multipart/complete", emu.base), &done).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["mimetype"], "text/plain");
}

async fn start_with(base: &str, security: Option<Security>, apikey: &str) -> (u16, Value) {
    let mut body = json!({"apikey": apikey, "filename": "a", "size": 10});
    if let Some(security) = security {
        body["policy"] = json!(security.policy);
        body["signature"] = json!(security.signature);
    }
    post_json(
        &reqwest::Client::new(),
        &format!("{base}/multipart/start"),
        &body,
    )
    .await
}

#[tokio::test]
async fn uploads_without_a_valid_pick_policy_or_api_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let base = &emu.base;
    let read_only = sign(&policy(&[Call::Read]));
    assert_eq!(start_with(base, Some(read_only), API_KEY).await.0, 403);
    let expired = sign(&Policy::new(support::filegate_now() - 10, &[Call::Pick]));
    assert_eq!(start_with(base, Some(expired), API_KEY).await.0, 403);
    let mut forged = sign(&policy(&[Call::Pick]));
    forged.signature = "00".repeat(32);
    let (status, error) = start_with(base, Some(forged), API_KEY).await;
    assert_eq!(status, 403);
    assert!(!error.to_string().contains(support::APP_SECRET));
    assert_eq!(start_with(base, None, API_KEY).await.0, 403);
    let good = sign(&policy(&[Call::Pick]));
    assert_eq!(
        start_with(base, Some(good.clone()), "other-key").await.0,
        400
    );
    assert_eq!(start_with(base, Some(good), API_KEY).await.0, 200);
    let small = sign(&policy(&[Call::Pick]).with_max_size(9));
    assert_eq!(start_with(base, Some(small), API_KEY).await.0, 403);
}

#[tokio::test]
async fn without_security_uploads_need_no_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut open = config(dir.path());
    open.security = false;
    let emu = start(open).await;
    assert_eq!(start_with(&emu.base, None, API_KEY).await.0, 200);
}

#[tokio::test]
async fn complete_echoes_the_upload_tags_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let start = start_upload(&client, &emu.base, 5, false).await;
    let put = put_chunk(&client, &emu.base, &start, 1, None, b"12345".to_vec()).await;
    let etag = etag(&put);
    let security = sign(&policy(&[Call::Pick]));
    let mut body = session(&start);
    body["size"] = json!(5);
    body["parts"] = json!([{"part_number": 1, "etag": etag}]);
    body["upload_tags"] = json!({"suite": "sdk-js", "run": "1"});
    body["policy"] = json!(security.policy);
    body["signature"] = json!(security.signature);
    let url = format!("{}/multipart/complete", emu.base);
    let (status, done) = post_json(&client, &url, &body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["upload_tags"], json!({"suite": "sdk-js", "run": "1"}));
    let untagged = upload(&client, &emu.base, b"no tags", 5 * MIB).await;
    assert!(untagged.get("upload_tags").is_none(), "{untagged}");
}

#[tokio::test]
async fn an_intelligent_upload_may_mix_parts_sent_whole_with_committed_parts() {
    // The JS SDK's `intelligent: 'fallback'`: start with `fii`, parts sent
    // whole and listed with their ETags at complete; a part whose PUT failed
    // is sent again as chunks and committed, and is not listed.
    let dir = tempfile::tempdir().unwrap();
    let emu = start(config(dir.path())).await;
    let client = reqwest::Client::new();
    let data = pattern(1500, 3);
    let start = start_upload(&client, &emu.base, data.len(), true).await;
    let whole = put_chunk(&client, &emu.base, &start, 1, None, data[..1000].to_vec()).await;
    assert_eq!(whole.status(), 200);
    let etag = etag(&whole);
    let chunk = put_chunk(
        &client,
        &emu.base,
        &start,
        2,
        Some(0),
        data[1000..].to_vec(),
    )
    .await;
    assert_eq!(chunk.status(), 200);
    let security = sign(&policy(&[Call::Pick]));
    let mut body = session(&start);
    body["fii"] = json!(true);
    body["size"] = json!(data.len());
    body["parts"] = json!([{"part_number": 1, "etag": etag}]);
    body["policy"] = json!(security.policy);
    body["signature"] = json!(security.signature);
    let complete_url = format!("{}/multipart/complete", emu.base);
    let (status, refused) = post_json(&client, &complete_url, &body).await;
    assert_eq!(
        status, 400,
        "part 2 is neither listed nor committed: {refused}"
    );
    let mut commit = session(&start);
    commit["part"] = json!(2);
    commit["size"] = json!(data.len());
    let commit_url = format!("{}/multipart/commit", emu.base);
    assert_eq!(post_json(&client, &commit_url, &commit).await.0, 200);
    let (status, done) = post_json(&client, &complete_url, &body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["size"], data.len());
    let handle = done["handle"].as_str().unwrap();
    let read = sign(&policy(&[Call::Read]));
    let response = client
        .get(format!("{}/api/file/{handle}", emu.base))
        .query(&support::query(&read))
        .send()
        .await
        .unwrap();
    assert!(response.bytes().await.unwrap() == data);
}
