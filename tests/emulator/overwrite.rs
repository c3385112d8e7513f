//! An overwrite is held to the write policy's store rules as an upload is to
//! its policy's: `maxSize`, `minSize`, `path` (against the file's key) and
//! `container`, with the same refusals.

use filegate::filestack::policy::{Call, Policy};
use serde_json::Value;
use support::emulator::{API_KEY, TestEmulator, handle_of, policy, query};

/// `POST /api/file/{handle}` of `body` under `write`: status and error text.
async fn overwrite(emu: &TestEmulator, handle: &str, write: &Policy, body: &[u8]) -> (u16, String) {
    let response = emu
        .http()
        .post(format!("{}/api/file/{handle}", emu.base_url))
        .query(&query(&emu.sign(write)))
        .body(body.to_vec())
        .send()
        .await
        .expect("overwrite answers");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("a JSON answer");
    (status, answer["error"].as_str().unwrap_or("").to_owned())
}

/// The stored bytes of `handle`.
async fn content(emu: &TestEmulator, handle: &str) -> Vec<u8> {
    let read = emu.sign(&policy(&[Call::Read]));
    let url = format!("{}/api/file/{handle}", emu.base_url);
    let response = emu.http().get(url).query(&query(&read)).send().await;
    response.unwrap().bytes().await.unwrap().to_vec()
}

/// The error `/api/store` refuses `body` with under the `pick` policy `rules`.
async fn store_refusal(emu: &TestEmulator, rules: Policy, body: &[u8]) -> String {
    let mut params = query(&emu.sign(&rules));
    params.push(("key", API_KEY.to_owned()));
    let response = emu
        .http()
        .post(format!("{}/api/store/S3", emu.base_url))
        .query(&params)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let answer: Value = response.json().await.unwrap();
    answer["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_overwrite_is_refused_past_the_write_policys_max_size_or_below_its_min_size() {
    let emu = TestEmulator::start().await;
    let handle = handle_of(&emu.store_raw(b"small".to_vec(), "text/plain").await);
    let write = || policy(&[Call::Write]).with_handle(&handle);
    let big = vec![b'y'; 1000];
    let (status, error) = overwrite(&emu, &handle, &write().with_max_size(10), &big).await;
    assert_eq!(status, 403);
    let upload_error = store_refusal(&emu, policy(&[Call::Pick]).with_max_size(10), &big).await;
    assert_eq!(error, upload_error, "the same refusal as an upload");
    let mut at_least_100 = write();
    at_least_100.min_size = Some(100);
    let (status, error) = overwrite(&emu, &handle, &at_least_100, b"zzzzz").await;
    assert_eq!(status, 403);
    let mut pick_100 = policy(&[Call::Pick]);
    pick_100.min_size = Some(100);
    assert_eq!(error, store_refusal(&emu, pick_100, b"zzzzz").await);
    assert_eq!(content(&emu, &handle).await, b"small", "refused: unchanged");
    let exactly = vec![b'x'; 10];
    let (status, _) = overwrite(&emu, &handle, &write().with_max_size(10), &exactly).await;
    assert_eq!(status, 200);
    assert_eq!(content(&emu, &handle).await, exactly);
    let scratch = std::fs::read_dir(emu.dir().join("tmp")).unwrap().count();
    assert_eq!(scratch, 0, "refused bodies are not kept");
}

#[tokio::test]
async fn an_overwrite_matches_the_path_rule_against_the_files_key_and_the_container_rule_against_its_container()
 {
    let emu = TestEmulator::start().await;
    let mut params = query(&emu.sign(&policy(&[Call::Pick])));
    params.push(("key", API_KEY.to_owned()));
    params.push(("path", "user-uploads/alice/".to_owned()));
    params.push(("container", "photos".to_owned()));
    let stored: Value = emu
        .http()
        .post(format!("{}/api/store/S3", emu.base_url))
        .query(&params)
        .body("first")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let handle = handle_of(&stored);
    let key = stored["key"].as_str().unwrap();
    assert!(key.starts_with("user-uploads/alice/") && key.ends_with("_file"));
    let write = || policy(&[Call::Write]).with_handle(&handle);
    for (rules, body, status, says) in [
        (
            write().with_path("user-uploads/bob/.*"),
            "b",
            403,
            "path not allowed",
        ),
        (
            write().with_path("nomatch/.*"),
            "c",
            403,
            "path not allowed",
        ),
        (
            write().with_path("user-uploads/alice/"),
            "d",
            403,
            "path not allowed",
        ),
        (write().with_path("user-uploads/alice/.*"), "alice", 200, ""),
        (write().with_path(key), "the key", 200, ""),
    ] {
        let (got, error) = overwrite(&emu, &handle, &rules, body.as_bytes()).await;
        assert_eq!(
            (got, error.contains(says)),
            (status, true),
            "{rules:?}: {error}"
        );
    }
    assert_eq!(content(&emu, &handle).await, b"the key");
    let mut elsewhere = write();
    elsewhere.container = Some("other".into());
    let (status, error) = overwrite(&emu, &handle, &elsewhere, b"e").await;
    assert_eq!(status, 403);
    assert!(error.contains("container not allowed"), "{error}");
    let mut photos = write();
    photos.container = Some("pho.*".into());
    assert_eq!(overwrite(&emu, &handle, &photos, b"photos").await.0, 200);
    assert_eq!(content(&emu, &handle).await, b"photos");
}
