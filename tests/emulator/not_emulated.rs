//! What the official SDKs may send that the emulator does not emulate gets
//! a clear 400 naming it: the processing `store` task however it is sent
//! (the Python SDK's `Transformation.store()` POSTs it), URL ingestion
//! (`/process`) and the picker's `/prefetch`. A CDN URL with another method
//! than GET or HEAD is a 405 that says which methods it takes.

use filegate::filestack::policy::Call;
use serde_json::{Value, json};
use support::content::png;
use support::emulator::{TestEmulator, handle_of, policy};

/// Sends `method` to `path` (a JSON body for POST); status, `Allow` header
/// and error text.
async fn send(emu: &TestEmulator, method: &str, path: &str) -> (u16, String, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = emu
        .http()
        .request(method.clone(), format!("{}{path}", emu.base_url));
    if method == reqwest::Method::POST {
        request = request
            .json(&json!({"apikey": emu.api_key(), "sources": ["https://example.com/a.png"]}));
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let error: Value = response.json().await.expect("a JSON error");
    let text = error["error"].as_str().expect("an error").to_owned();
    (status, allow.unwrap_or_default(), text)
}

#[tokio::test]
async fn a_store_task_is_refused_naming_the_task_whether_posted_or_got() {
    let emu = TestEmulator::start().await;
    let handle = handle_of(&emu.store_raw(png(4, 4), "image/png").await);
    let convert = emu.sign(&policy(&[Call::Read, Call::Convert, Call::Store]));
    let python = format!(
        "/resize=width:100/store=access:public,filename:out.png,location:s3,path:%22dir/out.png%22/{handle}"
    );
    let signed = format!(
        "/resize=width:10/store=filename:o.png/{}/{handle}",
        convert.url_task()
    );
    for path in [&python, &signed] {
        for method in ["POST", "GET"] {
            let (status, _, error) = send(&emu, method, path).await;
            assert_eq!(status, 400, "{method} {path}");
            assert_eq!(
                error, "task not supported by the emulator: store",
                "{method} {path}"
            );
        }
    }
    assert_eq!(emu.stats().await.stored_files(), 1, "nothing was stored");
}

#[tokio::test]
async fn url_ingestion_and_prefetch_are_refused_naming_the_endpoint() {
    let emu = TestEmulator::start().await;
    for (method, path, what) in [
        ("POST", "/process", "URL ingestion"),
        ("GET", "/process", "URL ingestion"),
        ("POST", "/prefetch", "the picker's app settings"),
    ] {
        let (status, _, error) = send(&emu, method, path).await;
        assert_eq!(status, 400, "{method} {path}");
        let expected = format!("endpoint not supported by the emulator: {method} {path} ({what})");
        assert_eq!(error, expected);
    }
}

#[tokio::test]
async fn other_methods_on_a_cdn_url_are_a_405_that_names_get_and_head() {
    let emu = TestEmulator::start().await;
    let handle = handle_of(&emu.store_raw(png(4, 4), "image/png").await);
    for (method, path) in [
        ("POST", format!("/{handle}")),
        ("DELETE", format!("/{handle}")),
        ("PUT", format!("/resize=width:2/{handle}")),
        ("POST", format!("/{handle}/metadata")),
    ] {
        let (status, allow, error) = send(&emu, method, &path).await;
        assert_eq!(
            (status, allow.as_str()),
            (405, "GET, HEAD"),
            "{method} {path}"
        );
        assert!(
            error.contains(method) && error.contains("GET or HEAD"),
            "{error}"
        );
    }
    let (status, _, error) = send(&emu, "POST", &format!("/resize=width:nope/{handle}")).await;
    assert_eq!(status, 400, "a bad task is named as for a GET: {error}");
    assert_eq!(
        emu.stats().await.stored_files(),
        1,
        "the file is still there"
    );
}
