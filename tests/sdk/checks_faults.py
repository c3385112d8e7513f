"""Checks that the SDK's own recovery paths work against the emulator's faults."""

import logging

import requests
from filestack import Client

from sdkcalls import MIB, CheckFailed, expect_field, expect_handle, md5_hex, random_bytes

FII_LOGGER = "filestack.uploads.intelligent_ingestion"
FAULT_TIMEOUT_S = 10


def _fault_url(ctx):
    return f"{ctx.address}/_emulator/faults"


def _arm(ctx, spec):
    response = requests.post(_fault_url(ctx), json=spec, timeout=FAULT_TIMEOUT_S)
    if response.status_code != 200:
        raise CheckFailed(f"arming {spec} answered {response.status_code}: {response.text[:200]}")


def _chunk_sizes(ctx, mark):
    sizes = []
    for exchange in ctx.journal.since(mark):
        if exchange.sdk_url.endswith("/multipart/upload") and '"size": ' in exchange.request_body:
            sizes.append(int(exchange.request_body.split('"size": ')[1].split(",")[0]))
    return sizes


def an_intelligent_upload_survives_a_failed_chunk_put_by_retrying_smaller_chunks(ctx):
    data = random_bytes(7 * MIB + 99)  # one part, so the fault hits its only chunk
    path = ctx.write_file("fii-retry.bin", data)
    client = Client(ctx.api_key, security=ctx.policy(["pick"]))
    _arm(ctx, {"route": "part_put", "status": 500, "count": 1})
    logger = logging.getLogger(FII_LOGGER)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    mark = ctx.journal.mark()
    try:
        link = client.upload(filepath=str(path), intelligent=True)
    finally:
        logger.setLevel(level)
        requests.delete(_fault_url(ctx), timeout=FAULT_TIMEOUT_S)
    failed_puts = [e for e in ctx.journal.since(mark) if e.method == "PUT" and e.status.startswith("500")]
    if not failed_puts:
        raise CheckFailed("no part PUT answered 500: the armed fault did not fire")
    expect_handle(link, "intelligent upload after a failed PUT")
    meta = link.metadata(["size", "md5"], security=ctx.policy(["stat"], link.handle))
    expect_field(meta, "size", len(data), "metadata")
    expect_field(meta, "md5", md5_hex(data), "metadata")
    return f"chunk sizes sent: {_chunk_sizes(ctx, mark)}"


CHECKS = [
    an_intelligent_upload_survives_a_failed_chunk_put_by_retrying_smaller_chunks,
]
