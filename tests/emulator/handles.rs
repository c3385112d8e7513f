//! A handle in a File API path may carry an extension, `HANDLE+png`, as the
//! JS SDK's deprecated `retrieve({extension})` writes it (protocol
//! reference, section 7.1): every File API operation takes the handle before
//! the `+`, and policies are checked against it.

use filegate::filestack::policy::Call;
use serde_json::Value;
use support::content::png;
use support::emulator::{API_KEY, TestEmulator, handle_of, policy, query};

#[tokio::test]
async fn a_file_api_handle_with_an_extension_names_the_file_for_every_operation() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let image = png(8, 8);
    let handle = handle_of(&emu.store_raw(image.clone(), "image/png").await);
    let url = format!("{}/api/file/{handle}+png", emu.base_url);
    let read = emu.sign(&policy(&[Call::Read]).with_handle(&handle));
    let response = client.get(&url).query(&query(&read)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.unwrap(), image);
    let head = client.head(&url).query(&query(&read)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let stat = emu.sign(&policy(&[Call::Stat]).with_handle(&handle));
    let meta = emu
        .file_metadata(&format!("{handle}+png"), &query(&stat))
        .await;
    assert_eq!(meta["filename"], "pic.png");
    assert_eq!(meta["size"], image.len());
    let write = emu.sign(&policy(&[Call::Write]).with_handle(&handle));
    let replaced = client
        .post(format!("{}/api/file/{handle}+jpg", emu.base_url))
        .query(&query(&write))
        .body("replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let plain = format!("{}/api/file/{handle}", emu.base_url);
    let now = client
        .get(&plain)
        .query(&query(&read))
        .send()
        .await
        .unwrap();
    assert_eq!(now.text().await.unwrap(), "replaced");
    let mut remove = query(&emu.sign(&policy(&[Call::Remove]).with_handle(&handle)));
    remove.push(("key", API_KEY.to_owned()));
    let removed = client
        .post(format!("{url}/remove"))
        .query(&remove)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    let again = client.delete(&url).query(&remove).send().await.unwrap();
    assert_eq!(again.status(), 404, "already deleted");
}

#[tokio::test]
async fn a_policy_pinned_to_another_handle_is_refused_whatever_the_extension() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let mine = handle_of(&emu.store_raw(b"mine".to_vec(), "text/plain").await);
    let other = handle_of(&emu.store_raw(b"other".to_vec(), "text/plain").await);
    let read_mine = emu.sign(&policy(&[Call::Read]).with_handle(&mine));
    for path in [format!("{other}+txt"), format!("{other}+{mine}")] {
        let url = format!("{}/api/file/{path}", emu.base_url);
        let refused = client.get(&url).query(&query(&read_mine)).send().await;
        let refused = refused.unwrap();
        assert_eq!(refused.status(), 403, "{path}");
        let error: Value = refused.json().await.unwrap();
        assert_eq!(
            error["error"],
            "Invalid App policy: policy is for another handle"
        );
    }
    let read_any = emu.sign(&policy(&[Call::Read]));
    let unknown = format!("{}/api/file/AAAAAAAAAAAAAAAAAAAA+png", emu.base_url);
    let missing = client.get(&unknown).query(&query(&read_any)).send().await;
    assert_eq!(missing.unwrap().status(), 404);
}
