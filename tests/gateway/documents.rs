//! SignedUrl, Thumbnail, Delete, Metadata, GetDocument, ListDocuments,
//! RegisterHandle and UploadPolicy against the real gateway and emulator.

use filegate::filestack::policy::{Call, Policy, Security};
use filegate::pb::v1 as pb;
use support::content::{dimensions, png, sha256_hex};
use support::gateway::TestGateway;
use support::rpc::{Rpc, reason, thumb};
use support::unix_now;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn a_signed_url_serves_only_its_own_file_and_no_transformation() {
    let gw = TestGateway::start().await;
    let a = gw.upload("alice", "a.png", png(64, 48)).await;
    let b = gw.upload("alice", "b.png", png(32, 32)).await;
    let signed = gw
        .signed_url("alice", &a.id, Some(60))
        .await
        .expect("signed url");
    assert_eq!(gw.emulator.get(&signed.url).await.0, 200);
    let expire = signed.expire_time.expect("expire time").seconds;
    let now = unix_now();
    assert!(
        (now + 55..=now + 61).contains(&expire),
        "expires in about 60 s"
    );
    let other_handle = signed.url.replace(&a.handle, &b.handle);
    assert_eq!(gw.emulator.get(&other_handle).await.0, 403);
    let with_task = signed
        .url
        .replace("/security=", "/resize=width:10/security=");
    assert_eq!(gw.emulator.get(&with_task).await.0, 403);
    for ttl in [0, -5, 3601] {
        let status = gw.signed_url("alice", &a.id, Some(ttl)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "ttl {ttl}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_thumbnail_url_returns_an_image_of_the_requested_size_and_only_for_its_handle() {
    let gw = TestGateway::start().await;
    let a = gw.upload("alice", "a.png", png(640, 480)).await;
    let b = gw.upload("alice", "b.png", png(100, 100)).await;
    let crop = gw
        .thumbnail("alice", thumb(&a.id, 200, 200))
        .await
        .expect("thumbnail");
    assert!(
        crop.url
            .contains("resize=fit:crop,height:200,width:200/enhance/security="),
        "{}",
        crop.url
    );
    let (status, body) = gw.emulator.get(&crop.url).await;
    assert_eq!(status, 200);
    assert_eq!(dimensions(&body), (200, 200));
    let clip = pb::ThumbnailRequest {
        fit: pb::Fit::Clip as i32,
        enhance: Some(false),
        format: pb::ImageFormat::Jpg as i32,
        ..thumb(&a.id, 200, 200)
    };
    let clip = gw.thumbnail("alice", clip).await.expect("thumbnail");
    let (status, body) = gw.emulator.get(&clip.url).await;
    assert_eq!(status, 200);
    assert_eq!(dimensions(&body), (200, 150));
    assert_eq!(&body[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    let other_handle = crop.url.replace(&a.handle, &b.handle);
    assert_eq!(gw.emulator.get(&other_handle).await.0, 403);
    gw.stop().await;
}

#[tokio::test]
async fn thumbnails_refuse_non_images_and_bad_dimensions() {
    let gw = TestGateway::start().await;
    let text = gw
        .upload("alice", "notes.txt", b"not an image".to_vec())
        .await;
    let image = gw.upload("alice", "a.png", png(10, 10)).await;
    let status = gw
        .thumbnail("alice", thumb(&text.id, 10, 10))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::FailedPrecondition, "NOT_AN_IMAGE")
    );
    for (w, h) in [(0, 10), (10, 0), (-1, 10), (10_001, 10), (10, i32::MAX)] {
        let status = gw
            .thumbnail("alice", thumb(&image.id, w, h))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{w}x{h}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn delete_removes_the_file_and_the_row() {
    // Without the emulator's fp.delete webhook, which would also evict the
    // row from the cache: Delete alone must.
    let gw = TestGateway::start_with(&["--local-webhooks", "false"]).await;
    let doc = gw.upload("alice", "a.txt", b"bye".to_vec()).await;
    let url = gw.signed_url("alice", &doc.id, None).await.unwrap().url;
    gw.delete("alice", &doc.id).await.expect("delete");
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    assert_eq!(gw.emulator.get(&url).await.0, 404);
    let (hits, _) = gw.cache_counts().await;
    assert!(hits >= 1, "Delete read the row SignedUrl had cached");
    let again = gw.get_document("alice", &doc.id).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    gw.stop().await;
}

#[tokio::test]
async fn delete_of_a_file_already_gone_at_filestack_still_removes_the_row() {
    // Without the emulator's fp.delete webhook, which would remove the row first.
    let gw = TestGateway::start_with(&["--local-webhooks", "false"]).await;
    let doc = gw.upload("alice", "a.txt", b"gone".to_vec()).await;
    gw.emulator
        .filestack()
        .delete(&doc.handle)
        .await
        .expect("deleted behind the gateway's back");
    gw.delete("alice", &doc.id).await.expect("delete");
    assert_eq!(gw.documents().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn delete_while_filestack_is_unavailable_keeps_the_row_and_says_unavailable() {
    let gw = TestGateway::start().await;
    let doc = gw.upload("alice", "a.txt", b"keep".to_vec()).await;
    gw.emulator
        .fault(serde_json::json!({"route": "file_delete", "status": 503, "count": 100}))
        .await;
    let status = gw.delete("alice", &doc.id).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "FILESTACK_UNAVAILABLE")
    );
    assert!(
        status.get_error_details().retry_info().is_some(),
        "RetryInfo attached"
    );
    assert_eq!((gw.documents().await, gw.stored_files().await), (1, 1));
    gw.emulator.clear_faults().await;
    gw.delete("alice", &doc.id)
        .await
        .expect("delete after recovery");
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}

/// A delete Filestack answers 202 (accepted, not done) is asked again: the
/// row goes only once the file is gone, and stays, UNAVAILABLE, while every
/// answer is 202.
#[tokio::test]
async fn a_delete_filestack_only_accepts_is_asked_again_until_done() {
    let gw = TestGateway::start().await;
    let doc = gw.upload("alice", "a.txt", b"accepted".to_vec()).await;
    gw.emulator
        .fault(serde_json::json!({"route": "file_delete", "status": 202, "count": 1}))
        .await;
    gw.delete("alice", &doc.id).await.expect("delete");
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));

    let doc = gw.upload("alice", "b.txt", b"only accepted".to_vec()).await;
    gw.emulator
        .fault(serde_json::json!({"route": "file_delete", "status": 202, "count": 100}))
        .await;
    let status = gw.delete("alice", &doc.id).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "FILESTACK_UNAVAILABLE")
    );
    assert_eq!((gw.documents().await, gw.stored_files().await), (1, 1));
    gw.stop().await;
}

