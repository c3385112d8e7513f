"""Runs the filegate emulator as a subprocess and points filestack-python at it.

The SDK hard-codes `https://` Filestack hosts and builds follow-up upload URLs as
`https://<location_url>/...`. Nothing is patched on disk: a `requests` transport
adapter rewrites those URLs to the emulator's plain-HTTP address, and the SDK's
module-level `requests` reference is swapped at runtime for one whose sessions
mount that adapter.
"""

import queue
import re
import signal
import subprocess
import threading
import types
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import requests
import filestack.utils

LISTENING_LINE = re.compile(r"^filegate emulator listening on (http://127\.0\.0\.1:\d+)$")
FILESTACK_DOMAINS = ("filestackapi.com", "filestackcontent.com")
REQUEST_TIMEOUT_S = 60
EXCERPT_CHARS = 600
ROUTINE_HEADERS = {
    "user-agent", "accept", "accept-encoding", "connection", "content-length",
    "filestack-source", "filestack-trace-id", "filestack-trace-span",
}


class EmulatorError(Exception):
    """The emulator did not start, or did not stop."""


class Emulator:
    """One `filegate emulator` subprocess listening on a port it chose itself."""

    def __init__(self, binary, data_dir, stderr_path, api_key, app_secret, webhook=None):
        self._stderr_path = stderr_path
        args = [
            binary, "emulator",
            "--listen", "127.0.0.1:0",
            "--data-dir", str(data_dir),
            "--api-key", api_key,
            "--app-secret", app_secret,
        ]
        if webhook is not None:
            url, secret = webhook
            args += ["--webhook-url", url, "--webhook-secret", secret]
        self._stderr = open(stderr_path, "wb")
        self._proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
        )
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._drain_stdout, daemon=True)
        self._reader.start()
        self.address = None

    def _drain_stdout(self):
        for raw in self._proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(None)

    def wait_for_address(self, timeout_s):
        """Reads the first stdout line and returns the `http://127.0.0.1:PORT` it names."""
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise EmulatorError(f"no address line on stdout within {timeout_s} s") from None
        if line is None:
            code = self._proc.wait()
            raise EmulatorError(f"emulator exited with status {code} before printing its address")
        match = LISTENING_LINE.match(line)
        if match is None:
            raise EmulatorError(f"unexpected first stdout line: {line!r}")
        self.address = match.group(1)
        return self.address

    def stop(self, timeout_s=10):
        """Sends SIGTERM and waits; raises if it had died before, or ignores SIGTERM."""
        early = self._proc.poll()
        if early is None:
            self._proc.terminate()
        try:
            code = self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise EmulatorError(f"emulator ignored SIGTERM for {timeout_s} s and was killed") from None
        finally:
            self._reader.join(timeout=timeout_s)
            self._stderr.close()
        if early is not None:
            raise EmulatorError(f"emulator had already exited with status {early} before SIGTERM")
        if code not in (0, -signal.SIGTERM):
            raise EmulatorError(f"emulator exited with status {code} on SIGTERM")
        return code

    def stderr_tail(self, lines=20):
        """The last lines the emulator wrote to stderr (its log)."""
        with open(self._stderr_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Exchange:
    """One request the SDK sent and what came back, for failure reports."""

    method: str
    sdk_url: str
    sent_to: str
    request_headers: str
    request_body: str
    status: object
    response_body: str

    def describe(self):
        return (
            f"    {self.method} {self.sdk_url}\n"
            f"      (sent to {self.sent_to})\n"
            f"      headers: {self.request_headers}\n"
            f"      request body: {self.request_body}\n"
            f"      -> {self.status}: {self.response_body}"
        )


class Journal:
    """Thread-safe, append-only record of every exchange made through the adapter."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = []

    def record(self, exchange):
        with self._lock:
            self._entries.append(exchange)

    def mark(self):
        """A position; `since(mark)` returns what was recorded after it."""
        with self._lock:
            return len(self._entries)

    def since(self, mark):
        with self._lock:
            return list(self._entries[mark:])


def _notable_headers(headers):
    shown = {k: v for k, v in headers.items() if k.lower() not in ROUTINE_HEADERS}
    return ", ".join(f"{k}: {v}" for k, v in shown.items()) or "(only routine ones)"


def _excerpt(body, content_type):
    if body is None:
        return "(none)"
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, (bytes, bytearray)):
        return f"({type(body).__name__} stream)"
    textual = any(t in (content_type or "") for t in ("json", "text", "urlencoded", "xml"))
    if not textual:
        return f"({len(body)} bytes of {content_type or 'unknown type'})"
    text = bytes(body[: EXCERPT_CHARS + 1]).decode("utf-8", "replace")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


class EmulatorAdapter(requests.adapters.HTTPAdapter):
    """Sends `https://` Filestack (and emulator) URLs to the emulator over plain HTTP."""

    def __init__(self, address, journal):
        super().__init__()
        target = urlsplit(address)
        self._scheme, self._netloc = target.scheme, target.netloc
        self._journal = journal

    def route(self, url):
        """The URL the request really goes to; refuses anything outside the emulator."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        ours = parts.netloc == self._netloc or host.endswith(FILESTACK_DOMAINS)
        if not ours:
            raise requests.exceptions.InvalidURL(f"refusing to leave the emulator: {url}")
        return urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        sdk_url = request.url
        request.url = self.route(sdk_url)
        body = _excerpt(request.body, request.headers.get("Content-Type"))
        headers = _notable_headers(request.headers)
        try:
            response = super().send(
                request, stream=False, timeout=timeout or REQUEST_TIMEOUT_S,
                verify=verify, cert=cert, proxies={},
            )
        except requests.exceptions.RequestException as err:
            self._journal.record(Exchange(request.method, sdk_url, request.url, headers, body, "no answer", repr(err)))
            raise
        answer = _excerpt(response.content, response.headers.get("Content-Type"))
        status = f"{response.status_code} {response.reason}"
        self._journal.record(Exchange(request.method, sdk_url, request.url, headers, body, status, answer))
        return response


def route_sdk_to(address, journal):
    """Makes every request filestack-python sends go through an `EmulatorAdapter`."""

    class Session(requests.Session):
        def __init__(self):
            super().__init__()
            self.trust_env = False
            adapter = EmulatorAdapter(address, journal)
            self.mount("https://", adapter)
            self.mount("http://", adapter)

    def request(method, url, **kwargs):
        with Session() as session:
            return session.request(method, url, **kwargs)

    shim = types.ModuleType("requests_via_emulator")
    shim.__dict__.update(requests.__dict__)
    shim.Session = Session
    shim.request = request
    for method in ("get", "post", "put", "delete", "head", "patch", "options"):
        setattr(shim, method, partial(request, method))
    filestack.utils.original_requests = shim
