"""Checks of the happy paths: upload, metadata, download, transform, overwrite, delete.

Each check takes the shared `Context`, raises `CheckFailed` (or lets an SDK error
through) on a mismatch, and returns a short detail for its PASS line.
"""

import io

from filestack import Client

from sdkcalls import (
    MIB,
    CheckFailed,
    download_bytes,
    expect_field,
    expect_handle,
    expect_http_error,
    expect_same_bytes,
    fetch,
    image_size,
    md5_hex,
    png_bytes,
    random_bytes,
    sha256_hex,
)

BIG_SIZE = 12 * MIB + 4321
FII_SIZE = 9 * MIB + 777
PNG_WIDTH, PNG_HEIGHT = 640, 480


def _parts_sent(ctx, mark):
    return sum(1 for e in ctx.journal.since(mark) if e.sdk_url.endswith("/multipart/upload"))


def a_12_mib_file_uploads_in_several_parts_and_gets_a_20_alphanumeric_handle(ctx):
    path = ctx.write_file("big.bin", random_bytes(BIG_SIZE))
    client = Client(ctx.api_key, security=ctx.policy(["pick"]))
    mark = ctx.journal.mark()
    link = client.upload(filepath=str(path))
    expect_handle(link, "upload of big.bin")
    expect_field(link.upload_response, "size", BIG_SIZE, "complete response")
    expect_field(link.upload_response, "filename", "big.bin", "complete response")
    ctx.links["big"] = link
    return f"handle {link.handle}, {_parts_sent(ctx, mark)} parts"


def a_small_file_object_uploads(ctx):
    data = b"hello from the filestack-python referee\n" * 3
    ctx.files["small-bytes"] = data
    client = Client(ctx.api_key, security=ctx.policy(["pick"]))
    link = client.upload(file_obj=io.BytesIO(data))
    expect_handle(link, "upload of a BytesIO")
    expect_field(link.upload_response, "size", len(data), "complete response")
    ctx.links["small"] = link
    return f"handle {link.handle}"


def an_intelligent_ingestion_upload_stores_the_exact_bytes(ctx):
    data = random_bytes(FII_SIZE)
    path = ctx.write_file("fii.bin", data)
    client = Client(ctx.api_key, security=ctx.policy(["pick"]))
    link = client.upload(filepath=str(path), intelligent=True)
    expect_handle(link, "intelligent upload of fii.bin")
    meta = link.metadata(["size", "md5"], security=ctx.policy(["stat"], link.handle))
    expect_field(meta, "size", FII_SIZE, "metadata")
    expect_field(meta, "md5", md5_hex(data), "metadata")
    ctx.links["fii"] = link
    return f"handle {link.handle}"


def store_params_set_the_filename_mimetype_path_and_container(ctx):
    data = b"stored where the referee says " + random_bytes(32)
    store = {
        "filename": "renamed.txt", "mimetype": "text/plain", "path": "referee/renamed.txt",
        "container": "referee-bucket", "upload_tags": {"suite": "referee"},
    }
    client = Client(ctx.api_key, security=ctx.policy(["pick"]))
    link = client.upload(file_obj=io.BytesIO(data), store_params=dict(store))
    expect_handle(link, "upload with store_params")
    for key in ("filename", "mimetype", "container"):
        expect_field(link.upload_response, key, store[key], "complete response")
    expect_field(link.upload_response, "key", store["path"], "complete response")
    fields = ["size", "filename", "mimetype", "path", "container"]
    meta = link.metadata(fields, security=ctx.policy(["stat"], link.handle))
    expect_field(meta, "size", len(data), "metadata")
    for key in ("filename", "mimetype", "path", "container"):
        expect_field(meta, key, store[key], "metadata")
    return f"handle {link.handle}, key {store['path']}"


def metadata_reports_the_size_names_and_hashes_of_the_big_file(ctx):
    link = ctx.link("big")
    data = ctx.files["big.bin"].read_bytes()
    fields = ["size", "mimetype", "filename", "md5", "sha256", "uploaded"]
    meta = link.metadata(fields, security=ctx.policy(["stat"], link.handle))
    expect_field(meta, "size", len(data), "metadata")
    expect_field(meta, "filename", "big.bin", "metadata")
    expect_field(meta, "mimetype", "application/octet-stream", "metadata")
    expect_field(meta, "md5", md5_hex(data), "metadata")
    expect_field(meta, "sha256", sha256_hex(data), "metadata")
    if not isinstance(meta.get("uploaded"), (int, float)):
        raise CheckFailed(f"metadata: 'uploaded' is {meta.get('uploaded')!r}, want a number")
    return ", ".join(sorted(meta))


