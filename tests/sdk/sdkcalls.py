"""Small helpers shared by the checks: policies, files, expected failures."""

import hashlib
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import filestack.utils
from filestack import Security
from filestack.exceptions import FilestackHTTPError
from PIL import Image

HANDLE = re.compile(r"^[A-Za-z0-9]{20}$")
MIB = 1024 * 1024


class CheckFailed(Exception):
    """A check found the emulator answering differently from what the SDK expects."""


@dataclass
class Context:
    """What every check needs, and what earlier checks left for later ones."""

    address: str
    api_key: str
    app_secret: str
    webhook_secret: str
    workdir: Path
    receiver: object
    journal: object
    files: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)

    def policy(self, calls, handle=None, expires_in_s=3600, **rules):
        """A `Security` for `calls`, optionally pinned to `handle` and with extra
        rules (`path=...`), signed with the app secret."""
        policy = {"expiry": int(time.time()) + expires_in_s, "call": list(calls), **rules}
        if handle is not None:
            policy["handle"] = handle
        return Security(policy, self.app_secret)

    def link(self, name):
        """The Filelink an earlier check uploaded under `name`."""
        if name not in self.links:
            raise CheckFailed(f"needs the '{name}' upload, which did not succeed")
        return self.links[name]

    def write_file(self, name, data):
        path = self.workdir / name
        path.write_bytes(data)
        self.files[name] = path
        return path


def random_bytes(size):
    return os.urandom(size)


def png_bytes(width, height):
    """A PNG of a radial gradient, width x height pixels."""
    image = Image.radial_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def image_size(data):
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception as err:
        raise CheckFailed(f"the answer is not an image Pillow can read ({len(data)} bytes): {err}") from err


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def fetch(url):
    """GET through the SDK's own requests wrapper: HTTP errors raise `FilestackHTTPError`."""
    return filestack.utils.requests.get(url).content


def http_status(err):
    """The HTTP status behind a `FilestackHTTPError`, or None."""
    response = getattr(err.__cause__, "response", None)
    return getattr(response, "status_code", None)


def expect_http_error(action, allowed, wanted):
    """Runs `action`; it must raise the SDK's HTTP error with a status in `allowed`."""
    try:
        action()
    except FilestackHTTPError as err:
        status = http_status(err)
        if status not in allowed:
            raise CheckFailed(f"HTTP {status}, want {wanted}: {str(err)[:200]}") from err
        return status
    raise CheckFailed("the emulator accepted it")


def expect_same_bytes(got, want, what):
    if got != want:
        raise CheckFailed(
            f"{what}: got {len(got)} bytes (md5 {md5_hex(got)}), "
            f"want {len(want)} bytes (md5 {md5_hex(want)})"
        )


def expect_handle(link, what):
    if not HANDLE.match(link.handle or ""):
        raise CheckFailed(f"{what}: handle {link.handle!r} is not 20 alphanumerics")


def expect_field(mapping, key, want, what):
    got = mapping.get(key) if isinstance(mapping, dict) else None
    if got != want:
        raise CheckFailed(f"{what}: '{key}' is {got!r}, want {want!r}")


def download_bytes(ctx, link, security, name):
    """`Filelink.download` into the work dir, then the bytes written."""
    path = ctx.workdir / f"downloaded-{name}"
    link.download(str(path), security=security)
    return path.read_bytes()
