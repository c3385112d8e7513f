//! A table of malformed requests on every RPC: each is refused with the code,
//! ErrorInfo reason and BadRequest field of the README's Errors table, and
//! the whole table leaves the database and the stored files as they were.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use filegate::pb::v1 as pb;
use support::MIB;
use support::auth::{alg_none_token, expired_token, signed_token, token};
use support::content::{png, sha256_hex};
use support::gateway::{JWT_SECRET, TestGateway};
use support::rpc::{Rpc, data_message, first_message, spec, thumb};
use support::unix_now;
use tonic::Code;
use tonic_types::StatusExt;

/// The upload cap the gateway under test runs with (its default).
const CAP: i64 = 100 * 1024 * 1024;
/// The longest URL TTL it allows, in seconds (its default).
const MAX_TTL: i64 = 3600;
/// Well-formed, but no document has it.
const UNKNOWN_ID: &str = "doc_AAAAAAAAAAAAAAAAAAAAAAAA";

/// One RPC and its request.
enum Call {
    Upload(Vec<pb::UploadRequest>),
    SignedUrl(pb::SignedUrlRequest),
    Thumbnail(pb::ThumbnailRequest),
    Delete(pb::DeleteRequest),
    Register(pb::RegisterHandleRequest),
    Metadata(pb::MetadataRequest),
    Get(pb::GetDocumentRequest),
    List(pb::ListDocumentsRequest),
    Policy(pb::UploadPolicyRequest),
    WhoAmI,
    Watch(pb::WatchEventsRequest),
}

/// What a call answered: its code, ErrorInfo reason and BadRequest field.
#[derive(Debug, PartialEq)]
struct Refusal {
    code: Code,
    reason: Option<String>,
    field: Option<String>,
}

/// The `authorization` a row sends.
enum Auth {
    /// A valid token for this subject.
    As(&'static str),
    /// This header value, or none.
    Header(Option<String>),
}

struct Row {
    name: String,
    auth: Auth,
    call: Call,
    expected: Refusal,
}

/// A row sent as alice, expecting `code` and `reason` and no field.
fn row(name: impl Into<String>, call: Call, code: Code, reason: &str) -> Row {
    Row {
        name: name.into(),
        auth: Auth::As("alice"),
        call,
        expected: Refusal {
            code,
            reason: Some(reason.to_owned()),
            field: None,
        },
    }
}

/// A malformed field: INVALID_ARGUMENT, reason INVALID_ARGUMENT, that field.
fn invalid(name: impl Into<String>, call: Call, field: &str) -> Row {
    row(name, call, Code::InvalidArgument, "INVALID_ARGUMENT").field(field)
}

fn unauthenticated(name: impl Into<String>, header: Option<String>, call: Call) -> Row {
    row(name, call, Code::Unauthenticated, "UNAUTHENTICATED").auth(Auth::Header(header))
}

impl Row {
    fn field(mut self, field: &str) -> Row {
        self.expected.field = Some(field.to_owned());
        self
    }

