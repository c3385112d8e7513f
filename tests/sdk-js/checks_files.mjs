// Checks of the happy paths: uploads (Buffer, multipart, intelligent
// ingestion, store options and tags), metadata, retrieve and download,
// transformations, the SDK's own policy encoding, and remove.
//
// Each check takes the shared Context, throws CheckFailed (or lets an SDK
// error through) on a mismatch, and returns a short detail for its PASS line.

import filestack from 'filestack-js';

import {
  CheckFailed, MIB, binaryData, exchangesTo, expectField, expectHandle, expectHttpError, expectSameBytes,
  fetchBytes, imageSize, md5Hex, partPuts, pngBytes, responseBytes, sha256Hex, upload,
} from './sdkcalls.mjs';

const { Filelink, getSecurity } = filestack;

const SMALL_SIZE = 3 * 1024 + 17;
const BIG_SIZE = 12 * MIB + 4321; // three parts of the SDK's default 6 MiB
const FII_SIZE = 9 * MIB + 777; // two 8 MiB intelligent-ingestion parts
const PNG_WIDTH = 640;
const PNG_HEIGHT = 480;
const RUN_STARTED_MS = Date.now();

/** What the emulator answered to the last successful `/multipart/complete` since `mark`. */
export function completeAnswer(ctx, mark) {
  const done = exchangesTo(ctx, mark, '/multipart/complete', 'POST').filter((e) => e.status.startsWith('200'));
  if (!done.length) {
    throw new CheckFailed('no /multipart/complete answered 200');
  }
  return done[done.length - 1].response.data;
}

/** `client.download` of `handle` with a read policy pinned to it, as bytes. */
export async function downloadBytes(ctx, handle, security = ctx.policy(['read'], { handle })) {
  return responseBytes(await ctx.client().download(handle, security));
}

async function a_small_buffer_uploads_with_a_signed_policy_and_the_cdn_serves_its_exact_bytes(ctx) {
  const data = binaryData(SMALL_SIZE, 'small');
  const client = ctx.client(ctx.policy(['pick']));
  const mark = ctx.journal.mark();
  const file = await upload(client, { name: 'small.bin', file: data });
  expectHandle(file.handle, 'upload of small.bin');
  const answer = completeAnswer(ctx, mark);
  expectField(answer, 'handle', file.handle, 'complete response');
  expectField(answer, 'size', data.length, 'complete response');
  expectField(answer, 'mimetype', 'application/octet-stream', 'complete response');
  expectField(answer, 'filename', 'small.bin', 'complete response');
  expectField(answer, 'status', 'Stored', 'complete response');
  if (!String(file.url).endsWith(`/${file.handle}`)) {
    throw new CheckFailed(`url ${file.url} does not end with /${file.handle}`);
  }
  const read = ctx.policy(['read'], { handle: file.handle });
  expectSameBytes(await downloadBytes(ctx, file.handle, read), data, 'client.download');
  const viaUrl = await filestack.FsRequest.get(file.url, { params: read });
  expectSameBytes(responseBytes(viaUrl), data, 'GET of the returned url');
  ctx.files.set('small', data);
  ctx.links.set('small', file);
  return `handle ${file.handle}, ${data.length} bytes identical`;
}

async function a_12_mib_buffer_uploads_in_several_parts_and_the_cdn_serves_its_exact_bytes(ctx) {
  const data = binaryData(BIG_SIZE, 'big');
  const client = ctx.client(ctx.policy(['pick']));
  const mark = ctx.journal.mark();
  const file = await upload(client, { name: 'big.bin', file: data });
  expectHandle(file.handle, 'upload of big.bin');
  const announced = exchangesTo(ctx, mark, '/multipart/upload', 'POST').length;
  const puts = partPuts(ctx, mark).length;
  if (announced !== 3 || puts !== 3) {
    throw new CheckFailed(`${announced} /multipart/upload calls and ${puts} part PUTs, want 3 of each`);
  }
  expectField(completeAnswer(ctx, mark), 'size', BIG_SIZE, 'complete response');
  expectSameBytes(await downloadBytes(ctx, file.handle), data, 'client.download');
  ctx.files.set('big', data);
  ctx.links.set('big', file);
  return `handle ${file.handle}, 3 parts, ${BIG_SIZE} bytes identical`;
}

