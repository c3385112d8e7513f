//! Local mode's page on the HTTP listener: the bundle, its config, minted
//! tokens, and the emulator's CORS that lets the page upload.

use serde_json::{Value, json};
use support::gateway::TestGateway;
use support::rpc::Rpc;

#[tokio::test]
async fn the_page_its_config_and_minted_tokens_are_served_in_local_mode() {
    let gw = TestGateway::start().await;
    let http = reqwest::Client::new();

    let page = http
        .get(format!("{}/", gw.http_url))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.expect("html").contains("app.js"));
    let script = http
        .get(format!("{}/app.js", gw.http_url))
        .send()
        .await
        .expect("GET");
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );

    let config: Value = http
        .get(format!("{}/local/config", gw.http_url))
        .send()
        .await
        .expect("GET /local/config")
        .json()
        .await
        .expect("JSON");
    assert_eq!(config["grpc_web_url"], gw.grpc_url.as_str());
    let filestack = config["filestack_url"].as_str().expect("filestack_url");
    let stats = http
        .get(format!("{filestack}/_emulator/stats"))
        .send()
        .await;
    assert_eq!(stats.expect("the emulator answers").status(), 200);

    let minted: Value = http
        .post(format!("{}/local/token", gw.http_url))
        .json(&json!({"sub": "carol"}))
        .send()
        .await
        .expect("POST /local/token")
        .json()
        .await
        .expect("JSON");
    let token = minted["token"].as_str().expect("a token");
    let mut client = gw.client().await;
    let mut request = tonic::Request::new(filegate::pb::v1::WhoAmIRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let owner = client
        .who_am_i(request)
        .await
        .expect("WhoAmI")
        .into_inner()
        .owner;
    assert_eq!(owner, "carol");

    let refused = http
        .post(format!("{}/local/token", gw.http_url))
        .json(&json!({"sub": "../etc"}))
        .send()
        .await
        .expect("POST /local/token");
    assert_eq!(refused.status(), 400);
    gw.stop().await;
}

#[tokio::test]
async fn the_emulator_answers_cors_for_a_page_that_uploads_straight_to_it() {
    let gw = TestGateway::start().await;
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/store/S3", gw.emulator.filestack_config().api_url),
        )
        .header("origin", gw.http_url.as_str())
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("a preflight answer");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = &preflight.headers()["access-control-allow-origin"];
    assert!(
        allowed == "*" || allowed == gw.http_url.as_str(),
        "{allowed:?}"
    );
    gw.stop().await;
}
