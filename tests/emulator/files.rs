//! The emulator's File API, simple store, metadata, CDN and persistence.

use filegate::filestack::policy::{Call, Policy, Security};
use serde_json::Value;
use support::emulator::{API_KEY, TestEmulator, handle_of, policy, query};
use support::unix_now;

#[tokio::test]
async fn store_accepts_a_form_field_and_a_raw_body() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let raw = emu.store_raw(b"raw bytes".to_vec(), "text/plain").await;
    assert_eq!(raw["size"], 9);
    assert_eq!(raw["type"], "text/plain");
    assert_eq!(raw["mimetype"], "text/plain");
    assert_eq!(raw["filename"], "pic.png");
    assert_eq!(raw["url"], format!("{}/{}", emu.base_url, handle_of(&raw)));
    assert!(raw["key"].as_str().unwrap().ends_with("_pic.png"));
    let security = emu.sign(&policy(&[Call::Pick]));
    let mut params = query(&security);
    params.push(("key", API_KEY.to_owned()));
    params.push(("path", "dir/".to_owned()));
    let part = reqwest::multipart::Part::bytes(b"form bytes".to_vec())
        .file_name("notes.txt")
        .mime_str("text/markdown")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("other", "ignored")
        .part("fileUpload", part);
    let response = client
        .post(format!("{}/api/store/s3", emu.base_url))
        .query(&params)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["filename"], "notes.txt");
    assert_eq!(stored["mimetype"], "text/markdown");
    assert_eq!(stored["size"], 10);
    assert!(stored["key"].as_str().unwrap().starts_with("dir/"));
    let (status, _) = emu.post_json("/api/store/S3?key=wrong", &Value::Null).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn store_enforces_the_policy_size_and_path_rules() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let send = |security: Security, path: &str| {
        let mut params = query(&security);
        params.push(("key", API_KEY.to_owned()));
        params.push(("path", path.to_owned()));
        client
            .post(format!("{}/api/store/S3", emu.base_url))
            .query(&params)
            .body("0123456789")
            .send()
    };
    let small = emu.sign(&policy(&[Call::Pick]).with_max_size(5));
    assert_eq!(send(small, "a").await.unwrap().status(), 403);
    let rooted = emu.sign(&policy(&[Call::Pick]).with_path("users/1/.*"));
    assert_eq!(
        send(rooted.clone(), "users/2/x").await.unwrap().status(),
        403
    );
    assert_eq!(send(rooted, "users/1/x").await.unwrap().status(), 200);
    let stats = emu.stats().await;
    assert_eq!(stats.stored_files(), 1, "refused files are not kept");
}

#[tokio::test]
async fn downloads_carry_filestack_headers_and_need_a_read_policy_for_that_handle() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let handle = handle_of(&emu.store_raw(b"hello".to_vec(), "text/plain").await);
    let other = handle_of(&emu.store_raw(b"other".to_vec(), "text/plain").await);
    let read = emu.sign(&policy(&[Call::Read]).with_handle(&handle));
    let url = format!("{}/api/file/{handle}", emu.base_url);
    let response = client.get(&url).query(&query(&read)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["content-length"], "5");
    assert_eq!(
        headers["content-disposition"],
        "inline; filename=\"pic.png\""
    );
    assert_eq!(headers["x-file-name"], "pic.png");
    assert_eq!(response.text().await.unwrap(), "hello");
    let mut download = query(&read);
    download.push(("dl", "true".to_owned()));
    let response = client.get(&url).query(&download).send().await.unwrap();
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"pic.png\""
    );
    let head = client.head(&url).query(&query(&read)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "5");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 403);
    let pinned_elsewhere = format!("{}/api/file/{other}", emu.base_url);
    let refused = client
        .get(&pinned_elsewhere)
        .query(&query(&read))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let cdn_other = format!("{}/{other}", emu.base_url);
    let refused = client
        .get(&cdn_other)
        .query(&query(&read))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].is_string() && body["timestamp"].is_i64());
}

#[tokio::test]
async fn a_deleted_file_is_gone_and_delete_needs_key_and_remove() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let handle = handle_of(&emu.store_raw(b"bye".to_vec(), "text/plain").await);
    let url = format!("{}/api/file/{handle}", emu.base_url);
    let remove = emu.sign(&policy(&[Call::Remove]).with_handle(&handle));
    let read = emu.sign(&policy(&[Call::Read]));
    let mut params = query(&remove);
    assert_eq!(
        client
            .delete(&url)
            .query(&params)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    params.push(("key", API_KEY.to_owned()));
    let wrong_call = {
        let mut p = query(&read);
        p.push(("key", API_KEY.to_owned()));
        p
    };
    assert_eq!(
        client
            .delete(&url)
            .query(&wrong_call)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        client
            .delete(&url)
            .query(&params)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(&url)
            .query(&query(&read))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .delete(&url)
            .query(&params)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let other = handle_of(&emu.store_raw(b"two".to_vec(), "text/plain").await);
    let remove_any = emu.sign(&policy(&[Call::Remove]));
    let mut params = query(&remove_any);
    params.push(("key", API_KEY.to_owned()));
    let post_remove = format!("{}/api/file/{other}/remove", emu.base_url);
    assert_eq!(
        client
            .post(&post_remove)
            .query(&params)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let cdn = format!("{}/{other}", emu.base_url);
    assert_eq!(
        client
            .get(&cdn)
            .query(&query(&read))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn an_overwrite_changes_content_and_size_and_needs_write() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let handle = handle_of(&emu.store_raw(b"old".to_vec(), "text/plain").await);
    let url = format!("{}/api/file/{handle}", emu.base_url);
    let read = emu.sign(&policy(&[Call::Read]));
    let write = emu.sign(&policy(&[Call::Write]).with_handle(&handle));
    let refused = client
        .post(&url)
        .query(&query(&read))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let part = reqwest::multipart::Part::bytes(b"new content".to_vec()).file_name("filename");
    let form = reqwest::multipart::Form::new().part("fileUpload", part);
    let response = client
        .post(&url)
        .query(&query(&write))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["size"], 11);
    assert_eq!(answer["isWriteable"], true);
    assert_eq!(answer["filename"], "pic.png");
    assert_eq!(answer["url"], url);
    let body = client.get(&url).query(&query(&read)).send().await.unwrap();
    assert_eq!(body.text().await.unwrap(), "new content");
    let put = client
        .put(&url)
        .query(&query(&write))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let answer: Value = put.json().await.unwrap();
    assert_eq!(
        (answer["size"].clone(), answer["mimetype"].clone()),
        (2.into(), "application/json".into())
    );
    let missing = format!("{}/api/file/AAAAAAAAAAAAAAAAAAAA", emu.base_url);
    let write_any = emu.sign(&policy(&[Call::Write]));
    let response = client
        .post(&missing)
        .query(&query(&write_any))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn an_expired_or_forged_policy_cannot_read() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let handle = handle_of(&emu.store_raw(b"s".to_vec(), "text/plain").await);
    let url = format!("{}/{handle}", emu.base_url);
    let expired = emu.sign(&Policy::new(unix_now() - 1, &[Call::Read]));
    assert_eq!(
        client
            .get(&url)
            .query(&query(&expired))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let mut forged = emu.sign(&policy(&[Call::Read]));
    forged.policy = emu.sign(&policy(&[Call::Read, Call::Remove])).policy;
    assert_eq!(
        client
            .get(&url)
            .query(&query(&forged))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}
