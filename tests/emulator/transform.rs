//! CDN transformations through the emulator: security task, `convert`,
//! errors and the result cache.

use filegate::filestack::policy::Call;
use serde_json::Value;
use support::content::{dimensions, png};
use support::emulator::{TestEmulator, handle_of, policy, query};

#[tokio::test]
async fn a_signed_resize_url_renders_and_a_read_only_url_cannot() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let handle = handle_of(&emu.store_raw(png(40, 20), "image/png").await);
    let convert = emu.sign(&policy(&[Call::Read, Call::Convert]).with_handle(&handle));
    let url = format!(
        "{}/resize=width:10/{}/{handle}",
        emu.base_url,
        convert.url_task()
    );
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(dimensions(&response.bytes().await.unwrap()), (10, 5));
    let read = emu.sign(&policy(&[Call::Read]).with_handle(&handle));
    let url = format!(
        "{}/resize=width:10/{}/{handle}",
        emu.base_url,
        read.url_task()
    );
    assert_eq!(client.get(&url).send().await.unwrap().status(), 403);
    let plain = format!("{}/{}/{handle}", emu.base_url, read.url_task());
    assert_eq!(client.get(&plain).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_security_task_pinned_to_one_handle_cannot_serve_another() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let a = handle_of(&emu.store_raw(png(4, 4), "image/png").await);
    let b = handle_of(&emu.store_raw(png(4, 4), "image/png").await);
    let only_a = emu.sign(&policy(&[Call::Read, Call::Convert]).with_handle(&a));
    for path in [
        format!("{}/{b}", only_a.url_task()),
        format!("rotate=deg:90/{}/{b}", only_a.url_task()),
    ] {
        let response = client
            .get(format!("{}/{path}", emu.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
}

#[tokio::test]
async fn transforming_a_non_image_is_a_clear_400() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let handle = handle_of(&emu.store_raw(b"plain text".to_vec(), "text/plain").await);
    let convert = emu.sign(&policy(&[Call::Read, Call::Convert]));
    let url = format!("{}/resize=width:10/{handle}", emu.base_url);
    let response = client
        .get(&url)
        .query(&query(&convert))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("not an image"),
        "{error}"
    );
    let bad = format!("{}/resize=width:nope/{handle}", emu.base_url);
    let response = client
        .get(&bad)
        .query(&query(&convert))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn an_overwrite_invalidates_cached_transformations() {
    let emu = TestEmulator::start().await;
    let client = emu.http();
    let handle = handle_of(&emu.store_raw(png(40, 20), "image/png").await);
    let convert = emu.sign(&policy(&[Call::Read, Call::Convert, Call::Write]));
    let url = format!("{}/resize=width:10/{handle}", emu.base_url);
    let fetch = || async {
        let response = client
            .get(&url)
            .query(&query(&convert))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        dimensions(&response.bytes().await.unwrap())
    };
    assert_eq!(fetch().await, (10, 5));
    assert_eq!(fetch().await, (10, 5), "served from the cache");
    let cached = std::fs::read_dir(emu.dir().join("cache").join(&handle))
        .unwrap()
        .count();
    assert!(cached > 0, "the result was cached");
    let file = format!("{}/api/file/{handle}", emu.base_url);
    let overwrite = client
        .post(&file)
        .query(&query(&convert))
        .header("Content-Type", "image/png")
        .body(png(20, 40))
        .send()
        .await
        .unwrap();
    assert_eq!(overwrite.status(), 200);
    assert_eq!(fetch().await, (10, 20));
}