async function an_intelligent_ingestion_upload_commits_each_part_and_stores_the_exact_bytes(ctx) {
  const data = binaryData(FII_SIZE, 'fii');
  const client = ctx.client(ctx.policy(['pick']));
  const mark = ctx.journal.mark();
  const file = await upload(client, { name: 'fii.bin', file: data }, { intelligent: true });
  expectHandle(file.handle, 'intelligent upload of fii.bin');
  const commits = exchangesTo(ctx, mark, '/multipart/commit', 'POST').filter((e) => e.status.startsWith('200'));
  if (commits.length !== 2) {
    throw new CheckFailed(`${commits.length} parts committed, want 2: did the SDK fall back to a regular upload?`);
  }
  expectField(completeAnswer(ctx, mark), 'size', FII_SIZE, 'complete response');
  expectSameBytes(await downloadBytes(ctx, file.handle), data, 'client.download');
  return `handle ${file.handle}, 2 parts committed`;
}

async function store_options_and_upload_tags_set_the_name_type_path_container_and_tags(ctx) {
  const data = Buffer.from(`stored where the js referee says\n${'x'.repeat(100)}\n`);
  const store = {
    filename: 'renamed.txt', mimetype: 'text/plain', location: 's3', path: 'referee-js/renamed.txt',
    container: 'referee-js-bucket', access: 'public', workflows: ['wf-referee-js'], altText: 'a text file',
  };
  const tags = { suite: 'sdk-js', purpose: 'referee' };
  const client = ctx.client(ctx.policy(['pick']));
  const mark = ctx.journal.mark();
  const file = await upload(client, data, { tags }, { ...store });
  expectHandle(file.handle, 'upload with store options');
  const answer = completeAnswer(ctx, mark);
  for (const key of ['filename', 'mimetype', 'container']) {
    expectField(answer, key, store[key], 'complete response');
  }
  expectField(file, 'key', store.path, 'the uploaded file');
  expectField(file, 'container', store.container, 'the uploaded file');
  expectField(file, 'uploadTags', tags, 'the uploaded file');
  const fields = { size: true, filename: true, mimetype: true, path: true, container: true };
  const meta = await client.metadata(file.handle, fields, ctx.policy(['stat'], { handle: file.handle }));
  expectField(meta, 'size', data.length, 'metadata');
  for (const key of ['filename', 'mimetype', 'path', 'container']) {
    expectField(meta, key, store[key], 'metadata');
  }
  return `handle ${file.handle}, key ${file.key}, tags ${JSON.stringify(file.uploadTags)}`;
}

async function disable_storage_key_stores_under_the_path_plus_the_file_name(ctx) {
  const client = ctx.client(ctx.policy(['pick']));
  const input = { name: 'kept-name.bin', file: binaryData(2048, 'keyless') };
  const file = await upload(client, input, {}, { path: 'referee-js/keyless', disableStorageKey: true });
  expectField(file, 'key', 'referee-js/keyless/kept-name.bin', 'the uploaded file');
  const meta = await client.metadata(file.handle, { path: true }, ctx.policy(['stat'], { handle: file.handle }));
  expectField(meta, 'path', 'referee-js/keyless/kept-name.bin', 'metadata');
  return `key ${file.key}`;
}

