"""Checks that the emulator refuses what Filestack refuses, and signs its webhooks."""

import io
import json

from filestack import Client, Security
from filestack.helpers import verify_webhook_signature

from sdkcalls import CheckFailed, download_bytes, expect_http_error, fetch, random_bytes

REFUSED = (401, 403)
WANT_REFUSED = "401 or 403"
WEBHOOK_WAIT_S = 15


def _refused(action, control):
    """`action` must be refused, while `control`, the same request with a valid
    policy, goes through: otherwise the refusal proves nothing."""
    try:
        control()
    except Exception as err:
        raise CheckFailed(f"the same request with a valid policy failed too: {err}") from err
    return f"HTTP {expect_http_error(action, REFUSED, WANT_REFUSED)}"


def _small_upload(ctx, security):
    client = Client(ctx.api_key, security=security)
    return lambda: client.upload(file_obj=io.BytesIO(b"small upload " + random_bytes(16)))


def an_upload_with_a_policy_without_pick_is_refused(ctx):
    without_pick = ctx.policy(["read", "stat", "write", "convert", "remove"])
    return _refused(_small_upload(ctx, without_pick), _small_upload(ctx, ctx.policy(["pick"])))


def an_upload_signed_with_another_secret_is_refused(ctx):
    good = ctx.policy(["pick"])
    forged = Security(good.policy, ctx.app_secret + "-but-wrong")
    return _refused(_small_upload(ctx, forged), _small_upload(ctx, good))


def an_upload_to_a_path_the_policy_does_not_allow_is_refused(ctx):
    security = ctx.policy(["pick"], path="referee/alice/.*")

    def upload_to(path):
        client = Client(ctx.api_key, security=security)
        data = io.BytesIO(b"path rules " + random_bytes(16))
        return lambda: client.upload(file_obj=data, store_params={"path": path})

    return _refused(upload_to("referee/bob/x.bin"), upload_to("referee/alice/x.bin"))


def _download(ctx, link, security):
    return lambda: download_bytes(ctx, link, security, "refusal")


def a_download_with_an_expired_policy_is_refused(ctx):
    link = ctx.link("big")
    expired = ctx.policy(["read"], link.handle, expires_in_s=-60)
    return _refused(_download(ctx, link, expired), _download(ctx, link, ctx.policy(["read"], link.handle)))


def a_transformation_with_a_read_only_policy_is_refused(ctx):
    link = ctx.link("png")
    transformation = link.resize(width=100, height=100, fit="crop")

    def fetch_with(calls):
        url = transformation.signed_url(security=ctx.policy(calls, link.handle))
        return lambda: fetch(url)

    return _refused(fetch_with(["read"]), fetch_with(["read", "convert"]))


def a_read_policy_pinned_to_another_handle_is_refused(ctx):
    link, other = ctx.link("big"), ctx.link("png")
    pinned_elsewhere = ctx.policy(["read"], other.handle)
    pinned_here = ctx.policy(["read"], link.handle)
    return _refused(_download(ctx, link, pinned_elsewhere), _download(ctx, link, pinned_here))


def _upload_event_for(handle):
    def matches(delivery):
        try:
            event = json.loads(delivery.body)
        except ValueError:
            return False
        text = event.get("text") if isinstance(event, dict) else None
        url = text.get("url", "") if isinstance(text, dict) else ""
        return event.get("action") == "fp.upload" and url.endswith("/" + handle)

    return matches


def an_fp_upload_webhook_arrives_and_its_signature_verifies(ctx):
    handle = ctx.link("big").handle
    delivery = ctx.receiver.wait_for(_upload_event_for(handle), WEBHOOK_WAIT_S)
    if delivery is None:
        seen = [d.body[:120] for d in ctx.receiver.seen]
        raise CheckFailed(f"no fp.upload for {handle} within {WEBHOOK_WAIT_S} s; received {seen}")
    if delivery.path != "/hook":
        raise CheckFailed(f"delivered to {delivery.path!r}, want '/hook'")
    ok, detail = verify_webhook_signature(ctx.webhook_secret, delivery.body, delivery.headers)
    if not ok:
        raise CheckFailed(f"verify_webhook_signature refused it: {detail}")
    tampered = delivery.body.replace(handle.encode(), handle[::-1].encode())
    ok, _ = verify_webhook_signature(ctx.webhook_secret, tampered, delivery.headers)
    if ok:
        raise CheckFailed("a tampered body verified too: the signature does not cover the body")
    return f"delivery for {handle} verified, tampered copy refused"


CHECKS = [
    an_upload_with_a_policy_without_pick_is_refused,
    an_upload_signed_with_another_secret_is_refused,
    an_upload_to_a_path_the_policy_does_not_allow_is_refused,
    a_download_with_an_expired_policy_is_refused,
    a_transformation_with_a_read_only_policy_is_refused,
    a_read_policy_pinned_to_another_handle_is_refused,
    an_fp_upload_webhook_arrives_and_its_signature_verifies,
]
