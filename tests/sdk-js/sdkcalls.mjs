// Small helpers shared by the checks: policies, clients, uploads, bytes,
// image sizes, expected failures and the emulator's fault API.

import crypto from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import zlib from 'node:zlib';

import filestack from 'filestack-js';

const { FsRequest } = filestack;

export const HANDLE = /^[A-Za-z0-9]{20}$/;
export const MIB = 1024 * 1024;
const FAULT_TIMEOUT_MS = 10000;

/** A check found the emulator answering differently from what the SDK expects. */
export class CheckFailed extends Error {}

/** What every check needs, and what earlier checks left for later ones. */
export class Context {
  constructor({ address, apiKey, appSecret, webhookSecret, receiver, journal }) {
    Object.assign(this, { address, apiKey, appSecret, webhookSecret, receiver, journal });
    this.files = new Map();
    this.links = new Map();
  }

  /**
   * `{policy, signature}` for `calls`, optionally pinned to `handle`, with
   * extra rules (`path: ...`): URL-safe base64 (padding kept) of the policy
   * JSON, signed with HMAC-SHA256 (hex) of the app secret over that string.
   */
  policy(calls, { handle, expiresInS = 3600, ...rules } = {}) {
    const policy = { expiry: Math.floor(Date.now() / 1000) + expiresInS, call: calls, ...rules };
    if (handle) {
      policy.handle = handle;
    }
    const encoded = Buffer.from(JSON.stringify(policy)).toString('base64url');
    const padded = encoded + '='.repeat((4 - (encoded.length % 4)) % 4);
    return { policy: padded, signature: hmacHex(this.appSecret, padded) };
  }

  /** A filestack-js client for the referee's API key, with `security` if given. */
  client(security) {
    return filestack.init(this.apiKey, security ? { security } : undefined);
  }

  /** The upload (a filestack-js `File`) an earlier check stored under `name`. */
  link(name) {
    if (!this.links.has(name)) {
      throw new CheckFailed(`needs the '${name}' upload, which did not succeed`);
    }
    return this.links.get(name);
  }
}

export function hmacHex(secret, message) {
  return crypto.createHmac('sha256', secret).update(message).digest('hex');
}

/** The upload failed: `error` is what the SDK emitted as `upload.error`. */
export class UploadFailed extends Error {
  constructor(error, file) {
    const detail = error ? `${error.message} ${JSON.stringify(error.details || {}).slice(0, 300)}` : `file status ${file && file.status}`;
    super(`the upload failed: ${detail}`);
    this.error = error;
    this.file = file;
  }
}

/**
 * `client.upload(...)`, resolving to the stored file. The SDK rejects a
 * failed upload with the file object itself and reports the reason as an
 * `upload.error` event; both are folded into one `UploadFailed`.
 */
export async function upload(client, input, options = {}, storeOptions = {}) {
  let reported = null;
  const onError = (err) => { reported = err; };
  client.on('upload.error', onError);
  try {
    const file = await client.upload(input, options, storeOptions);
    if (!file || file.status !== 'Stored') {
      throw new UploadFailed(reported, file);
    }
    return file;
  } catch (err) {
    if (err instanceof UploadFailed) {
      throw err;
    }
    throw new UploadFailed(reported || (err instanceof Error ? err : null), err);
  } finally {
    client.off('upload.error', onError);
  }
}