async function metadata_reports_the_size_type_name_and_hashes_of_the_big_file(ctx) {
  const file = ctx.link('big');
  const data = ctx.files.get('big');
  const fields = { size: true, mimetype: true, filename: true, md5: true, sha256: true, uploaded: true, writeable: true };
  const meta = await ctx.client().metadata(file.handle, fields, ctx.policy(['stat'], { handle: file.handle }));
  expectField(meta, 'handle', file.handle, 'metadata');
  expectField(meta, 'size', data.length, 'metadata');
  expectField(meta, 'mimetype', 'application/octet-stream', 'metadata');
  expectField(meta, 'filename', 'big.bin', 'metadata');
  expectField(meta, 'md5', md5Hex(data), 'metadata');
  expectField(meta, 'sha256', sha256Hex(data), 'metadata');
  expectField(meta, 'writeable', true, 'metadata');
  const dayMs = 24 * 3600 * 1000;
  if (typeof meta.uploaded !== 'number' || meta.uploaded < RUN_STARTED_MS - dayMs || meta.uploaded > Date.now() + 60000) {
    throw new CheckFailed(`metadata: 'uploaded' is ${JSON.stringify(meta.uploaded)}, want unix milliseconds of this run`);
  }
  return Object.keys(meta).sort().join(', ');
}

async function silently(action) {
  const info = console.info;
  console.info = () => {}; // retrieve() announces its own deprecation on every call
  try {
    return await action();
  } finally {
    console.info = info;
  }
}

async function retrieve_returns_the_bytes_the_head_headers_and_the_metadata(ctx) {
  const file = ctx.link('small');
  const data = ctx.files.get('small');
  const security = ctx.policy(['read', 'stat'], { handle: file.handle });
  const client = ctx.client();
  const body = await silently(() => client.retrieve(file.handle, {}, security));
  expectSameBytes(Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'latin1'), data, 'retrieve()');
  const headers = await silently(() => client.retrieve(file.handle, { head: true }, security));
  expectField(headers, 'content-length', String(data.length), 'retrieve({head}) headers');
  expectField(headers, 'content-type', 'application/octet-stream', 'retrieve({head}) headers');
  const meta = await silently(() => client.retrieve(file.handle, { metadata: true }, security));
  expectField(meta, 'size', data.length, 'retrieve({metadata})');
  expectField(meta, 'filename', 'small.bin', 'retrieve({metadata})');
  return `${data.length} bytes, HEAD and metadata agree`;
}

async function a_png_uploads_as_image_png(ctx) {
  const client = ctx.client(ctx.policy(['pick']));
  const mark = ctx.journal.mark();
  const file = await upload(client, { name: 'photo.png', file: pngBytes(PNG_WIDTH, PNG_HEIGHT) });
  expectField(completeAnswer(ctx, mark), 'mimetype', 'image/png', 'complete response');
  const meta = await client.metadata(file.handle, { width: true, height: true }, ctx.policy(['stat'], { handle: file.handle }));
  expectField(meta, 'width', PNG_WIDTH, 'metadata');
  expectField(meta, 'height', PNG_HEIGHT, 'metadata');
  ctx.links.set('png', file);
  return `handle ${file.handle}, ${PNG_WIDTH}x${PNG_HEIGHT}`;
}

async function client_transform_resize_with_fit_crop_gives_a_200_by_200_png(ctx) {
  const file = ctx.link('png');
  const client = ctx.client(ctx.policy(['read', 'convert'], { handle: file.handle }));
  const url = client.transform(file.handle, { resize: { width: 200, height: 200, fit: 'crop' } });
  const size = imageSize(await fetchBytes(url));
  if (size.format !== 'png' || size.width !== 200 || size.height !== 200) {
    throw new CheckFailed(`${url} gave a ${size.width}x${size.height} ${size.format}, want a 200x200 png`);
  }
  return '200x200 png';
}