def the_signed_url_of_the_big_file_serves_its_exact_bytes(ctx):
    link = ctx.link("big")
    url = link.signed_url(security=ctx.policy(["read"], link.handle))
    expect_same_bytes(fetch(url), ctx.files["big.bin"].read_bytes(), "signed_url body")
    return "12 MiB identical"


def download_writes_the_exact_bytes_of_the_small_file(ctx):
    link = ctx.link("small")
    got = download_bytes(ctx, link, ctx.policy(["read"], link.handle), "small")
    expect_same_bytes(got, ctx.files["small-bytes"], "download()")
    return f"{len(got)} bytes identical"


def a_png_uploads_as_image_png(ctx):
    path = ctx.write_file("photo.png", png_bytes(PNG_WIDTH, PNG_HEIGHT))
    client = Client(ctx.api_key, security=ctx.policy(["pick"]))
    link = client.upload(filepath=str(path))
    expect_handle(link, "upload of photo.png")
    expect_field(link.upload_response, "mimetype", "image/png", "complete response")
    ctx.links["png"] = link
    return f"handle {link.handle}"


def _transformed_size(ctx, fit):
    link = ctx.link("png")
    security = ctx.policy(["read", "convert"], link.handle)
    url = link.resize(width=200, height=200, fit=fit).enhance().signed_url(security=security)
    return image_size(fetch(url))


def resize_with_fit_crop_and_enhance_gives_200_by_200(ctx):
    size = _transformed_size(ctx, "crop")
    if size != (200, 200):
        raise CheckFailed(f"image is {size[0]}x{size[1]}, want 200x200")
    return "200x200"


def resize_with_fit_clip_keeps_the_aspect_ratio_200_by_150(ctx):
    size = _transformed_size(ctx, "clip")
    if size != (200, 150):
        raise CheckFailed(f"image is {size[0]}x{size[1]}, want 200x150")
    return "200x150"


def overwrite_replaces_the_bytes_that_download_returns(ctx):
    link = ctx.link("small")
    new_data = b"overwritten by the referee " + random_bytes(64)
    path = ctx.write_file("overwrite.bin", new_data)
    link.overwrite(filepath=str(path), security=ctx.policy(["write"], link.handle))
    got = download_bytes(ctx, link, ctx.policy(["read"], link.handle), "overwritten")
    expect_same_bytes(got, new_data, "download() after overwrite")
    return f"{len(got)} new bytes"


def after_delete_the_download_fails(ctx):
    client = Client(ctx.api_key, security=ctx.policy(["pick"]))
    link = client.upload(file_obj=io.BytesIO(b"doomed " + random_bytes(32)))
    read = ctx.policy(["read"], link.handle)
    download_bytes(ctx, link, read, "doomed-before")
    link.delete(security=ctx.policy(["remove"], link.handle))
    status = expect_http_error(lambda: download_bytes(ctx, link, read, "doomed-after"), range(400, 500), "a 4xx")
    return f"download answered HTTP {status}"


CHECKS = [
    a_12_mib_file_uploads_in_several_parts_and_gets_a_20_alphanumeric_handle,
    a_small_file_object_uploads,
    an_intelligent_ingestion_upload_stores_the_exact_bytes,
    store_params_set_the_filename_mimetype_path_and_container,
    metadata_reports_the_size_names_and_hashes_of_the_big_file,
    the_signed_url_of_the_big_file_serves_its_exact_bytes,
    download_writes_the_exact_bytes_of_the_small_file,
    a_png_uploads_as_image_png,
    resize_with_fit_crop_and_enhance_gives_200_by_200,
    resize_with_fit_clip_keeps_the_aspect_ratio_200_by_150,
    overwrite_replaces_the_bytes_that_download_returns,
    after_delete_the_download_fails,
]
