//! Duplicates sent truly at once (a barrier releases them together) get
//! exactly what a sequential retry gets, on SQLite and on PostgreSQL: a
//! unique-key conflict is an answer, never an outage, and one file is kept.

use std::sync::Arc;

use filegate::pb::v1 as pb;
use support::content::png;
use support::gateway::TestGateway;
use support::rpc::{Rpc, first_message, reason, spec, with_request_id};
use tokio::sync::Barrier;
use tonic::Code;

const AT_ONCE: usize = 8;

/// Runs `AT_ONCE` copies of `call`, each on its own connection, released
/// together once all are connected; their results in order.
async fn at_once<T, F, Fut>(gw: &TestGateway, call: F) -> Vec<Result<T, tonic::Status>>
where
    T: Send + 'static,
    F: Fn(support::rpc::GatewayClient) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(AT_ONCE));
    let mut calls = Vec::new();
    for _ in 0..AT_ONCE {
        let call = call(gw.client().await);
        let barrier = barrier.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            call.await
        }));
    }
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("the call's task"));
    }
    results
}

/// The one document id every duplicate got (each must have succeeded).
fn one_document(results: Vec<Result<String, tonic::Status>>) -> String {
    let ids: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|status| panic!("every duplicate succeeds: {status:?}")))
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one document: {ids:?}");
    ids[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_sent_at_once_with_one_request_id_get_one_document_and_keep_one_file() {
    let gw = TestGateway::start().await;
    let results = at_once(&gw, |mut client| {
        let spec = with_request_id(spec("same.txt", None), "retry-storm");
        let message = first_message(spec, b"sent eight times");
        let request = gw.request("alice", tokio_stream::iter(vec![message]));
        async move {
            let response = client.upload(request).await?;
            Ok(response.into_inner().document.expect("a document").id)
        }
    })
    .await;
    one_document(results);
    assert_eq!(gw.documents().await, 1);
    assert_eq!(gw.stored_files().await, 1, "the other copies were deleted");
    assert_eq!(gw.journal_entries().await, 0);
    assert!(gw.orphans().await.is_empty());
    gw.stop().await;
}

/// Uploads of different files with one request id, at once: one wins, the
/// others are REQUEST_ID_REUSED, whether they lose the race to the row (their
/// stored file is then deleted) or find the winner's document first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_of_different_files_at_once_with_one_request_id_keep_one_and_refuse_the_rest() {
    let gw = TestGateway::start().await;
    let copy = std::sync::atomic::AtomicUsize::new(0);
    let results = at_once(&gw, |mut client| {
        let n = copy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bytes = format!("copy number {n} of a contested key").into_bytes();
        let spec = pb::UploadSpec {
            sha256: support::content::sha256_hex(&bytes),
            ..with_request_id(spec("contested.txt", None), "contested")
        };
        let message = first_message(spec, &bytes);
        let request = gw.request("alice", tokio_stream::iter(vec![message]));
        async move {
            let response = client.upload(request).await?;
            Ok(response.into_inner().document.expect("a document").id)
        }
    })
    .await;
    let (won, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(won.len(), 1, "one upload wins: {refused:?}");
    for status in refused.into_iter().map(Result::unwrap_err) {
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::AlreadyExists, "REQUEST_ID_REUSED"),
            "{status:?}"
        );
    }
    assert_eq!(gw.documents().await, 1);
    gw.wait_until_settled().await;
    assert_eq!(gw.stored_files().await, 1, "the losers' files were deleted");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_of_one_handle_sent_at_once_get_what_sequential_ones_get() {
    let gw = TestGateway::start().await;
    // Without a request id: one registers it, the others find it taken.
    let handle = gw.emulator.browser_upload("user-uploads/alice/").await;
    let results = at_once(&gw, |mut client| {
        let request = pb::RegisterHandleRequest {
            handle: handle.clone(),
            request_id: String::new(),
        };
        let request = gw.request("alice", request);
        async move { client.register_handle(request).await }
    })
    .await;
    let (won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(won.len(), 1, "one registration");
    for status in lost.into_iter().map(Result::unwrap_err) {
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::AlreadyExists, "HANDLE_ALREADY_REGISTERED"),
            "{status:?}"
        );
    }
    let sequential = gw.register_handle("alice", &handle, "").await.unwrap_err();
    assert_eq!(sequential.code(), Code::AlreadyExists);

    // With one request id: every duplicate gets the same document.
    let handle = gw.emulator.browser_upload("user-uploads/alice/").await;
    let results = at_once(&gw, |mut client| {
        let request = pb::RegisterHandleRequest {
            handle: handle.clone(),
            request_id: "register-once".into(),
        };
        let request = gw.request("alice", request);
        async move {
            let response = client.register_handle(request).await?;
            Ok(response.into_inner().document.expect("a document").id)
        }
    })
    .await;
    let id = one_document(results);
    let retried = gw
        .register_handle("alice", &handle, "register-once")
        .await
        .expect("a sequential retry");
    assert_eq!(retried.id, id);
    assert_eq!(gw.documents().await, 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uploads_with_distinct_request_ids_each_get_their_own_document() {
    let gw = TestGateway::start().await;
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let results = at_once(&gw, |mut client| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let spec = with_request_id(spec(&format!("p{n}.png"), None), &format!("distinct-{n}"));
        let message = first_message(spec, &png(4, 4));
        let request = gw.request("alice", tokio_stream::iter(vec![message]));
        async move {
            let response = client.upload(request).await?;
            Ok(response.into_inner().document.expect("a document").id)
        }
    })
    .await;
    let mut ids: Vec<String> = results.into_iter().map(|r| r.expect("upload")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), AT_ONCE);
    assert_eq!(gw.stored_files().await, AT_ONCE as u64);
    gw.stop().await;
}
