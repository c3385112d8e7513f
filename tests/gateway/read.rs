//! Read: a document's bytes streamed over gRPC, whole or a range, checked
//! against the document, through the real gateway and its emulator.

use filegate::pb::v1 as pb;
use serde_json::json;
use support::MIB;
use support::content::{data, sha256_hex};
use support::gateway::TestGateway;
use support::rpc::{Rpc, field, messages, reason, spec};
use tonic::Code;
use tonic_types::StatusExt;

/// The proto's bound on one message's data.
const MAX_MESSAGE_DATA: usize = 2 * MIB;

/// Uploads `len` test bytes as alice (1 MiB messages, size declared); the
/// bytes and the document id.
async fn stored(gw: &TestGateway, len: usize) -> (Vec<u8>, String) {
    let bytes = data(len);
    let spec = spec("read.bin", Some(len as i64));
    let document = gw
        .upload_stream("alice", messages(spec, &bytes, MIB))
        .await
        .expect("upload");
    (bytes, document.id)
}

#[tokio::test]
async fn a_full_read_returns_the_uploaded_bytes_in_messages_of_at_most_2_mib() {
    let gw = TestGateway::start().await;
    let (bytes, id) = stored(&gw, 9 * MIB + 123).await;
    let read = gw.read("alice", &id, 0, 0).await.expect("read");
    assert!(read.bytes == bytes, "the uploaded bytes");
    let sizes = &read.message_sizes;
    assert!(sizes.len() > 1, "several messages: {sizes:?}");
    assert!(
        sizes.iter().all(|&n| n > 0 && n <= MAX_MESSAGE_DATA),
        "{sizes:?}"
    );
    let document = read.document.as_ref().expect("the document first");
    assert_eq!(document.id, id);
    assert_eq!(document.sha256, sha256_hex(&bytes));
    assert_eq!(document.size_bytes, bytes.len() as i64);
    let size = bytes.len() as i64;
    assert_eq!(read.span(), (0, size, size));
    assert_eq!(read.repeated_headers, 0, "document and range once");
    gw.stop().await;
}

#[tokio::test]
async fn ranges_read_the_bytes_they_name() {
    let gw = TestGateway::start().await;
    let (bytes, id) = stored(&gw, 3 * MIB + 5).await;
    let size = bytes.len() as i64;
    let cases = [
        ((1000, 5000), (1000, 6000)),
        ((2 * MIB as i64, 0), (2 * MIB as i64, size)),
        ((-100, 0), (size - 100, size)),
        ((-100, 10), (size - 100, size - 90)),
        ((-(size + 500), 0), (0, size)),
        ((size - 10, 1000), (size - 10, size)),
        ((0, size + 1), (0, size)),
        ((size - 1, 1), (size - 1, size)),
    ];
    for ((offset, limit), (start, end)) in cases {
        let read = gw.read("alice", &id, offset, limit).await.expect("read");
        assert_eq!(
            read.span(),
            (start, end, size),
            "offset {offset}, limit {limit}"
        );
        let expected = &bytes[start as usize..end as usize];
        assert!(
            read.bytes == expected,
            "bytes of offset {offset}, limit {limit}"
        );
        assert!(read.message_sizes.iter().all(|&n| n <= MAX_MESSAGE_DATA));
    }
    gw.stop().await;
}

#[tokio::test]
async fn reading_at_the_end_gives_one_message_with_an_empty_range() {
    let gw = TestGateway::start().await;
    let (bytes, id) = stored(&gw, 1000).await;
    let before = gw.emulator.stats().await.requests("cdn");
    let read = gw.read("alice", &id, 1000, 0).await.expect("read");
    assert_eq!(read.message_sizes, [0], "one message, no data");
    assert_eq!(read.span(), (1000, 1000, 1000));
    assert_eq!(read.document.expect("the document").id, id);
    assert_eq!(
        gw.emulator.stats().await.requests("cdn"),
        before,
        "no bytes to fetch"
    );
    assert_eq!(bytes.len(), 1000);
    gw.stop().await;
}

