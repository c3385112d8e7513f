// Helpers of the Node.js interop scenario: failing a check, test data (random
// bytes, a PNG), hashing and plain HTTP downloads.
import { createHash } from 'node:crypto';

import { PNG } from 'pngjs';

export const MIB = 1024 * 1024;
const HTTP_TIMEOUT_MS = 60_000;

/** A check's expectation that did not hold. */
export class CheckFailed extends Error {}

/** Fails the check with `message` unless `condition` holds. */
export function expect(condition, message) {
  if (!condition) {
    throw new CheckFailed(message);
  }
}

/** Fails the check unless an earlier one left `value`. */
export function needs(value, what) {
  expect(value != null, `needs ${what}, which an earlier check did not leave`);
  return value;
}

export function sha256Hex(data) {
  return createHash('sha256').update(data).digest('hex');
}

/** `data` cut into messages of `size` bytes at most. */
export function chunks(data, size = MIB) {
  const pieces = [];
  for (let at = 0; at < data.length; at += size) {
    pieces.push({ offset: at, data: data.subarray(at, at + size) });
  }
  return pieces;
}

/** A width x height RGB PNG of a colour gradient. */
export function gradientPng(width, height) {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const at = (y * width + x) * 4;
      png.data.set([(x * 4) % 256, (y * 5) % 256, 128, 255], at);
    }
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** The size of a PNG, read by decoding it whole. */
export function decodedPngSize(data) {
  const png = PNG.sync.read(data);
  return { width: png.width, height: png.height };
}

/** GETs `url` with Node's own HTTP client: { status, body }. */
export async function httpGet(url) {
  const response = await fetch(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
}

/** A google.protobuf.Timestamp as milliseconds since the epoch. */
export function timestampMs(timestamp) {
  return timestamp.seconds * 1000 + Math.floor(timestamp.nanos / 1e6);
}
