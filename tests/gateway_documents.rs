//! SignedUrl, Thumbnail, Delete, Metadata, GetDocument, ListDocuments,
//! RegisterHandle and UploadPolicy against the real gateway and emulator.

#[path = "support/gateway.rs"]
mod support;

use filegate::filestack::UploadSpec;
use filegate::filestack::policy::{Call, Policy};
use filegate::pb::v1 as pb;
use support::{TestGateway, png, reason, sha256_hex};
use tonic::Code;
use tonic_types::StatusExt;

async fn upload(gw: &TestGateway, sub: &str, filename: &str, bytes: Vec<u8>) -> pb::Document {
    let spec = pb::UploadSpec {
        filename: filename.into(),
        ..Default::default()
    };
    let msg = pb::UploadRequest {
        first_message: Some(pb::upload_request::FirstMessage::Spec(spec)),
        data: bytes.into(),
        ..Default::default()
    };
    let mut client = gw.client().await;
    client
        .upload(gw.request(sub, tokio_stream::iter(vec![msg])))
        .await
        .expect("upload")
        .into_inner()
        .document
        .expect("document")
}

fn thumb(id: &str, width: i32, height: i32) -> pb::ThumbnailRequest {
    pb::ThumbnailRequest {
        document_id: id.into(),
        width,
        height,
        ..Default::default()
    }
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory(bytes).expect("an image");
    (image.width(), image.height())
}

