//! Authentication, health, reflection and the local-mode binary.

use std::time::Duration;

use filegate::pb::v1 as pb;
use support::auth::{alg_none_token, authed, expired_token, token, with_authorization};
use support::gateway::{JWT_SECRET, TestGateway};
use support::process::ServedGateway;
use support::rpc::{GatewayClient, Rpc, first_message, spec};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const SERVICE: &str = "filegate.v1.FileGatewayService";

/// Calls every RPC with `authorization` set to `header` (or none) and returns the codes.
async fn codes_for(client: &mut GatewayClient, header: Option<&str>) -> Vec<Code> {
    fn wrap<T>(message: T, header: Option<&str>) -> tonic::Request<T> {
        match header {
            Some(h) => with_authorization(message, h),
            None => tonic::Request::new(message),
        }
    }
    let id = "doc_AAAAAAAAAAAAAAAAAAAAAAAA".to_string();
    let upload = tokio_stream::iter(vec![first_message(spec("a", None), b"x")]);
    vec![
        client
            .upload(wrap(upload, header))
            .await
            .unwrap_err()
            .code(),
        client
            .signed_url(wrap(
                pb::SignedUrlRequest {
                    document_id: id.clone(),
                    ttl: None,
                },
                header,
            ))
            .await
            .unwrap_err()
            .code(),
        client
            .thumbnail(wrap(
                pb::ThumbnailRequest {
                    document_id: id.clone(),
                    width: 1,
                    height: 1,
                    ..Default::default()
                },
                header,
            ))
            .await
            .unwrap_err()
            .code(),
        client
            .delete(wrap(
                pb::DeleteRequest {
                    document_id: id.clone(),
                },
                header,
            ))
            .await
            .unwrap_err()
            .code(),
        client
            .register_handle(wrap(pb::RegisterHandleRequest::default(), header))
            .await
            .unwrap_err()
            .code(),
        client
            .metadata(wrap(
                pb::MetadataRequest {
                    document_id: id.clone(),
                    fields: vec![],
                },
                header,
            ))
            .await
            .unwrap_err()
            .code(),
        client
            .get_document(wrap(pb::GetDocumentRequest { document_id: id }, header))
            .await
            .unwrap_err()
            .code(),
        client
            .list_documents(wrap(pb::ListDocumentsRequest::default(), header))
            .await
            .unwrap_err()
            .code(),
        client
            .upload_policy(wrap(pb::UploadPolicyRequest::default(), header))
            .await
            .unwrap_err()
            .code(),
        client
            .who_am_i(wrap(pb::WhoAmIRequest {}, header))
            .await
            .unwrap_err()
            .code(),
    ]
}

#[tokio::test]
async fn every_rpc_refuses_missing_malformed_expired_alg_none_and_wrong_key_tokens() {
    let gw = TestGateway::start().await;
    let mut client = gw.client().await;
    let expired = expired_token(JWT_SECRET);
    let alg_none = alg_none_token();
    let wrong_key = token("some-other-secret-key", "alice");
    let headers = [
        None,
        Some("Bearer".to_string()),
        Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_string()),
        Some("Bearer not-a-jwt".to_string()),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {alg_none}")),
        Some(format!("Bearer {wrong_key}")),
    ];
    for header in &headers {
        let codes = codes_for(&mut client, header.as_deref()).await;
        assert_eq!(codes, vec![Code::Unauthenticated; 10], "{header:?}");
    }
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}

/// Two `authorization` entries are refused whatever they hold: which one a
/// proxy or a library picks differs, so the gateway picks none.
#[tokio::test]
async fn a_call_with_two_authorization_entries_is_refused() {
    let gw = TestGateway::start().await;
    let mut client = gw.client().await;
    let (alice, bob) = (
        format!("Bearer {}", token(JWT_SECRET, "alice")),
        format!("Bearer {}", token(JWT_SECRET, "bob")),
    );
    for (first, second) in [
        (&alice, &bob),
        (&alice, &alice),
        (&alice, &"Bearer junk".to_owned()),
        (&"Bearer junk".to_owned(), &alice),
    ] {
        let mut request = tonic::Request::new(pb::WhoAmIRequest {});
        for value in [first, second] {
            request
                .metadata_mut()
                .append("authorization", value.parse().expect("ascii"));
        }
        let status = client.who_am_i(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("more than one"), "{status:?}");
    }
    let mut one = tonic::Request::new(pb::WhoAmIRequest {});
    one.metadata_mut()
        .append("authorization", alice.parse().expect("ascii"));
    assert_eq!(
        client
            .who_am_i(one)
            .await
            .expect("one entry")
            .into_inner()
            .owner,
        "alice"
    );
    gw.stop().await;
}

#[tokio::test]
async fn who_am_i_names_the_tokens_subject() {
    let gw = TestGateway::start().await;
    let me = gw.who_am_i("carol@example.com").await.expect("who am i");
    assert_eq!(me, "carol@example.com");
    gw.stop().await;
}

#[tokio::test]
async fn health_needs_no_token_and_turns_not_serving_while_draining() {
    // A health watcher holds its stream open: the grace period bounds the wait.
    let mut gw = TestGateway::start_with(&["--shutdown-grace-secs", "1"]).await;
    let mut health = HealthClient::new(gw.channel().await);
    for service in ["", SERVICE] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut watch = health
        .watch(HealthCheckRequest {
            service: SERVICE.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first: HealthCheckResponse = watch.message().await.expect("stream").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    gw.begin_shutdown();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status in time");
    assert_eq!(
        next.expect("stream").expect("a status").status,
        ServingStatus::NotServing as i32
    );
    gw.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_service_and_serves_the_error_detail_types() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let gw = TestGateway::start().await;
    let mut client = ServerReflectionClient::new(gw.channel().await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "google.rpc.ErrorInfo".into(),
            )),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(format!(
                "{SERVICE}.Upload"
            ))),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&SERVICE) && names.contains(&"grpc.health.v1.Health"),
        "{names:?}"
    );
    for _ in 0..2 {
        let response = responses.message().await.unwrap().unwrap().message_response;
        assert!(
            matches!(response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
            "{response:?}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn serve_without_a_filestack_key_runs_locally_and_prints_how_to_get_a_token_and_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_filegate");
    let mut served = ServedGateway::start(bin, dir.path(), None, |_| {}).await;
    let token_hint = served.line_starting_with("get a token:").await;
    let command = token_hint.trim_start_matches("get a token:").trim();
    assert!(
        command.starts_with("export TOKEN=$(/") && command.contains(data_dir),
        "the binary by its own path, the data dir: {command}"
    );
    let page = served.line_starting_with("page:").await;
    let page = page.trim_start_matches("page:").trim();
    assert_eq!(page, format!("{}/", served.http_url), "the page's address");
    let try_it = served.line_starting_with("try it:").await;
    assert!(try_it.contains(&served.grpc_addr), "{try_it}");
    // Run as printed, by a shell with no `filegate` on its PATH.
    let token = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} && printf %s \"$TOKEN\""))
        .env("PATH", "/usr/bin:/bin")
        .env_remove("FILEGATE_JWT_SECRET")
        .output()
        .expect("sh runs");
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let me = served
        .client()
        .await
        .who_am_i(authed(&token, pb::WhoAmIRequest {}))
        .await
        .expect("the printed token works");
    assert_eq!(me.into_inner().owner, "alice");
    assert!(
        dir.path().join("filegate.db").exists(),
        "SQLite in the data dir"
    );
    served.stop().await;
}