async function a_filelink_resize_with_fit_clip_and_output_jpg_keeps_the_aspect_ratio(ctx) {
  const file = ctx.link('png');
  const security = ctx.policy(['read', 'convert'], { handle: file.handle });
  const link = new Filelink(file.handle, ctx.apiKey)
    .resize({ width: 200, height: 200, fit: 'clip' })
    .output({ format: 'jpg' })
    .security(security);
  const size = imageSize(await fetchBytes(link.toString()));
  if (size.format !== 'jpeg' || size.width !== 200 || size.height !== 150) {
    throw new CheckFailed(`${link.toString()} gave a ${size.width}x${size.height} ${size.format}, want a 200x150 jpeg`);
  }
  return '200x150 jpeg';
}

/**
 * A policy from the SDK's own `getSecurity` (compact JSON, standard base64)
 * whose string holds both `+` and `/`, the characters the two base64
 * alphabets disagree on. The `url` rule (external sources only, unused here)
 * is padded with `?` and `~` until the encoding has both.
 */
export function sdkSecurity(calls, secret) {
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  for (let q = 0; q < 8; q++) {
    for (let t = 0; t < 8; t++) {
      const url = `https://referee.invalid/${'?'.repeat(q)}${'~'.repeat(t)}`;
      const security = getSecurity({ expiry, call: calls, url }, secret);
      if (security.policy.includes('+') && security.policy.includes('/')) {
        return security;
      }
    }
  }
  throw new CheckFailed('no url padding gives a policy with both + and / in its base64');
}

async function a_policy_from_the_sdks_own_get_security_works_for_upload_metadata_download_and_transform(ctx) {
  const security = sdkSecurity(['pick', 'read', 'stat', 'convert'], ctx.appSecret);
  const client = ctx.client(security);
  const image = pngBytes(64, 48);
  const file = await upload(client, { name: 'sdk-policy.png', file: image });
  const meta = await client.metadata(file.handle, { size: true });
  expectField(meta, 'size', image.length, 'metadata');
  expectSameBytes(responseBytes(await client.download(file.handle)), image, 'client.download');
  const url = client.transform(file.handle, { resize: { width: 32 } });
  const size = imageSize(await fetchBytes(url));
  if (size.width !== 32 || size.height !== 24) {
    throw new CheckFailed(`${url} gave ${size.width}x${size.height}, want 32x24`);
  }
  return `policy ${security.policy.slice(0, 16)}... (standard base64 with + and /)`;
}

async function remove_deletes_the_file_and_the_download_then_answers_404(ctx) {
  const data = binaryData(1000, 'doomed');
  const file = await upload(ctx.client(ctx.policy(['pick'])), { name: 'doomed.bin', file: data });
  expectSameBytes(await downloadBytes(ctx, file.handle), data, 'download before remove');
  const client = ctx.client();
  await client.remove(file.handle, ctx.policy(['remove'], { handle: file.handle }));
  const status = await expectHttpError(() => downloadBytes(ctx, file.handle), 404);
  return `download after remove answered HTTP ${status}`;
}

export const CHECKS = [
  a_small_buffer_uploads_with_a_signed_policy_and_the_cdn_serves_its_exact_bytes,
  a_12_mib_buffer_uploads_in_several_parts_and_the_cdn_serves_its_exact_bytes,
  an_intelligent_ingestion_upload_commits_each_part_and_stores_the_exact_bytes,
  store_options_and_upload_tags_set_the_name_type_path_container_and_tags,
  disable_storage_key_stores_under_the_path_plus_the_file_name,
  metadata_reports_the_size_type_name_and_hashes_of_the_big_file,
  retrieve_returns_the_bytes_the_head_headers_and_the_metadata,
  a_png_uploads_as_image_png,
  client_transform_resize_with_fit_crop_gives_a_200_by_200_png,
  a_filelink_resize_with_fit_clip_and_output_jpg_keeps_the_aspect_ratio,
  a_policy_from_the_sdks_own_get_security_works_for_upload_metadata_download_and_transform,
  remove_deletes_the_file_and_the_download_then_answers_404,
];