#[tokio::test]
async fn a_signed_url_serves_only_its_own_file_and_no_transformation() {
    let gw = TestGateway::start().await;
    let a = upload(&gw, "alice", "a.png", png(64, 48)).await;
    let b = upload(&gw, "alice", "b.png", png(32, 32)).await;
    let mut client = gw.client().await;
    let request = pb::SignedUrlRequest {
        document_id: a.id.clone(),
        ttl: Some(prost_types::Duration {
            seconds: 60,
            nanos: 0,
        }),
    };
    let signed = client
        .signed_url(gw.request("alice", request))
        .await
        .expect("signed url")
        .into_inner();
    assert_eq!(gw.get(&signed.url).await.0, 200);
    let expire = signed.expire_time.expect("expire time").seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now + 55..=now + 61).contains(&expire),
        "expires in about 60 s"
    );
    let other_handle = signed.url.replace(&a.handle, &b.handle);
    assert_eq!(gw.get(&other_handle).await.0, 403);
    let with_task = signed
        .url
        .replace("/security=", "/resize=width:10/security=");
    assert_eq!(gw.get(&with_task).await.0, 403);
    for ttl in [0, -5, 3601] {
        let request = pb::SignedUrlRequest {
            document_id: a.id.clone(),
            ttl: Some(prost_types::Duration {
                seconds: ttl,
                nanos: 0,
            }),
        };
        let status = client
            .signed_url(gw.request("alice", request))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "ttl {ttl}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_thumbnail_url_returns_an_image_of_the_requested_size_and_only_for_its_handle() {
    let gw = TestGateway::start().await;
    let a = upload(&gw, "alice", "a.png", png(640, 480)).await;
    let b = upload(&gw, "alice", "b.png", png(100, 100)).await;
    let mut client = gw.client().await;
    let crop = client
        .thumbnail(gw.request("alice", thumb(&a.id, 200, 200)))
        .await
        .expect("thumbnail")
        .into_inner();
    assert!(
        crop.url
            .contains("resize=fit:crop,height:200,width:200/enhance/security="),
        "{}",
        crop.url
    );
    let (status, body) = gw.get(&crop.url).await;
    assert_eq!(status, 200);
    assert_eq!(dimensions(&body), (200, 200));
    let clip = pb::ThumbnailRequest {
        fit: pb::Fit::Clip as i32,
        enhance: Some(false),
        format: pb::ImageFormat::Jpg as i32,
        ..thumb(&a.id, 200, 200)
    };
    let clip = client
        .thumbnail(gw.request("alice", clip))
        .await
        .expect("thumbnail")
        .into_inner();
    let (status, body) = gw.get(&clip.url).await;
    assert_eq!(status, 200);
    assert_eq!(dimensions(&body), (200, 150));
    assert_eq!(&body[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    assert_eq!(gw.get(&crop.url.replace(&a.handle, &b.handle)).await.0, 403);
    gw.stop().await;
}

#[tokio::test]
async fn thumbnails_refuse_non_images_and_bad_dimensions() {
    let gw = TestGateway::start().await;
    let text = upload(&gw, "alice", "notes.txt", b"not an image".to_vec()).await;
    let image = upload(&gw, "alice", "a.png", png(10, 10)).await;
    let mut client = gw.client().await;
    let status = client
        .thumbnail(gw.request("alice", thumb(&text.id, 10, 10)))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::FailedPrecondition, "NOT_AN_IMAGE")
    );
    for (w, h) in [(0, 10), (10, 0), (-1, 10), (10_001, 10), (10, i32::MAX)] {
        let status = client
            .thumbnail(gw.request("alice", thumb(&image.id, w, h)))
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
    let doc = upload(&gw, "alice", "a.txt", b"bye".to_vec()).await;
    let mut client = gw.client().await;
    let url = client
        .signed_url(gw.request(
            "alice",
            pb::SignedUrlRequest {
                document_id: doc.id.clone(),
                ttl: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .url;
    client
        .delete(gw.request(
            "alice",
            pb::DeleteRequest {
                document_id: doc.id.clone(),
            },
        ))
        .await
        .expect("delete");
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    assert_eq!(gw.get(&url).await.0, 404);
    let (hits, _) = gw.cache_counts().await;
    assert!(hits >= 1, "Delete read the row SignedUrl had cached");
    let again = client
        .get_document(gw.request(
            "alice",
            pb::GetDocumentRequest {
                document_id: doc.id,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    gw.stop().await;
}

#[tokio::test]
async fn delete_of_a_file_already_gone_at_filestack_still_removes_the_row() {
    // Without the emulator's fp.delete webhook, which would remove the row first.
    let gw = TestGateway::start_with(&["--local-webhooks", "false"]).await;
    let doc = upload(&gw, "alice", "a.txt", b"gone".to_vec()).await;
    gw.filestack()
        .delete(&doc.handle)
        .await
        .expect("deleted behind the gateway's back");
    let mut client = gw.client().await;
    client
        .delete(gw.request(
            "alice",
            pb::DeleteRequest {
                document_id: doc.id,
            },
        ))
        .await
        .expect("delete");
    assert_eq!(gw.documents().await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn delete_while_filestack_is_unavailable_keeps_the_row_and_says_unavailable() {
    let gw = TestGateway::start().await;
    let doc = upload(&gw, "alice", "a.txt", b"keep".to_vec()).await;
    gw.fault(serde_json::json!({"route": "file_delete", "status": 503, "count": 100}))
        .await;
    let mut client = gw.client().await;
    let status = client
        .delete(gw.request(
            "alice",
            pb::DeleteRequest {
                document_id: doc.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "FILESTACK_UNAVAILABLE")
    );
    assert!(
        status.get_error_details().retry_info().is_some(),
        "RetryInfo attached"
    );
    assert_eq!((gw.documents().await, gw.stored_files().await), (1, 1));
    gw.clear_faults().await;
    client
        .delete(gw.request(
            "alice",
            pb::DeleteRequest {
                document_id: doc.id,
            },
        ))
        .await
        .expect("delete after recovery");
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}

#[tokio::test]
async fn metadata_returns_typed_fields_read_from_filestack() {
    let gw = TestGateway::start().await;
    let bytes = png(64, 48);
    let doc = upload(&gw, "alice", "a.png", bytes.clone()).await;
    let mut client = gw.client().await;
    let fields = [
        pb::MetadataField::Size,
        pb::MetadataField::Width,
        pb::MetadataField::Height,
        pb::MetadataField::Sha256,
        pb::MetadataField::Mimetype,
        pb::MetadataField::Uploaded,
        pb::MetadataField::Path,
    ];
    let request = pb::MetadataRequest {
        document_id: doc.id.clone(),
        fields: fields.iter().map(|f| *f as i32).collect(),
    };
    let meta = client
        .metadata(gw.request("alice", request))
        .await
        .expect("metadata")
        .into_inner();
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
    let defaults = client
        .metadata(gw.request(
            "alice",
            pb::MetadataRequest {
                document_id: doc.id.clone(),
                fields: vec![],
            },
        ))
        .await
        .expect("metadata")
        .into_inner();
    assert_eq!(defaults.filename.as_deref(), Some("a.png"));
    assert_eq!(defaults.width, None, "width is not a default field");
    let bad = pb::MetadataRequest {
        document_id: doc.id,
        fields: vec![0],
    };
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
        ids.push(
            upload(&gw, "alice", &format!("{i}.txt"), vec![b'x'; i + 1])
                .await
                .id,
        );
    }
    upload(&gw, "bob", "bob.txt", b"bob".to_vec()).await;
    let mut client = gw.client().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::ListDocumentsRequest {
            page_size: 2,
            page_token: token.clone(),
        };
        let page = client
            .list_documents(gw.request("alice", request))
            .await
            .expect("list")
            .into_inner();
        assert!(page.documents.len() <= 2);
        seen.extend(page.documents.into_iter().map(|d| d.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let bad = pb::ListDocumentsRequest {
        page_size: 0,
        page_token: "garbage!".into(),
    };
    assert_eq!(
        client
            .list_documents(gw.request("alice", bad))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let huge = pb::ListDocumentsRequest {
        page_size: 1001,
        page_token: String::new(),
    };
    assert_eq!(
        client
            .list_documents(gw.request("alice", huge))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    gw.stop().await;
}

#[tokio::test]
async fn every_document_call_refuses_another_owners_document() {
    let gw = TestGateway::start().await;
    let doc = upload(&gw, "alice", "a.png", png(8, 8)).await;
    let mut c = gw.client().await;
    let id = doc.id.clone();
    let codes = [
        c.signed_url(gw.request(
            "bob",
            pb::SignedUrlRequest {
                document_id: id.clone(),
                ttl: None,
            },
        ))
        .await
        .unwrap_err()
        .code(),
        c.thumbnail(gw.request("bob", thumb(&id, 10, 10)))
            .await
            .unwrap_err()
            .code(),
        c.delete(gw.request(
            "bob",
            pb::DeleteRequest {
                document_id: id.clone(),
            },
        ))
        .await
        .unwrap_err()
        .code(),
        c.metadata(gw.request(
            "bob",
            pb::MetadataRequest {
                document_id: id.clone(),
                fields: vec![],
            },
        ))
        .await
        .unwrap_err()
        .code(),
        c.get_document(gw.request(
            "bob",
            pb::GetDocumentRequest {
                document_id: id.clone(),
            },
        ))
        .await
        .unwrap_err()
        .code(),
    ];
    assert_eq!(codes, [Code::PermissionDenied; 5]);
    let list = c
        .list_documents(gw.request("bob", pb::ListDocumentsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(list.documents.is_empty());
    assert_eq!((gw.documents().await, gw.stored_files().await), (1, 1));
    let unknown = c
        .get_document(gw.request(
            "alice",
            pb::GetDocumentRequest {
                document_id: "doc_AAAAAAAAAAAAAAAAAAAAAAAA".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let malformed = c
        .get_document(gw.request(
            "alice",
            pb::GetDocumentRequest {
                document_id: "x".repeat(10_000),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    gw.stop().await;
}

/// Stores a file straight at the emulator, as a browser with a picker policy would.
async fn browser_upload(gw: &TestGateway, path: &str) -> String {
    let spec = UploadSpec {
        path: Some(path.into()),
        ..UploadSpec::new("photo.png", "image/png")
    };
    let bytes = png(20, 10);
    let stream = tokio_stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
    gw.filestack()
        .upload(stream, spec)
        .await
        .expect("direct upload")
        .handle
}

#[tokio::test]
async fn register_handle_records_a_browser_upload_once() {
    let gw = TestGateway::start().await;
    let handle = browser_upload(&gw, "user-uploads/alice/").await;
    let mut c = gw.client().await;
    let register = |request_id: &str| pb::RegisterHandleRequest {
        handle: handle.clone(),
        request_id: request_id.into(),
    };
    let doc = c
        .register_handle(gw.request("alice", register("r1")))
        .await
        .expect("register")
        .into_inner()
        .document
        .unwrap();
    assert_eq!(
        (
            doc.handle.as_str(),
            doc.filename.as_str(),
            doc.content_type.as_str()
        ),
        (handle.as_str(), "photo.png", "image/png")
    );
    assert!(doc.size_bytes > 0);
    let retry = c
        .register_handle(gw.request("alice", register("r1")))
        .await
        .expect("same request")
        .into_inner()
        .document
        .unwrap();
    assert_eq!(retry, doc);
    let again = c
        .register_handle(gw.request("alice", register("r2")))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let bob = c
        .register_handle(gw.request("bob", register("r1")))
        .await
        .unwrap_err();
    assert_eq!(bob.code(), Code::AlreadyExists);
    let thumb = c
        .thumbnail(gw.request("alice", thumb(&doc.id, 10, 10)))
        .await
        .expect("thumbnail of a registered image")
        .into_inner();
    assert_eq!(gw.get(&thumb.url).await.0, 200);
    assert_eq!(gw.documents().await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn register_handle_refuses_unknown_malformed_and_foreign_handles() {
    let gw = TestGateway::start().await;
    let mut c = gw.client().await;
    let unknown = c
        .register_handle(gw.request(
            "alice",
            pb::RegisterHandleRequest {
                handle: "AAAAAAAAAAAAAAAAAAAA".into(),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    for bad in ["", "ünïcödé", "a/b", &"h".repeat(10_240)] {
        let status = c
            .register_handle(gw.request(
                "alice",
                pb::RegisterHandleRequest {
                    handle: bad.into(),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
    }
    let bobs = browser_upload(&gw, "user-uploads/bob/").await;
    let status = c
        .register_handle(gw.request(
            "alice",
            pb::RegisterHandleRequest {
                handle: bobs,
                request_id: String::new(),
            },
        ))
        .await
        .unwrap_err();
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
    let mut c = gw.client().await;
    let request = pb::UploadPolicyRequest {
        ttl: None,
        max_size_bytes: 1000,
    };
    let grant = c
        .upload_policy(gw.request("alice", request))
        .await
        .expect("policy")
        .into_inner();
    let policy = Policy::decode(&grant.policy).expect("decodes");
    assert_eq!(policy.call, Some(vec![Call::Pick]));
    assert_eq!(policy.max_size, Some(1000));
    assert_eq!(policy.path.as_deref(), Some("^user-uploads/alice/.*"));
    assert_eq!(grant.path, "user-uploads/alice/");
    assert_eq!(grant.api_key, "local-api-key");
    let security = filegate::filestack::policy::Security {
        policy: grant.policy,
        signature: grant.signature,
    };
    assert!(
        security.verify(&gw.app_secret()).is_ok(),
        "signed with the app secret"
    );
    let over = pb::UploadPolicyRequest {
        ttl: None,
        max_size_bytes: 1 << 40,
    };
    assert_eq!(
        c.upload_policy(gw.request("alice", over))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    gw.stop().await;
}