/** `size` deterministic pseudo-random bytes (AES-128-CTR keystream of `seed`). */
export function pseudoRandom(size, seed) {
  const key = crypto.createHash('sha256').update(`filegate-referee:${seed}`).digest();
  const cipher = crypto.createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

/** Binary test data: a fixed ASCII header, then pseudo-random bytes. */
export function binaryData(size, seed) {
  const header = Buffer.from(`filegate sdk-js referee ${seed}\n`);
  return Buffer.concat([header, pseudoRandom(size - header.length, seed)]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) {
    c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return c >>> 0;
});

function crc32(buffer) {
  let c = 0xffffffff;
  for (const byte of buffer) {
    c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** An RGB PNG, width x height, of a colour gradient. */
export function pngBytes(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, no interlace
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      rows.set([(x * 255) / width, (y * 255) / height, ((x + y) * 127) / (width + height)], row + 1 + x * 3);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', zlib.deflateSync(rows)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** `{format, width, height}` read from a PNG's IHDR or a JPEG's SOF marker. */
export function imageSize(data) {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data || []);
  if (bytes.length >= 24 && bytes.readUInt32BE(0) === 0x89504e47 && bytes.toString('ascii', 12, 16) === 'IHDR') {
    return { format: 'png', width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    let at = 2;
    while (at + 9 <= bytes.length) {
      if (bytes[at] !== 0xff) {
        break;
      }
      const marker = bytes[at + 1];
      if (marker === 0xff) {
        at += 1;
        continue;
      }
      const isSof = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
      if (isSof) {
        return { format: 'jpeg', width: bytes.readUInt16BE(at + 7), height: bytes.readUInt16BE(at + 5) };
      }
      at += 2 + bytes.readUInt16BE(at + 2);
    }
    throw new CheckFailed(`a JPEG without a SOF marker (${bytes.length} bytes)`);
  }
  throw new CheckFailed(`the answer is neither PNG nor JPEG (${bytes.length} bytes, starts ${bytes.subarray(0, 8).toString('hex')})`);
}

export const md5Hex = (data) => crypto.createHash('md5').update(data).digest('hex');
export const sha256Hex = (data) => crypto.createHash('sha256').update(data).digest('hex');

/** The body of an SDK response as bytes (the SDK turns text/* bodies into strings). */
export function responseBytes(response) {
  const data = response && response.data;
  if (Buffer.isBuffer(data)) {
    return data;
  }
  if (typeof data === 'string') {
    return Buffer.from(data, 'latin1');
  }
  throw new CheckFailed(`the response body is ${data === null ? 'null' : typeof data}, want bytes`);
}

/** GET through the SDK's own request layer (`FsRequest`), as bytes. */
export async function fetchBytes(url) {
  return responseBytes(await FsRequest.get(url));
}

/** The HTTP status behind an SDK error: request errors and upload errors alike. */
export function httpStatus(err) {
  if (err instanceof UploadFailed) {
    return err.error && err.error.details ? err.error.details.code : undefined;
  }
  return err && err.response ? err.response.status : undefined;
}

/** Runs `action`; it must fail with an SDK error carrying HTTP `want`. */
export async function expectHttpError(action, want) {
  try {
    await action();
  } catch (err) {
    if (err instanceof CheckFailed) {
      throw err;
    }
    const status = httpStatus(err);
    if (status !== want) {
      throw new CheckFailed(`HTTP ${status}, want ${want}: ${String(err.message).slice(0, 300)}`);
    }
    return status;
  }
  throw new CheckFailed('the emulator accepted it');
}

export function expectSameBytes(got, want, what) {
  if (!Buffer.isBuffer(got) || !got.equals(want)) {
    const size = got ? got.length : 'no';
    throw new CheckFailed(`${what}: got ${size} bytes (md5 ${got ? md5Hex(got) : '-'}), want ${want.length} bytes (md5 ${md5Hex(want)})`);
  }
}

export function expectHandle(handle, what) {
  if (!HANDLE.test(handle || '')) {
    throw new CheckFailed(`${what}: handle ${JSON.stringify(handle)} is not 20 alphanumerics`);
  }
}

export function expectField(object, key, want, what) {
  const got = object ? object[key] : undefined;
  if (!isDeepStrictEqual(got, want)) {
    throw new CheckFailed(`${what}: '${key}' is ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

/** Exchanges recorded since `mark` whose SDK URL path ends with `suffix`. */
export function exchangesTo(ctx, mark, suffix, method) {
  return ctx.journal.since(mark).filter((e) => {
    const path = new URL(e.sdkUrl.includes('://') ? e.sdkUrl : `https://${e.sdkUrl}`).pathname;
    return path.endsWith(suffix) && (!method || e.method === method);
  });
}

/** Part PUTs recorded since `mark`. */
export function partPuts(ctx, mark) {
  return ctx.journal.since(mark).filter((e) => e.method === 'PUT' && e.sdkUrl.includes('/s3/'));
}

/** Arms a fault through the emulator's admin API (not through the SDK). */
export async function armFault(ctx, spec) {
  const response = await fetch(`${ctx.address}/_emulator/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
    signal: AbortSignal.timeout(FAULT_TIMEOUT_MS),
  });
  if (response.status !== 200) {
    throw new CheckFailed(`arming ${JSON.stringify(spec)} answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  }
}

export async function clearFaults(ctx) {
  await fetch(`${ctx.address}/_emulator/faults`, { method: 'DELETE', signal: AbortSignal.timeout(FAULT_TIMEOUT_MS) });
}
