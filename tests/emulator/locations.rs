//! Storage locations: every location Filestack knows is accepted (any case)
//! and stored in the local folder, and metadata reports the one asked for,
//! spelled as filestack-python spells it (`S3`, `gcs`, `azure`, `rackspace`,
//! `dropbox`), whichever way the file was uploaded.

use filegate::filestack::policy::Call;
use serde_json::{Value, json};
use support::emulator::{API_KEY, TestEmulator, etag, handle_of, policy, query};

/// A one-part multipart upload with `store` on start and, when given, on
/// complete (`None`: complete carries no `store`); the complete answer.
async fn upload(
    emu: &TestEmulator,
    start_store: Value,
    complete_store: Option<Value>,
) -> (u16, Value) {
    let pick = emu.sign(&policy(&[Call::Pick]));
    let bytes = b"stored somewhere".to_vec();
    let body = json!({
        "apikey": API_KEY, "filename": "a.txt", "mimetype": "text/plain", "size": bytes.len(),
        "store": start_store, "policy": pick.policy, "signature": pick.signature,
    });
    let (status, start) = emu.post_json("/multipart/start", &body).await;
    if status != 200 {
        return (status, start);
    }
    let put = emu.put_chunk(&start, 1, None, bytes.clone()).await;
    let mut done = emu.session(&start);
    match complete_store {
        Some(store) => done["store"] = store,
        None => drop(done.as_object_mut().unwrap().remove("store")),
    }
    done["size"] = json!(bytes.len());
    done["parts"] = json!([{"part_number": 1, "etag": etag(&put)}]);
    done["policy"] = json!(pick.policy);
    done["signature"] = json!(pick.signature);
    emu.post_json("/multipart/complete", &done).await
}

/// `POST /api/store/{location}` of a few bytes: status and answer.
async fn store(emu: &TestEmulator, location: &str) -> (u16, Value) {
    let mut params = query(&emu.sign(&policy(&[Call::Pick])));
    params.push(("key", API_KEY.to_owned()));
    let response = emu
        .http()
        .post(format!("{}/api/store/{location}", emu.base_url))
        .query(&params)
        .body("bytes")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The `location` metadata reports for `handle`.
async fn location_of(emu: &TestEmulator, handle: &str) -> Value {
    let mut params = query(&emu.sign(&policy(&[Call::Stat])));
    params.push(("location", "true".to_owned()));
    emu.file_metadata(handle, &params).await["location"].clone()
}

#[tokio::test]
async fn metadata_reports_the_location_a_multipart_upload_asked_for() {
    let emu = TestEmulator::start().await;
    for (start, complete, reported) in [
        // filestack-python: the client's storage on start and complete.
        (
            json!({"location": "gcs"}),
            Some(json!({"location": "gcs"})),
            "gcs",
        ),
        // filestack-js spells S3 in lower case.
        (
            json!({"location": "s3"}),
            Some(json!({"location": "s3"})),
            "S3",
        ),
        // Named on start only; any case.
        (json!({"location": "Azure"}), None, "azure"),
        (
            json!({"location": "dropbox"}),
            Some(json!({"path": "x/"})),
            "dropbox",
        ),
        (json!({"location": "RACKSPACE"}), None, "rackspace"),
        (json!({}), None, "S3"),
    ] {
        let (status, done) = upload(&emu, start.clone(), complete).await;
        assert_eq!(status, 200, "{start}: {done}");
        assert_eq!(
            location_of(&emu, &handle_of(&done)).await,
            reported,
            "{start}"
        );
    }
}

#[tokio::test]
async fn metadata_reports_the_location_of_a_store_and_an_overwrite_keeps_it() {
    let emu = TestEmulator::start().await;
    for (location, reported) in [
        ("gcs", "gcs"),
        ("S3", "S3"),
        ("s3", "S3"),
        ("Dropbox", "dropbox"),
    ] {
        let (status, stored) = store(&emu, location).await;
        assert_eq!(status, 200, "{location}: {stored}");
        assert_eq!(location_of(&emu, &handle_of(&stored)).await, reported);
    }
    let (_, stored) = store(&emu, "azure").await;
    let handle = handle_of(&stored);
    emu.overwrite(&handle, b"new bytes".to_vec()).await;
    assert_eq!(location_of(&emu, &handle).await, "azure");
}

#[tokio::test]
async fn a_location_filestack_does_not_know_is_refused_on_every_upload_path() {
    let emu = TestEmulator::start().await;
    let (status, error) = upload(&emu, json!({"location": "ftp"}), None).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid params: store location"))
    );
    let (status, error) = upload(
        &emu,
        json!({"location": "gcs"}),
        Some(json!({"location": "ftp"})),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = store(&emu, "ftp").await;
    assert_eq!(status, 400);
    assert_eq!(emu.stats().await.stored_files(), 0);
}
