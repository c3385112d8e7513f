"""The interop scenario of tests/clients/README.md with a grpcio client generated from proto/.

Reads the gateway's address, the tokens and the compression mode from the environment
(FILEGATE_*), prints `PASS <check>` or `FAIL <check>: <why>` per check, and exits
non-zero when any check failed.
"""

import hashlib
import importlib
import importlib.resources
import os
import struct
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024
CALL_TIMEOUT_S = 60
EVENT_TIMEOUT_S = 30
KEEPALIVE_IDLE_S = 25
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 8 * MIB),
    ("grpc.max_send_message_length", 8 * MIB),
]
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(condition, message):
    """Raises CheckFailed with `message` unless `condition` holds."""
    if not condition:
        raise CheckFailed(message)


def generate_stubs(out_dir):
    """Runs grpc_tools.protoc over proto/ into out_dir; returns (messages, stubs) modules."""
    from grpc_tools import protoc

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{REPO / 'proto'}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "filegate/v1/filegate.proto",
    ])
    expect(status == 0, f"protoc failed with {status}")
    sys.path.insert(0, str(out_dir))
    return (importlib.import_module("filegate.v1.filegate_pb2"),
            importlib.import_module("filegate.v1.filegate_pb2_grpc"))


def tls_credentials(env):
    """TLS credentials when FILEGATE_TLS_CA names the CA to trust, with the client
    certificate of FILEGATE_TLS_CERT and FILEGATE_TLS_KEY when set (mTLS); else None."""
    ca = env.get("FILEGATE_TLS_CA")
    if not ca:
        return None
    cert, key = env.get("FILEGATE_TLS_CERT"), env.get("FILEGATE_TLS_KEY")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(key).read_bytes() if key else None,
        certificate_chain=Path(cert).read_bytes() if cert else None,
    )