#[tokio::test]
async fn metadata_returns_typed_fields_read_from_filestack() {
    let gw = TestGateway::start().await;
    let bytes = png(64, 48);
    let doc = gw.upload("alice", "a.png", bytes.clone()).await;
    let fields = [
        pb::MetadataField::Size,
        pb::MetadataField::Width,
        pb::MetadataField::Height,
        pb::MetadataField::Sha256,
        pb::MetadataField::Mimetype,
        pb::MetadataField::Uploaded,
        pb::MetadataField::Path,
    ];
    let meta = gw
        .metadata("alice", &doc.id, &fields)
        .await
        .expect("metadata");
    assert_eq!(meta.size_bytes, Some(bytes.len() as i64));
    assert_eq!((meta.width, meta.height), (Some(64), Some(48)));
    assert_eq!(meta.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    assert_eq!(meta.mimetype.as_deref(), Some("image/png"));
    assert!(meta.upload_time.is_some());
    assert!(
        meta.path
            .unwrap_or_default()
            .starts_with("user-uploads/alice/")
    );
    let defaults = gw.metadata("alice", &doc.id, &[]).await.expect("metadata");
    assert_eq!(defaults.filename.as_deref(), Some("a.png"));
    assert_eq!(defaults.width, None, "width is not a default field");
    let bad = pb::MetadataRequest {
        document_id: doc.id,
        fields: vec![0],
    };
    let mut client = gw.client().await;
    assert_eq!(
        client
            .metadata(gw.request("alice", bad))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    gw.stop().await;
}

#[tokio::test]
async fn list_documents_pages_through_the_callers_own_documents_newest_first() {
    let gw = TestGateway::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let doc = gw
            .upload("alice", &format!("{i}.txt"), vec![b'x'; i + 1])
            .await;
        ids.push(doc.id);
    }
    gw.upload("bob", "bob.txt", b"bob".to_vec()).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = gw.list_documents("alice", 2, &token).await.expect("list");
        assert!(page.documents.len() <= 2);
        seen.extend(page.documents.into_iter().map(|d| d.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let bad = gw.list_documents("alice", 0, "garbage!").await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
    // A page token is opaque and alice's own: it names no document, and
    // bob cannot page through alice's documents with it.
    let first = gw.list_documents("alice", 2, "").await.expect("list");
    let token = first.next_page_token;
    assert!(ids.iter().all(|id| !token.contains(id.as_str())));
    let stolen = gw.list_documents("bob", 2, &token).await.unwrap_err();
    assert_eq!(
        (stolen.code(), support::rpc::field(&stolen).as_deref()),
        (Code::InvalidArgument, Some("page_token"))
    );
    let resumed = gw.list_documents("alice", 2, &token).await.expect("list");
    assert_eq!(resumed.documents[0].id, ids[2]);
    let huge = gw.list_documents("alice", 1001, "").await;
    assert_eq!(huge.unwrap_err().code(), Code::InvalidArgument);
    gw.stop().await;
}

#[tokio::test]
async fn every_document_call_refuses_another_owners_document() {
    let gw = TestGateway::start().await;
    let doc = gw.upload("alice", "a.png", png(8, 8)).await;
    let id = doc.id.as_str();
    let codes = [
        gw.signed_url("bob", id, None).await.unwrap_err().code(),
        gw.thumbnail("bob", thumb(id, 10, 10))
            .await
            .unwrap_err()
            .code(),
        gw.delete("bob", id).await.unwrap_err().code(),
        gw.metadata("bob", id, &[]).await.unwrap_err().code(),
        gw.get_document("bob", id).await.unwrap_err().code(),
    ];
    assert_eq!(codes, [Code::PermissionDenied; 5]);
    let list = gw.list_documents("bob", 0, "").await.unwrap();
    assert!(list.documents.is_empty());
    assert_eq!((gw.documents().await, gw.stored_files().await), (1, 1));
    let unknown = gw
        .get_document("alice", "doc_AAAAAAAAAAAAAAAAAAAAAAAA")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let malformed = gw
        .get_document("alice", &"x".repeat(10_000))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    gw.stop().await;
}

#[tokio::test]
async fn register_handle_records_a_browser_upload_once() {
    let gw = TestGateway::start().await;
    let handle = gw.emulator.browser_upload("user-uploads/alice/").await;
    let doc = gw
        .register_handle("alice", &handle, "r1")
        .await
        .expect("register");
    assert_eq!(
        (
            doc.handle.as_str(),
            doc.filename.as_str(),
            doc.content_type.as_str()
        ),
        (handle.as_str(), "photo.png", "image/png")
    );
    assert!(doc.size_bytes > 0);
    let retry = gw
        .register_handle("alice", &handle, "r1")
        .await
        .expect("same request");
    assert_eq!(retry, doc);
    let again = gw
        .register_handle("alice", &handle, "r2")
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let bob = gw.register_handle("bob", &handle, "r1").await.unwrap_err();
    assert_eq!(bob.code(), Code::AlreadyExists);
    // The request id of this registration, used for another handle.
    let other = gw.emulator.browser_upload("user-uploads/alice/").await;
    let reused = gw.register_handle("alice", &other, "r1").await.unwrap_err();
    assert_eq!(
        (reused.code(), reason(&reused).as_str()),
        (Code::AlreadyExists, "REQUEST_ID_REUSED"),
        "{reused:?}"
    );
    let thumb = gw
        .thumbnail("alice", thumb(&doc.id, 10, 10))
        .await
        .expect("thumbnail of a registered image");
    assert_eq!(gw.emulator.get(&thumb.url).await.0, 200);
    assert_eq!(gw.documents().await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn register_handle_leaves_spoofing_characters_out_of_a_browser_chosen_name() {
    let gw = TestGateway::start().await;
    let spec = filegate::filestack::UploadSpec {
        path: Some("user-uploads/alice/".into()),
        ..filegate::filestack::UploadSpec::new("invoice\u{202E}gnp.exe", "image/png")
    };
    let stored = gw
        .emulator
        .filestack()
        .upload(support::content::one_chunk(&png(4, 4)), spec)
        .await
        .expect("a browser upload");
    let doc = gw
        .register_handle("alice", &stored.handle, "")
        .await
        .expect("register");
    assert_eq!(doc.filename, "invoicegnp.exe");
    let listed = gw.list_documents("alice", 10, "").await.expect("list");
    assert_eq!(listed.documents[0].filename, "invoicegnp.exe");

    // A type that is no MIME type is not recorded: the name's guess is, as
    // for an upload without a type.
    let spec = filegate::filestack::UploadSpec {
        path: Some("user-uploads/alice/".into()),
        ..filegate::filestack::UploadSpec::new("report.pdf", "not a type ".repeat(500))
    };
    let stored = gw
        .emulator
        .filestack()
        .upload(support::content::one_chunk(b"%PDF-1.4"), spec)
        .await
        .expect("a browser upload");
    let doc = gw
        .register_handle("alice", &stored.handle, "")
        .await
        .expect("register");
    assert_eq!(doc.content_type, "application/pdf");
    gw.stop().await;
}

#[tokio::test]
async fn register_handle_refuses_unknown_malformed_and_foreign_handles() {
    let gw = TestGateway::start().await;
    let unknown = gw
        .register_handle("alice", "AAAAAAAAAAAAAAAAAAAA", "")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    for bad in ["", "ünïcödé", "a/b", &"h".repeat(10_240)] {
        let status = gw.register_handle("alice", bad, "").await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
    }
    let bobs = gw.emulator.browser_upload("user-uploads/bob/").await;
    let status = gw.register_handle("alice", &bobs, "").await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "HANDLE_OUTSIDE_OWNER_PATH")
    );
    assert_eq!(gw.documents().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn upload_policy_is_pick_only_pinned_to_the_callers_path_and_size() {
    let gw = TestGateway::start().await;
    let grant = gw.upload_policy("alice", 1000).await.expect("policy");
    let policy = Policy::decode(&grant.policy).expect("decodes");
    assert_eq!(policy.call, Some(vec![Call::Pick]));
    assert_eq!(policy.max_size, Some(1000));
    assert_eq!(policy.path.as_deref(), Some("^user-uploads/alice/.*"));
    assert_eq!(grant.path, "user-uploads/alice/");
    assert_eq!(grant.api_key, "local-api-key");
    let security = Security {
        policy: grant.policy,
        signature: grant.signature,
    };
    assert!(
        security.verify(gw.emulator.app_secret()).is_ok(),
        "signed with the app secret"
    );
    let over = gw.upload_policy("alice", 1 << 40).await;
    assert_eq!(over.unwrap_err().code(), Code::InvalidArgument);
    gw.stop().await;
}