    fn auth(mut self, auth: Auth) -> Row {
        self.auth = auth;
        self
    }
}

/// What exists before the table runs.
struct Fixture {
    alice_text: pb::Document,
    alice_image: pb::Document,
    bob_text: pb::Document,
    /// A file stored under alice's path by a browser, with no document.
    browser_handle: String,
    /// The token of alice's second page of one document.
    alice_page_token: String,
}

/// A message of bytes at `write_offset`.
fn chunk(data: &[u8], write_offset: i64) -> pb::UploadRequest {
    pb::UploadRequest {
        write_offset,
        ..data_message(data)
    }
}

/// An upload of one message: `spec` and a few bytes.
fn upload_one(spec: pb::UploadSpec) -> Call {
    Call::Upload(vec![first_message(spec, b"some bytes")])
}

fn sized(size: i64) -> pb::UploadSpec {
    spec("sized.bin", Some(size))
}

fn ttl(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

/// Every document RPC on `id`, each with an otherwise valid request.
#[rustfmt::skip]
fn document_calls(id: &str) -> Vec<(&'static str, Call)> {
    let id = id.to_owned();
    vec![
        ("SignedUrl", Call::SignedUrl(pb::SignedUrlRequest { document_id: id.clone(), ttl: None })),
        ("Thumbnail", Call::Thumbnail(thumb(&id, 64, 64))),
        ("Delete", Call::Delete(pb::DeleteRequest { document_id: id.clone() })),
        ("Metadata", Call::Metadata(pb::MetadataRequest { document_id: id.clone(), fields: vec![] })),
        ("GetDocument", Call::Get(pb::GetDocumentRequest { document_id: id })),
    ]
}

/// `Bearer <token>` for a valid token of `sub`, unsafe or not.
fn bearer_for(sub: &str) -> Option<String> {
    Some(format!("Bearer {}", token(JWT_SECRET, sub)))
}

fn register(handle: &str, request_id: &str) -> Call {
    Call::Register(pb::RegisterHandleRequest {
        handle: handle.into(),
        request_id: request_id.into(),
    })
}

fn list(page_size: i32, page_token: &str) -> Call {
    Call::List(pb::ListDocumentsRequest {
        page_size,
        page_token: page_token.into(),
    })
}

fn upload_spec(filename: &str, sha256: &str, content_type: &str, request_id: &str) -> Call {
    upload_one(pb::UploadSpec {
        sha256: sha256.into(),
        content_type: content_type.into(),
        request_id: request_id.into(),
        ..spec(filename, None)
    })
}

fn upload_of(messages: Vec<pb::UploadRequest>) -> Call {
    Call::Upload(messages)
}

const IA: Code = Code::InvalidArgument;
const OOR: Code = Code::OutOfRange;

#[rustfmt::skip]
fn upload_rows() -> Vec<Row> {
    let b = b"0123456789";
    let a_txt = || spec("a.txt", None);
    let offset_7 = pb::UploadRequest { write_offset: 7, ..first_message(a_txt(), b) };
    vec![
        // An empty stream has no first message, so no spec.
        row("an empty upload stream", upload_of(vec![]), IA, "SPEC_REQUIRED").field("spec"),
        row("data before the spec", upload_of(vec![chunk(b, 0)]), IA, "SPEC_REQUIRED").field("spec"),
        row("two specs", upload_of(vec![first_message(a_txt(), b), first_message(a_txt(), b)]), IA, "SPEC_REPEATED").field("spec"),
        invalid("an empty filename", upload_one(spec("", None)), "spec.filename"),
        invalid("a filename with '/'", upload_one(spec("../etc/passwd", None)), "spec.filename"),
        invalid("a filename with '\\'", upload_one(spec("dir\\a.txt", None)), "spec.filename"),
        invalid("the filename '..'", upload_one(spec("..", None)), "spec.filename"),
        invalid("a filename with NUL", upload_one(spec("a\0b.txt", None)), "spec.filename"),
        invalid("a 2 KB filename", upload_one(spec(&"n".repeat(2048), None)), "spec.filename"),
        invalid("a negative size", upload_one(sized(-1)), "spec.size_bytes"),
        row("a size one byte over the cap", upload_one(sized(CAP + 1)), IA, "FILE_TOO_LARGE").field("spec.size_bytes"),
        row("a size of i64::MAX", upload_one(sized(i64::MAX)), IA, "FILE_TOO_LARGE").field("spec.size_bytes"),
        row("fewer bytes than declared", upload_one(sized(11)), OOR, "SIZE_MISMATCH").field("spec.size_bytes"),
        row("more bytes than declared", upload_one(sized(9)), OOR, "SIZE_MISMATCH").field("spec.size_bytes"),
        row("a wrong SHA-256", upload_spec("a.txt", &sha256_hex(b"other"), "", ""), IA, "CHECKSUM_MISMATCH").field("spec.sha256"),
        invalid("a malformed SHA-256", upload_spec("a.txt", "not-a-digest", "", ""), "spec.sha256"),
        invalid("a 63-digit SHA-256", upload_spec("a.txt", &"a".repeat(63), "", ""), "spec.sha256"),
        invalid("a malformed content type", upload_spec("a.txt", "", "not a type", ""), "spec.content_type"),
        invalid("a 200-character request id", upload_spec("a.txt", "", "", &"r".repeat(200)), "spec.request_id"),
        row("a write_offset behind the bytes sent", upload_of(vec![first_message(a_txt(), b), chunk(b, 3)]), OOR, "OFFSET_MISMATCH").field("write_offset"),
        row("a write_offset on the first message", upload_of(vec![offset_7]), OOR, "OFFSET_MISMATCH").field("write_offset"),
        invalid("a data field over 3 MiB", upload_of(vec![first_message(spec("a.bin", None), &vec![7; 3 * MIB + 1])]), "data"),
        // Over the server's 4 MiB message limit: tonic refuses the message and
        // filegate reports the failed stream.
        row("a 5 MiB message", upload_of(vec![first_message(spec("a.bin", None), &vec![7; 5 * MIB])]), IA, "STREAM_FAILED").field("stream"),
        invalid("an empty file", upload_of(vec![first_message(a_txt(), b"")]), "data"),
        invalid("a declared size of 0 and no data", upload_of(vec![first_message(sized(0), b"")]), "spec.size_bytes"),
        invalid("a declared size of 0 and data", upload_one(sized(0)), "spec.size_bytes"),
    ]
}

/// Characters that make a name display as something it is not.
const SPOOFING: [(&str, char); 12] = [
    ("a right-to-left override", '\u{202E}'),
    ("a left-to-right embedding", '\u{202A}'),
    ("a right-to-left isolate", '\u{2067}'),
    ("a pop directional isolate", '\u{2069}'),
    ("a right-to-left mark", '\u{200F}'),
    ("a zero-width space", '\u{200B}'),
    ("a byte order mark", '\u{FEFF}'),
    ("a line separator", '\u{2028}'),
    ("a private-use character", '\u{E000}'),
    ("a division slash", '\u{2215}'),
    ("a fullwidth solidus", '\u{FF0F}'),
    ("a Hangul filler", '\u{3164}'),
];

fn filename_rows() -> Vec<Row> {
    SPOOFING
        .iter()
        .map(|(what, c)| {
            let name = format!("invoice{c}gnp.exe");
            invalid(
                format!("a filename with {what}"),
                upload_one(spec(&name, None)),
                "spec.filename",
            )
        })
        .collect()
}

#[rustfmt::skip]
fn auth_rows(fx: &Fixture) -> Vec<Row> {
    use jsonwebtoken::Algorithm::{HS256, HS512};
    use serde_json::json;
    let later = unix_now() + 600;
    let bearer = |token: String| Some(format!("Bearer {token}"));
    let alg_none = alg_none_token();
    let wrong_key = signed_token(json!({"sub": "alice", "exp": later}), HS256, "another-secret-entirely");
    let expired = expired_token(JWT_SECRET);
    let hs512 = signed_token(json!({"sub": "alice", "exp": later}), HS512, JWT_SECRET);
    let no_exp = signed_token(json!({"sub": "alice"}), HS256, JWT_SECRET);
    let not_yet = signed_token(json!({"sub": "alice", "exp": later + 3600, "nbf": later}), HS256, JWT_SECRET);
    let id = fx.alice_text.id.clone();
    let delete = || Call::Delete(pb::DeleteRequest { document_id: id.clone() });
    let get = || Call::Get(pb::GetDocumentRequest { document_id: id.clone() });
    let url = Call::SignedUrl(pb::SignedUrlRequest { document_id: id.clone(), ttl: None });
    let meta = Call::Metadata(pb::MetadataRequest { document_id: id.clone(), fields: vec![] });
    let basic = Some("Basic YWxpY2U6c2VzYW1l".to_owned());
    let other_scheme = bearer_for("alice").map(|h| h.replace("Bearer", "Token"));
    vec![
        unauthenticated("no authorization", None, Call::WhoAmI),
        unauthenticated("'Bearer' without a token", Some("Bearer".into()), list(0, "")),
        unauthenticated("the Basic scheme", basic, get()),
        unauthenticated("a valid token under another scheme", other_scheme, Call::WhoAmI),
        unauthenticated("a malformed token", bearer("not-a-jwt".into()), upload_one(spec("a.txt", None))),
        unauthenticated("an expired token", bearer(expired.clone()), url),
        unauthenticated("an alg:none token", bearer(alg_none), delete()),
        unauthenticated("a token signed with another key", bearer(wrong_key), delete()),
        unauthenticated("an HS512 token", bearer(hs512), meta),
        unauthenticated("a token without exp", bearer(no_exp), Call::Policy(Default::default())),
        unauthenticated("a token not valid for another 10 minutes (nbf)", bearer(not_yet), Call::WhoAmI),
        unauthenticated("a token whose sub is '../x'", bearer_for("../x"), upload_one(spec("a.txt", None))),
        unauthenticated("a token whose sub is empty", bearer_for(""), get()),
        unauthenticated("a token whose sub is 200 characters", bearer_for(&"s".repeat(200)), register(&fx.browser_handle, "")),
        unauthenticated("WatchEvents with an expired token", bearer(expired), Call::Watch(Default::default())),
    ]
}

fn document_id_rows(fx: &Fixture) -> Vec<Row> {
    let malformed = [
        ("an empty id", String::new()),
        ("a short id", "doc_short".to_owned()),
        ("a unicode id", format!("doc_{}", "é".repeat(24))),
        ("a 10 KB id", "d".repeat(10 * 1024)),
        ("a path as id", "../doc_AAAAAAAAAAAAAAAAAAAAAA".to_owned()),
    ];
    let mut rows = Vec::new();
    for (rpc, call) in document_calls(UNKNOWN_ID) {
        let name = format!("{rpc} of an unknown id");
        rows.push(row(name, call, Code::NotFound, "NOT_FOUND"));
    }
    // Each document RPC gets one kind of malformed id.
    for (index, (what, id)) in malformed.iter().enumerate() {
        let (rpc, call) = document_calls(id).swap_remove(index);
        rows.push(invalid(format!("{rpc} of {what}"), call, "document_id"));
    }
    for (rpc, call) in document_calls(&fx.bob_text.id) {
        let name = format!("{rpc} of bob's document by alice");
        rows.push(row(
            name,
            call,
            Code::PermissionDenied,
            "NOT_DOCUMENT_OWNER",
        ));
    }
    rows
}

#[rustfmt::skip]
fn thumbnail_and_ttl_rows(fx: &Fixture) -> Vec<Row> {
    let image = fx.alice_image.id.as_str();
    let text = fx.alice_text.id.as_str();
    let sized = |width, height| Call::Thumbnail(thumb(image, width, height));
    let with = |request: pb::ThumbnailRequest| Call::Thumbnail(request);
    let url = |ttl| Call::SignedUrl(pb::SignedUrlRequest { document_id: text.to_owned(), ttl });
    let policy = |ttl, max_size_bytes| Call::Policy(pb::UploadPolicyRequest { ttl, max_size_bytes });
    vec![
        invalid("a thumbnail width of 0", sized(0, 64), "width"),
        invalid("a negative thumbnail height", sized(64, -1), "height"),
        invalid("a thumbnail width of 10001", sized(10_001, 64), "width"),
        invalid("a thumbnail height of i32::MAX", sized(64, i32::MAX), "height"),
        invalid("a thumbnail width of i32::MIN", sized(i32::MIN, 64), "width"),
        invalid("an unknown fit", with(pb::ThumbnailRequest { fit: 99, ..thumb(image, 64, 64) }), "fit"),
        invalid("an unknown image format", with(pb::ThumbnailRequest { format: 42, ..thumb(image, 64, 64) }), "format"),
        invalid("a thumbnail ttl of i64::MAX s", with(pb::ThumbnailRequest { ttl: ttl(i64::MAX, 0), ..thumb(image, 64, 64) }), "ttl"),
        row("a thumbnail of a text file", with(thumb(text, 64, 64)), Code::FailedPrecondition, "NOT_AN_IMAGE"),
        invalid("a ttl of 0", url(ttl(0, 0)), "ttl"),
        invalid("a negative ttl", url(ttl(-5, 0)), "ttl"),
        invalid("a ttl one second over the maximum", url(ttl(MAX_TTL + 1, 0)), "ttl"),
        invalid("a ttl with negative nanos", url(ttl(10, -1)), "ttl"),
        invalid("a ttl with a whole second of nanos", url(ttl(10, 1_000_000_000)), "ttl"),
        invalid("an UploadPolicy ttl of 0", policy(ttl(0, 0), 0), "ttl"),
        invalid("a negative UploadPolicy max size", policy(None, -1), "max_size_bytes"),
        invalid("an UploadPolicy max size over the cap", policy(None, CAP + 1), "max_size_bytes"),
    ]
}

#[rustfmt::skip]
fn other_field_rows(fx: &Fixture) -> Vec<Row> {
    let fields = |fields| Call::Metadata(pb::MetadataRequest { document_id: fx.alice_image.id.clone(), fields });
    let watch = Call::Watch(pb::WatchEventsRequest { after_event_id: -1, include_payload: false });
    let not_a_cursor = URL_SAFE_NO_PAD.encode("no colon here");
    let forged_cursor = URL_SAFE_NO_PAD.encode(format!("{}:{}", i64::MAX, fx.alice_text.id));
    let browser = fx.browser_handle.as_str();
    vec![
        invalid("an unknown metadata field", fields(vec![99]), "fields"),
        invalid("METADATA_FIELD_UNSPECIFIED", fields(vec![pb::MetadataField::Size as i32, 0]), "fields"),
        invalid("a negative WatchEvents cursor", watch, "after_event_id"),
        invalid("a unicode handle", register("ÄbcdéfghijklmnöpqrsT", ""), "handle"),
        invalid("a 10 KB handle", register(&"h".repeat(10 * 1024), ""), "handle"),
        invalid("an empty handle", register("", ""), "handle"),
        invalid("a handle with '/'", register("abc/def", ""), "handle"),
        invalid("a 200-character register request id", register(browser, &"r".repeat(200)), "request_id"),
        row("a handle Filestack does not know", register("UnknownHandle0000000", ""), Code::NotFound, "NOT_FOUND"),
        row("a handle that is already a document", register(&fx.alice_text.handle, ""), Code::AlreadyExists, "HANDLE_ALREADY_REGISTERED"),
        row("bob registering a file under alice's path", register(browser, ""), Code::PermissionDenied, "HANDLE_OUTSIDE_OWNER_PATH").auth(Auth::As("bob")),
        invalid("a negative page size", list(-1, ""), "page_size"),
        invalid("a page size of 1001", list(1001, ""), "page_size"),
        invalid("a page size of i32::MIN", list(i32::MIN, ""), "page_size"),
        invalid("a page token that is not base64", list(0, "!!"), "page_token"),
        invalid("a 10 KB page token", list(0, &"A".repeat(10 * 1024)), "page_token"),
        invalid("a page token that is not a cursor", list(0, &not_a_cursor), "page_token"),
        invalid("a forged cursor token (time:id)", list(0, &forged_cursor), "page_token"),
        invalid("alice's page token used by bob", list(1, &fx.alice_page_token), "page_token").auth(Auth::As("bob")),
        invalid("the same field 20 000 times", fields(vec![pb::MetadataField::Size as i32; 20_000]), "fields"),
        invalid("65 metadata fields", fields(vec![pb::MetadataField::Width as i32; 65]), "fields"),
    ]
}

fn with_auth<T>(gw: &TestGateway, auth: &Auth, message: T) -> Result<tonic::Request<T>, String> {
    match auth {
        Auth::As(sub) => Ok(gw.request(sub, message)),
        Auth::Header(header) => {
            let mut request = tonic::Request::new(message);
            if let Some(value) = header {
                let value = value.parse().map_err(|_| format!("bad header {value:?}"))?;
                request.metadata_mut().insert("authorization", value);
            }
            Ok(request)
        }
    }
}

/// Sends the row's call; `Ok` when it succeeded.
async fn send(
    gw: &TestGateway,
    auth: &Auth,
    call: Call,
) -> Result<Result<(), tonic::Status>, String> {
    let mut client = gw.client().await;
    let result = match call {
        Call::Upload(messages) => {
            let request = with_auth(gw, auth, tokio_stream::iter(messages))?;
            client.upload(request).await.map(drop)
        }
        Call::SignedUrl(m) => client.signed_url(with_auth(gw, auth, m)?).await.map(drop),
        Call::Thumbnail(m) => client.thumbnail(with_auth(gw, auth, m)?).await.map(drop),
        Call::Delete(m) => client.delete(with_auth(gw, auth, m)?).await.map(drop),
        Call::Register(m) => client
            .register_handle(with_auth(gw, auth, m)?)
            .await
            .map(drop),
        Call::Metadata(m) => client.metadata(with_auth(gw, auth, m)?).await.map(drop),
        Call::Get(m) => client.get_document(with_auth(gw, auth, m)?).await.map(drop),
        Call::List(m) => client
            .list_documents(with_auth(gw, auth, m)?)
            .await
            .map(drop),
        Call::Policy(m) => client
            .upload_policy(with_auth(gw, auth, m)?)
            .await
            .map(drop),
        Call::WhoAmI => client
            .who_am_i(with_auth(gw, auth, pb::WhoAmIRequest {})?)
            .await
            .map(drop),
        Call::Watch(m) => client.watch_events(with_auth(gw, auth, m)?).await.map(drop),
    };
    Ok(result)
}

fn refusal(status: &tonic::Status) -> Refusal {
    let details = status.get_error_details();
    let info = details.error_info();
    let domain_ok = info.is_none_or(|i| i.domain == "filegate");
    Refusal {
        code: status.code(),
        reason: info.map(|i| {
            if domain_ok {
                i.reason.clone()
            } else {
                format!("{} (domain {})", i.reason, i.domain)
            }
        }),
        field: details
            .bad_request()
            .and_then(|b| b.field_violations.first())
            .map(|v| v.field.clone()),
    }
}

async fn fixture(gw: &TestGateway) -> Fixture {
    Fixture {
        alice_text: gw
            .upload("alice", "notes.txt", b"alice's notes".to_vec())
            .await,
        alice_image: gw.upload("alice", "pic.png", png(8, 8)).await,
        bob_text: gw.upload("bob", "bob.txt", b"bob's file".to_vec()).await,
        browser_handle: gw.emulator.browser_upload("user-uploads/alice/").await,
        alice_page_token: gw
            .list_documents("alice", 1, "")
            .await
            .expect("a first page")
            .next_page_token,
    }
}

/// Every document of `sub`, as ListDocuments returns them.
async fn all_documents(gw: &TestGateway, sub: &str) -> Vec<pb::Document> {
    let page = gw.list_documents(sub, 1000, "").await.expect("list");
    page.documents
}

/// The database and the stored files, as the test compares them.
#[derive(Debug, PartialEq)]
struct State {
    rows: i64,
    stored_files: u64,
    alice: Vec<pb::Document>,
    bob: Vec<pb::Document>,
}

async fn state(gw: &TestGateway) -> State {
    State {
        rows: gw.documents().await,
        stored_files: gw.stored_files().await,
        alice: all_documents(gw, "alice").await,
        bob: all_documents(gw, "bob").await,
    }
}

/// Requests Filestack (the emulator) received so far.
async fn filestack_requests(gw: &TestGateway) -> u64 {
    let stats = gw.emulator.stats().await;
    let routes = stats.0["requests"].as_object().expect("requests per route");
    routes
        .iter()
        .filter(|(route, _)| route.as_str() != "emulator")
        .map(|(_, count)| count.as_u64().expect("a count"))
        .sum()
}

/// Whether a row's refusal is about the request's own fields or
/// credentials, known before any byte of data is checked: such a row must
/// not reach Filestack at all.
fn refused_before_filestack(expected: &Refusal) -> bool {
    match expected.code {
        Code::Unauthenticated => true,
        Code::InvalidArgument => expected.reason.as_deref() != Some("CHECKSUM_MISMATCH"),
        _ => false,
    }
}

/// Sends every row; a line for each row that was not refused as expected.
async fn failures(gw: &TestGateway, rows: Vec<Row>) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows {
        let calls_before = filestack_requests(gw).await;
        let before_filestack = refused_before_filestack(&row.expected);
        let result = send(gw, &row.auth, row.call).await;
        let calls = filestack_requests(gw).await - calls_before;
        if before_filestack && calls > 0 {
            failures.push(format!(
                "{}: refused after {calls} Filestack requests",
                row.name
            ));
        }
        let actual = match result {
            Err(why) => Err(why),
            Ok(Ok(())) => Err("the call succeeded".to_owned()),
            Ok(Err(status)) => Ok(refusal(&status)),
        };
        match actual {
            Ok(actual) if actual == row.expected => {}
            Ok(actual) => failures.push(format!(
                "{}: expected {:?}, got {actual:?}",
                row.name, row.expected
            )),
            Err(why) => failures.push(format!("{}: {why}", row.name)),
        }
    }
    failures
}

#[tokio::test]
async fn every_malformed_request_gets_its_documented_code_reason_and_field_and_changes_nothing() {
    let (cap, max_ttl) = (CAP.to_string(), MAX_TTL.to_string());
    let limits = ["--max-upload-bytes", &cap, "--max-url-ttl-secs", &max_ttl];
    let gw = TestGateway::start_with(&limits).await;
    let fx = fixture(&gw).await;
    let before = state(&gw).await;
    assert_eq!((before.rows, before.stored_files), (3, 4), "the fixture");
    let tables = [
        upload_rows(),
        auth_rows(&fx),
        document_id_rows(&fx),
        thumbnail_and_ttl_rows(&fx),
        other_field_rows(&fx),
        filename_rows(),
    ];
    let rows: Vec<Row> = tables.into_iter().flatten().collect();
    assert!(rows.len() >= 40, "only {} rows", rows.len());
    let mut failures = failures(&gw, rows).await;
    let after = state(&gw).await;
    if after != before {
        failures.push(format!(
            "the table changed the documents or the stored files:\nbefore {before:?}\nafter {after:?}"
        ));
    }
    gw.stop().await;
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The code and ErrorInfo reason of a call whose body is `body` as sent, over
/// plain HTTP/2, from the answer's headers (a call refused before any
/// message is answered trailers-only).
async fn raw_call(gw: &TestGateway, method: &str, body: Vec<u8>) -> (Code, String) {
    let answer = gw
        .raw_grpc(method, Some("alice"))
        .body(body)
        .send()
        .await
        .expect("an answer");
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    let code = header("grpc-status").expect("grpc-status in the headers");
    let code = Code::from_i32(code.parse().expect("a number"));
    let details = header("grpc-status-details-bin").unwrap_or_default();
    let details = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(details.trim_end_matches('='))
        .expect("base64 details");
    let status = tonic::Status::with_details(code, "", details.into());
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_else(|| "no ErrorInfo".to_owned());
    (code, reason)
}

/// Bodies that are no request message (bytes that are not protobuf, a
/// string that is not UTF-8, nothing, a cut frame, a compressed flag with no
/// `grpc-encoding`) are INVALID_ARGUMENT MALFORMED_REQUEST on every kind of
/// RPC, as the contract has it for malformed requests, not INTERNAL (which
/// here means a bug); an unknown method is UNIMPLEMENTED with its ErrorInfo.
#[tokio::test]
async fn bodies_that_are_no_request_message_are_malformed_requests_with_error_info() {
    use support::frames::frame;
    let gw = TestGateway::start().await;
    let bodies = [
        (
            "unterminated varint",
            frame(
                false,
                &[
                    0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
            ),
        ),
        ("wrong wire type", frame(false, &[0x08, 0x01])),
        ("string not UTF-8", frame(false, &[0x0a, 0x02, 0xff, 0xfe])),
        ("no message", Vec::new()),
        ("frame cut short", {
            let mut cut = frame(false, &[0x0a, 0x01, b'x']);
            cut[4] = 100;
            cut
        }),
        (
            "compressed flag without grpc-encoding",
            frame(true, &[0x0a, 0x01, b'x']),
        ),
    ];
    let methods = [
        "filegate.v1.FileGatewayService/GetDocument",
        "filegate.v1.FileGatewayService/Read",
        "filegate.v1.FileGatewayService/Metadata",
    ];
    let mut failures = Vec::new();
    for method in methods {
        for (name, body) in &bodies {
            let answer = raw_call(&gw, method, body.clone()).await;
            if answer != (Code::InvalidArgument, "MALFORMED_REQUEST".to_owned()) {
                failures.push(format!("{method}, {name}: {answer:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let unknown = raw_call(&gw, "filegate.v1.FileGatewayService/Nope", Vec::new()).await;
    assert_eq!(unknown, (Code::Unimplemented, "UNIMPLEMENTED".to_owned()));
    assert_eq!((gw.documents().await, gw.stored_files().await), (0, 0));
    gw.stop().await;
}

/// A request that is no gRPC call (another content type, or none) is
/// answered HTTP 415, as the gRPC protocol says, and reaches no handler.
#[tokio::test]
async fn a_request_with_another_content_type_is_unsupported_media_type() {
    let gw = TestGateway::start().await;
    let method = "filegate.v1.FileGatewayService/WhoAmI";
    let bearer = format!("Bearer {}", gw.token("alice"));
    let body = support::frames::frame(false, &[]);
    for content_type in [
        Some("text/plain"),
        Some("application/json"),
        None,
        Some("application/grpc+proto"),
    ] {
        let mut request = gw
            .raw_post(method)
            .header("authorization", &bearer)
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = request.send().await.expect("an answer");
        // A gRPC content type with a suffix is served; the others are not.
        let grpc = content_type == Some("application/grpc+proto");
        let expected = if grpc { 200 } else { 415 };
        assert_eq!(answer.status(), expected, "{content_type:?}");
        if !grpc {
            assert!(
                answer.headers().get("grpc-status").is_none(),
                "no gRPC answer"
            );
        }
    }
    gw.stop().await;
}