def png(width, height):
    """A valid RGB PNG of a colour gradient, built with zlib alone."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 4 % 256, y * 5 % 256, 128)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_size(image):
    """(width, height) of a PNG, after inflating its image data row by row."""
    expect(image.startswith(b"\x89PNG\r\n\x1a\n"), f"not a PNG: {image[:16]!r}")
    at, idat, header = 8, b"", None
    while at < len(image):
        length, kind = struct.unpack(">I4s", image[at:at + 8])
        body = image[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    expect(header is not None, "a PNG without IHDR")
    width, height, depth, colour = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = 1 + (width * channels * depth + 7) // 8
    pixels = zlib.decompress(idat)
    expect(len(pixels) == row * height, f"{len(pixels)} bytes of rows for {width}x{height}")
    return width, height


def download(url):
    """GETs url; returns (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=CALL_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def details(error):
    """(ErrorInfo, BadRequest) from the grpc-status-details-bin of an RpcError."""
    status = rpc_status.from_call(error)
    expect(status is not None, "no grpc-status-details-bin trailer")
    info, bad = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
    expect(info is not None, "no ErrorInfo in the details")
    return info, bad


def refused(call, code):
    """Runs call(), which must fail with `code`; returns the RpcError."""
    try:
        call()
    except grpc.RpcError as error:
        expect(error.code() == code, f"{error.code()} ({error.details()}), expected {code}")
        return error
    raise CheckFailed(f"succeeded, expected {code}")


class Scenario:
    """The checks, in order; later ones use documents that earlier ones stored."""

    def __init__(self, pb, stubs, env):
        self.pb = pb
        self.stubs = stubs
        self.addr = env["FILEGATE_ADDR"]
        self.owner = env["FILEGATE_OWNER"]
        self.other_owner = env["FILEGATE_OTHER_OWNER"]
        self.auth = [("authorization", f"Bearer {env['FILEGATE_TOKEN']}")]
        self.other_auth = [("authorization", f"Bearer {env['FILEGATE_OTHER_TOKEN']}")]
        gzip = env["FILEGATE_COMPRESSION"] == "gzip"
        self.compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
        self.credentials = tls_credentials(env)
        self.channel = self.open_channel()
        self.stub = stubs.FileGatewayServiceStub(self.channel)
        self.matrix = os.urandom(5 * MIB + 12345)
        self.matrix_doc = None
        self.matrix_request_id = uuid.uuid4().hex
        self.image = png(64, 48)
        self.image_doc = None
        self.resumed_doc = None
        self.last_event_id = 0

    def open_channel(self, extra_options=()):
        options = CHANNEL_OPTIONS + list(extra_options)
        if self.credentials is None:
            return grpc.insecure_channel(self.addr, options=options, compression=self.compression)
        return grpc.secure_channel(self.addr, self.credentials, options=options,
                                   compression=self.compression)

    def checks(self, channel_checks):
        checks = [
            ("who_am_i", self.who_am_i),
            ("upload", self.upload_matrix),
            ("idempotent_retry", self.idempotent_retry),
            ("signed_url", self.signed_url),
            ("thumbnail", self.thumbnail),
            ("metadata", self.metadata),
            ("paging", self.paging),
            ("other_owner", self.other_owner_refused),
            ("rich_error", self.rich_error),
            ("watch_events", self.watch_events),
            ("resumed_upload", self.resumed_upload),
            ("ranged_read", self.ranged_read),
            ("delete", self.delete),
        ]
        if channel_checks:
            checks += [
                ("keepalive", self.keepalive),
                ("deadline", self.deadline),
                ("large_metadata", self.large_metadata),
            ]
        return checks

    # Calls.

    def call(self, method, request, other=False, stub=None, timeout=CALL_TIMEOUT_S):
        rpc = getattr(stub or self.stub, method)
        return rpc(request, metadata=self.other_auth if other else self.auth, timeout=timeout)

    def upload(self, messages, stub=None, timeout=CALL_TIMEOUT_S):
        rpc = (stub or self.stub).Upload
        return rpc(iter(messages), metadata=self.auth, timeout=timeout)

    def spec_messages(self, filename, data, request_id=""):
        """The spec alone (size, SHA-256, request id), then 1 MiB messages with offsets."""
        pb = self.pb
        spec = pb.UploadSpec(filename=filename, size_bytes=len(data), request_id=request_id,
                             sha256=hashlib.sha256(data).hexdigest())
        return [pb.UploadRequest(spec=spec)] + [
            pb.UploadRequest(write_offset=at, data=data[at:at + MIB])
            for at in range(0, len(data), MIB)
        ]

    def list_ids(self, page_size):
        ids, token = [], ""
        for _ in range(100):
            page = self.call("ListDocuments", self.pb.ListDocumentsRequest(
                page_size=page_size, page_token=token))
            expect(len(page.documents) <= page_size, f"{len(page.documents)} > {page_size}")
            ids += [document.id for document in page.documents]
            token = page.next_page_token
            if not token:
                return ids
        raise CheckFailed("ListDocuments still had pages after 100")

    def expect_document(self, document, filename, data):
        sha = hashlib.sha256(data).hexdigest()
        expect(document.filename == filename, f"filename {document.filename!r}")
        expect(document.size_bytes == len(data), f"size {document.size_bytes}, sent {len(data)}")
        expect(document.sha256 == sha, f"sha256 {document.sha256}, expected {sha}")
        expect(document.owner == self.owner, f"owner {document.owner!r}")
        expect(len(document.handle) == 20, f"handle {document.handle!r}")

    def read(self, document_id, offset, limit):
        request = self.pb.ReadRequest(document_id=document_id, read_offset=offset,
                                      read_limit=limit)
        first, chunks = None, []
        for message in self.stub.Read(request, metadata=self.auth, timeout=CALL_TIMEOUT_S):
            first = message if first is None else first
            expect(len(message.data) <= 2 * MIB, f"a message of {len(message.data)} bytes")
            chunks.append(message.data)
        expect(first is not None, "Read sent no message")
        return first, b"".join(chunks), len(chunks)

    def events_until(self, stream, handles):
        """Events of `stream` until one of each handle came; the events in order."""
        waiting, events = set(handles), []
        for event in stream:
            events.append(event)
            if event.action == "fp.upload":
                waiting.discard(event.handle)
            if not waiting:
                return events
        raise CheckFailed(f"the stream ended before events for {sorted(waiting)}")

    # The scenario.

    def who_am_i(self):
        owner = self.call("WhoAmI", self.pb.WhoAmIRequest()).owner
        expect(owner == self.owner, f"WhoAmI: {owner!r}")
        other = self.call("WhoAmI", self.pb.WhoAmIRequest(), other=True).owner
        expect(other == self.other_owner, f"WhoAmI with the other token: {other!r}")

    def upload_matrix(self):
        messages = self.spec_messages("matrix.bin", self.matrix, self.matrix_request_id)
        document = self.upload(messages).document
        self.expect_document(document, "matrix.bin", self.matrix)
        self.matrix_doc = document

    def idempotent_retry(self):
        expect(self.matrix_doc is not None, "no document: the upload failed")
        messages = self.spec_messages("matrix.bin", self.matrix, self.matrix_request_id)
        again = self.upload(messages).document
        expect(again.id == self.matrix_doc.id, f"a retry made {again.id}")
        expect(self.list_ids(100) == [again.id], "ListDocuments holds more than the one")

    def signed_url(self):
        expect(self.matrix_doc is not None, "no document: the upload failed")
        reply = self.call("SignedUrl", self.pb.SignedUrlRequest(document_id=self.matrix_doc.id))
        expect(reply.expire_time.ToSeconds() > time.time(), f"expires {reply.expire_time}")
        status, body = download(reply.url)
        expect(status == 200 and body == self.matrix, f"GET answered {status}, {len(body)} bytes")

    def thumbnail(self):
        pb = self.pb
        self.image_doc = self.upload(self.spec_messages("image.png", self.image)).document
        self.expect_document(self.image_doc, "image.png", self.image)
        request = pb.ThumbnailRequest(document_id=self.image_doc.id, width=32, height=24,
                                      fit=pb.FIT_CROP)
        status, body = download(self.call("Thumbnail", request).url)
        expect(status == 200, f"the thumbnail URL answered {status}")
        expect(png_size(body) == (32, 24), f"thumbnail is {png_size(body)}, asked 32x24")

    def metadata(self):
        pb = self.pb
        expect(self.matrix_doc and self.image_doc, "no documents: an earlier check failed")
        fields = [pb.METADATA_FIELD_SIZE, pb.METADATA_FIELD_MIMETYPE, pb.METADATA_FIELD_FILENAME,
                  pb.METADATA_FIELD_SHA256]
        got = self.call("Metadata", pb.MetadataRequest(document_id=self.matrix_doc.id,
                                                       fields=fields))
        expected = (len(self.matrix), "application/octet-stream", "matrix.bin",
                    hashlib.sha256(self.matrix).hexdigest())
        actual = (got.size_bytes, got.mimetype, got.filename, got.sha256)
        expect(actual == expected, f"metadata {actual}")
        fields = [pb.METADATA_FIELD_WIDTH, pb.METADATA_FIELD_HEIGHT]
        got = self.call("Metadata", pb.MetadataRequest(document_id=self.image_doc.id,
                                                       fields=fields))
        expect((got.width, got.height) == (64, 48), f"image is {got.width}x{got.height}")

    def paging(self):
        expect(self.matrix_doc and self.image_doc, "no documents: an earlier check failed")
        one_page = self.list_ids(100)
        expect(one_page == [self.image_doc.id, self.matrix_doc.id], f"listed {one_page}")
        expect(self.list_ids(1) == one_page, "pages of one differ from one page")

    def other_owner_refused(self):
        pb = self.pb
        expect(self.matrix_doc is not None, "no document: the upload failed")
        doc = self.matrix_doc.id
        for method, request in (("GetDocument", pb.GetDocumentRequest(document_id=doc)),
                                ("SignedUrl", pb.SignedUrlRequest(document_id=doc)),
                                ("Delete", pb.DeleteRequest(document_id=doc))):
            error = refused(lambda: self.call(method, request, other=True),
                            grpc.StatusCode.PERMISSION_DENIED)
            info, _ = details(error)
            expect(info.reason == "NOT_DOCUMENT_OWNER", f"{method}: reason {info.reason}")
        still = self.call("GetDocument", pb.GetDocumentRequest(document_id=doc)).document
        expect(still.id == doc, "the owner lost the document")

    def rich_error(self):
        expect(self.image_doc is not None, "no image: the thumbnail check failed")
        request = self.pb.ThumbnailRequest(document_id=self.image_doc.id, width=0, height=24)
        error = refused(lambda: self.call("Thumbnail", request), grpc.StatusCode.INVALID_ARGUMENT)
        info, bad = details(error)
        expect((info.domain, info.reason) == ("filegate", "INVALID_ARGUMENT"), f"{info}")
        fields = [violation.field for violation in bad.field_violations] if bad else []
        expect(fields == ["width"], f"BadRequest names {fields}")

    def watch_events(self):
        expect(self.matrix_doc and self.image_doc, "no documents: an earlier check failed")
        handles = [self.matrix_doc.handle, self.image_doc.handle]
        request = self.pb.WatchEventsRequest(after_event_id=0)
        stream = self.stub.WatchEvents(request, metadata=self.auth, timeout=EVENT_TIMEOUT_S)
        try:
            events = self.events_until(stream, handles)
        finally:
            stream.cancel()
        uploads = [event for event in events
                   if event.action == "fp.upload" and event.handle in handles]
        first, second = uploads[0], uploads[1]
        self.last_event_id = events[-1].id
        request = self.pb.WatchEventsRequest(after_event_id=first.id)
        stream = self.stub.WatchEvents(request, metadata=self.auth, timeout=EVENT_TIMEOUT_S)
        try:
            resumed = next(event for event in stream if event.action == "fp.upload")
        finally:
            stream.cancel()
        expect((resumed.id, resumed.handle) == (second.id, second.handle),
               f"resumed at {resumed.id} {resumed.handle}, expected {second.id} {second.handle}")

    def resumed_upload(self):
        pb = self.pb
        data = os.urandom(8 * MIB + 1000)
        spec = pb.UploadSpec(filename="resumed.bin", size_bytes=len(data),
                             sha256=hashlib.sha256(data).hexdigest())
        started = self.call("StartUpload", pb.StartUploadRequest(spec=spec))
        upload_id, part = started.upload_id, started.part_size_bytes
        expect(part == 8 * MIB, f"part size {part}")

        def stream(offset, end):
            messages = [pb.UploadRequest(write_offset=at, data=data[at:min(at + MIB, end)])
                        for at in range(offset, end, MIB)] or [pb.UploadRequest()]
            messages[0].upload_id = upload_id
            messages[0].write_offset = offset
            return self.upload(messages)

        reply = stream(0, part + 500)
        expect(not reply.HasField("document"), "a document before the file was sent")
        expect(reply.persisted_bytes == part, f"persisted {reply.persisted_bytes}")
        query = self.call("QueryUpload", pb.QueryUploadRequest(upload_id=upload_id))
        expect(query.persisted_bytes == part, f"QueryUpload persisted {query.persisted_bytes}")
        error = refused(lambda: stream(0, len(data)), grpc.StatusCode.OUT_OF_RANGE)
        info, _ = details(error)
        expect(info.reason == "OFFSET_NOT_PERSISTED", f"reason {info.reason}")
        expect(info.metadata.get("persisted_bytes") == str(part), f"metadata {info.metadata}")
        document = stream(part, len(data)).document
        self.expect_document(document, "resumed.bin", data)
        self.resumed_doc = document
        query = self.call("QueryUpload", pb.QueryUploadRequest(upload_id=upload_id))
        expect(query.document.id == document.id, "QueryUpload does not name the document")
        refused(lambda: self.call("QueryUpload", pb.QueryUploadRequest(upload_id=upload_id),
                                  other=True), grpc.StatusCode.NOT_FOUND)

    def ranged_read(self):
        expect(self.matrix_doc is not None, "no document: the upload failed")
        data, size = self.matrix, len(self.matrix)
        first, got, count = self.read(self.matrix_doc.id, 0, 0)
        expect(got == data and count > 1, f"whole read: {len(got)} bytes in {count} messages")
        first, got, _ = self.read(self.matrix_doc.id, MIB + 3, 1000)
        span = (first.content_range.start, first.content_range.end,
                first.content_range.complete_length)
        expect(span == (MIB + 3, MIB + 1003, size), f"range {span}")
        expect(got == data[MIB + 3:MIB + 1003], "the range's bytes differ")
        _, got, _ = self.read(self.matrix_doc.id, -4321, 0)
        expect(got == data[-4321:], "the last 4321 bytes differ")

    def delete(self):
        pb = self.pb
        expect(self.matrix_doc is not None, "no document: the upload failed")
        url = self.call("SignedUrl", pb.SignedUrlRequest(document_id=self.matrix_doc.id)).url
        for document in (self.matrix_doc, self.image_doc, self.resumed_doc):
            if document is not None:
                self.call("Delete", pb.DeleteRequest(document_id=document.id))
        expect(self.list_ids(100) == [], "documents are left after Delete")
        refused(lambda: self.call("GetDocument", pb.GetDocumentRequest(
            document_id=self.matrix_doc.id)), grpc.StatusCode.NOT_FOUND)
        status, _ = download(url)
        expect(status == 404, f"the deleted file's URL answered {status}")

    def keepalive(self):
        pb = self.pb
        with self.open_channel(KEEPALIVE_OPTIONS) as channel:
            stub = self.stubs.FileGatewayServiceStub(channel)
            request = pb.WatchEventsRequest(after_event_id=self.last_event_id)
            stream = stub.WatchEvents(request, metadata=self.auth,
                                      timeout=KEEPALIVE_IDLE_S + EVENT_TIMEOUT_S)
            try:
                threading.Event().wait(KEEPALIVE_IDLE_S)
                data = b"still connected\n"
                document = self.upload(self.spec_messages("keepalive.txt", data),
                                       stub=stub).document
                self.events_until(stream, [document.handle])
            finally:
                stream.cancel()
            self.call("Delete", pb.DeleteRequest(document_id=document.id), stub=stub)

    def deadline(self):
        pb = self.pb
        data = os.urandom(4 * MIB)
        request_id = uuid.uuid4().hex
        messages = self.spec_messages("deadline.bin", data, request_id)
        release = threading.Event()

        def stalled():
            yield from messages[:2]
            release.wait(CALL_TIMEOUT_S)

        try:
            refused(lambda: self.upload(stalled(), timeout=2), grpc.StatusCode.DEADLINE_EXCEEDED)
        finally:
            release.set()
        expect(self.list_ids(100) == [], "a document after the deadline")
        document = self.upload(messages).document
        self.expect_document(document, "deadline.bin", data)
        self.call("Delete", pb.DeleteRequest(document_id=document.id))

    def large_metadata(self):
        metadata = self.auth + [("x-filegate-padding", "p" * 8192)]
        owner = self.stub.WhoAmI(self.pb.WhoAmIRequest(), metadata=metadata,
                                 timeout=CALL_TIMEOUT_S).owner
        expect(owner == self.owner, f"WhoAmI: {owner!r}")


def run(name, function):
    """Runs one check, prints PASS or FAIL; returns whether it passed."""
    try:
        function()
    except CheckFailed as failure:
        print(f"FAIL {name}: {failure}", flush=True)
        return False
    except grpc.RpcError as error:
        print(f"FAIL {name}: {error.code()}: {error.details()}", flush=True)
        return False
    except Exception:  # a check that crashes is a failure, not the end of the run
        print(f"FAIL {name}: {traceback.format_exc()}", flush=True)
        return False
    print(f"PASS {name}", flush=True)
    return True


def main():
    with tempfile.TemporaryDirectory(prefix="filegate-python-") as stubs_dir:
        pb, stubs = generate_stubs(Path(stubs_dir))
        scenario = Scenario(pb, stubs, os.environ)
        channel_checks = os.environ.get("FILEGATE_CHANNEL_CHECKS") == "1"
        outcomes = [run(name, check) for name, check in scenario.checks(channel_checks)]
        scenario.channel.close()
    return 0 if all(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