#[tokio::test]
async fn an_offset_past_the_end_is_out_of_range_and_a_negative_limit_invalid() {
    let gw = TestGateway::start().await;
    let (_, id) = stored(&gw, 1000).await;
    let past = gw.read("alice", &id, 1001, 0).await.unwrap_err();
    assert_eq!(
        (past.code(), reason(&past).as_str(), field(&past).as_deref()),
        (
            Code::OutOfRange,
            "READ_OFFSET_OUT_OF_RANGE",
            Some("read_offset")
        )
    );
    let negative = gw.read("alice", &id, 0, -1).await.unwrap_err();
    assert_eq!(
        (negative.code(), field(&negative).as_deref()),
        (Code::InvalidArgument, Some("read_limit"))
    );
    let malformed = gw.read("alice", "not an id", 0, 0).await.unwrap_err();
    assert_eq!(
        (malformed.code(), field(&malformed).as_deref()),
        (Code::InvalidArgument, Some("document_id"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn another_owners_or_a_missing_document_is_refused_as_signed_url_refuses_it() {
    let gw = TestGateway::start().await;
    let (_, id) = stored(&gw, 1000).await;
    let missing = "doc_AAAAAAAAAAAAAAAAAAAAAAAA";
    for (sub, id) in [("bob", id.as_str()), ("alice", missing)] {
        let read = gw.read(sub, id, 0, 0).await.unwrap_err();
        let signed = gw.signed_url(sub, id, None).await.unwrap_err();
        assert_eq!(
            (read.code(), reason(&read)),
            (signed.code(), reason(&signed)),
            "{sub} reading {id}"
        );
    }
    let other = gw.read("bob", &id, 0, 0).await.unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied);
    let none = gw.read("alice", missing, 0, 0).await.unwrap_err();
    assert_eq!(none.code(), Code::NotFound);
    assert_eq!(
        gw.emulator.stats().await.requests("cdn"),
        0,
        "nothing fetched"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_corrupted_byte_ends_a_full_read_with_data_loss_before_its_last_message() {
    let gw = TestGateway::start().await;
    let (bytes, id) = stored(&gw, 5 * MIB + 7).await;
    gw.emulator
        .fault(json!({"route": "cdn", "corrupt_byte_at": 100}))
        .await;
    let read = gw
        .read_outcome("alice", &id, 0, 0)
        .await
        .expect("the call starts");
    let status = read.error.as_ref().expect("the stream ends with an error");
    assert_eq!(
        (status.code(), reason(status).as_str()),
        (Code::DataLoss, "DATA_CORRUPTED")
    );
    assert!(
        read.bytes.len() < bytes.len(),
        "the last message was held back: {} of {} bytes",
        read.bytes.len(),
        bytes.len()
    );
    let clean = gw.read("alice", &id, 0, 0).await.expect("the next read");
    assert!(clean.bytes == bytes, "the file itself is intact");
    gw.stop().await;
}

#[tokio::test]
async fn a_file_changed_behind_the_gateways_back_is_data_loss() {
    // Without webhooks, so the document keeps its size and hash.
    let gw = TestGateway::start_with(&["--local-webhooks", "false"]).await;
    let (bytes, id) = stored(&gw, MIB).await;
    let handle = gw.get_document("alice", &id).await.unwrap().handle;
    let mut same_size = bytes.clone();
    same_size[MIB - 1] ^= 1;
    gw.emulator.overwrite(&handle, same_size).await;
    let read = gw.read_outcome("alice", &id, 0, 0).await.unwrap();
    let status = read.error.expect("corrupted");
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::DataLoss, "DATA_CORRUPTED")
    );
    assert!(read.bytes.is_empty(), "one message, held back");
    gw.emulator.overwrite(&handle, data(MIB / 2)).await;
    for (offset, limit) in [(0, 0), (10, 10), (-10, 0)] {
        let status = gw.read("alice", &id, offset, limit).await.unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::DataLoss, "LENGTH_MISMATCH"),
            "offset {offset}, limit {limit}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_file_overwritten_through_filestack_reads_its_new_bytes() {
    // With webhooks: the emulator reports the overwrite to the gateway.
    let gw = TestGateway::start().await;
    let (_, id) = stored(&gw, MIB).await;
    let handle = gw.get_document("alice", &id).await.unwrap().handle;
    let replaced = data(MIB / 2 + 1);
    gw.emulator.overwrite(&handle, replaced.clone()).await;
    support::poll_until(
        std::time::Duration::from_secs(20),
        "the fp.overwrite webhook was applied",
        || async {
            gw.get_document("alice", &id).await.unwrap().size_bytes == replaced.len() as i64
        },
    )
    .await;
    let read = gw.read("alice", &id, 0, 0).await.expect("read");
    assert!(read.bytes == replaced, "the new bytes");
    assert_eq!(read.document.expect("the document").sha256, "");
    gw.stop().await;
}

#[tokio::test]
async fn a_body_cut_mid_way_is_resumed_and_the_bytes_are_right() {
    let gw = TestGateway::start().await;
    let (bytes, id) = stored(&gw, 4 * MIB).await;
    gw.emulator
        .fault(json!({"route": "cdn", "cut_response_after_bytes": 1_000_000, "count": 2}))
        .await;
    let read = gw
        .read("alice", &id, 0, 0)
        .await
        .expect("read despite two cuts");
    assert!(read.bytes == bytes, "the bytes are right");
    assert_eq!(
        gw.emulator.stats().await.requests("cdn"),
        3,
        "resumed twice"
    );
    gw.stop().await;
}

#[tokio::test]
async fn filestack_down_is_unavailable_with_retry_info() {
    let gw = TestGateway::start().await;
    let (_, id) = stored(&gw, 1000).await;
    gw.emulator
        .fault(json!({"route": "cdn", "status": 503, "count": 1000}))
        .await;
    let status = gw.read("alice", &id, 0, 0).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "FILESTACK_UNAVAILABLE")
    );
    assert!(status.get_error_details().retry_info().is_some());
    gw.stop().await;
}

#[tokio::test]
async fn a_file_deleted_at_filestack_is_not_found() {
    let gw = TestGateway::start_with(&["--local-webhooks", "false"]).await;
    let (_, id) = stored(&gw, 1000).await;
    let handle = gw.get_document("alice", &id).await.unwrap().handle;
    gw.emulator
        .filestack()
        .delete(&handle)
        .await
        .expect("deleted");
    let status = gw.read("alice", &id, 0, 0).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    gw.stop().await;
}

/// `bytes_served` of the emulator once it stops growing: sampled every
/// 100 ms until three samples in a row agree (at most 20 s).
async fn bytes_served_when_settled(gw: &TestGateway) -> u64 {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    for _ in 0..200 {
        tick.tick().await;
        samples.push(gw.emulator.stats().await.bytes_served());
        if let [.., a, b, c] = samples[..] {
            if a == b && b == c {
                return c;
            }
        }
    }
    panic!("the emulator kept serving: {samples:?}");
}

/// A caller that stops reading holds the gateway back: it pulls from
/// Filestack only what flow control lets through (HTTP/2 windows, socket
/// buffers, the message being gathered), not the file; once the caller
/// reads again, every byte arrives.
#[tokio::test]
async fn a_caller_that_stops_reading_stops_the_gateway_pulling_from_filestack() {
    let gw = TestGateway::start().await;
    let (bytes, id) = stored(&gw, 96 * MIB).await;
    let before = gw.emulator.stats().await.bytes_served();
    let request = gw.request(
        "alice",
        pb::ReadRequest {
            document_id: id,
            read_offset: 0,
            read_limit: 0,
        },
    );
    let mut client = gw.client().await;
    let mut stream = client.read(request).await.expect("read").into_inner();
    let first = stream
        .message()
        .await
        .expect("a message")
        .expect("the first");
    let held = bytes_served_when_settled(&gw).await - before;
    assert!(
        held < 32 * MIB as u64,
        "the gateway pulled {held} bytes for a caller that read one message"
    );
    let mut received = first.data.to_vec();
    while let Some(message) = stream.message().await.expect("the rest") {
        received.extend_from_slice(&message.data);
    }
    assert!(received == bytes, "every byte, in order");
    gw.stop().await;
}
