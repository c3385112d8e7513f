// The Node.js client of the filegate interop matrix: runs the scenario of
// tests/clients/README.md against FILEGATE_ADDR, prints `PASS <check>` or
// `FAIL <check>: <why>` for each check in order, and exits 0 only if all passed.
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import grpc from '@grpc/grpc-js';

import { FilegateClient, codeName, openStub, statusDetail } from './filegate_client.mjs';
import {
  CheckFailed, MIB, chunks, decodedPngSize, expect, gradientPng, httpGet, needs, sha256Hex,
  timestampMs,
} from './support.mjs';

const IDLE_MS = 25_000;
const WATCH_TIMEOUT_MS = 30_000;
const MAX_PAGES = 100;
const HANDLE = /^[A-Za-z0-9]{20}$/;
const { status } = grpc;

/** The runner's variables (see tests/clients/README.md). */
function readEnvironment() {
  const required = ['FILEGATE_ADDR', 'FILEGATE_TOKEN', 'FILEGATE_OWNER', 'FILEGATE_OTHER_TOKEN',
    'FILEGATE_OTHER_OWNER', 'FILEGATE_COMPRESSION'];
  const missing = required.filter((name) => !process.env[name]);
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(', ')}`);
  }
  const compression = process.env.FILEGATE_COMPRESSION;
  if (!['identity', 'gzip'].includes(compression)) {
    throw new Error(`FILEGATE_COMPRESSION is ${compression}, not identity or gzip`);
  }
  return {
    address: process.env.FILEGATE_ADDR,
    token: process.env.FILEGATE_TOKEN,
    owner: process.env.FILEGATE_OWNER,
    otherToken: process.env.FILEGATE_OTHER_TOKEN,
    otherOwner: process.env.FILEGATE_OTHER_OWNER,
    gzip: compression === 'gzip',
    channelChecks: process.env.FILEGATE_CHANNEL_CHECKS === '1',
  };
}

/** The messages of a plain Upload: the spec alone, then the data in 1 MiB messages. */
function uploadMessages(spec, data) {
  return [{ spec }, ...chunks(data).map((piece) => ({ write_offset: piece.offset, data: piece.data }))];
}

/** The messages of an Upload stream that continues `uploadId` with data[from, to). */
function resumeMessages(uploadId, data, from, to) {
  const pieces = chunks(data.subarray(from, to)).map((piece) => ({
    write_offset: from + piece.offset, data: piece.data,
  }));
  return [{ upload_id: uploadId, write_offset: from }, ...pieces];
}

/** Awaits a call that must fail with `code`; returns its error. */
async function expectStatus(call, code, what) {
  try {
    await call;
  } catch (error) {
    if (error.code === undefined) {
      throw error;
    }
    expect(error.code === code,
      `${what}: ${codeName(error.code)} (${error.details}), expected ${codeName(code)}`);
    return error;
  }
  throw new CheckFailed(`${what} succeeded, expected ${codeName(code)}`);
}

/** The document describes exactly `data` under the spec's filename and `owner`. */
function expectDocument(document, filename, data, owner) {
  expect(document, 'no document in the response');
  expect(document.id, 'the document has no id');
  expect(document.filename === filename, `filename ${document.filename}, sent ${filename}`);
  expect(document.size_bytes === data.length, `size ${document.size_bytes}, sent ${data.length}`);
  const sha256 = sha256Hex(data);
  expect(document.sha256 === sha256, `sha256 ${document.sha256}, expected ${sha256}`);
  expect(document.owner === owner, `owner ${document.owner}, expected ${owner}`);
}

function sameBytes(got, expected, what) {
  expect(Buffer.compare(got, expected) === 0,
    `${what}: ${got.length} bytes that differ from the ${expected.length} expected`);
}

/** The checks in order; later ones use what earlier ones stored. */
class Scenario {
  constructor(env) {
    this.env = env;
    this.stub = openStub(env.address, { gzip: env.gzip });
    this.client = new FilegateClient(this.stub, env.token);
    this.other = new FilegateClient(this.stub, env.otherToken);
    this.matrix = null;
    this.matrixUrl = null;
    this.image = null;
    this.resumed = null;
    this.lastEventId = 0;
  }

  checks() {
    const scenario = [
      ['who_am_i', this.whoAmI],
      ['upload', this.upload],
      ['idempotent_retry', this.idempotentRetry],
      ['signed_url', this.signedUrl],
      ['thumbnail', this.thumbnail],
      ['metadata', this.metadata],
      ['paging', this.paging],
      ['other_owner', this.otherOwner],
      ['rich_error', this.richError],
      ['watch_events', this.watchEvents],
      ['resumed_upload', this.resumedUpload],
      ['ranged_read', this.rangedRead],
      ['delete', this.deleteAll],
    ];
    const channel = [
      ['keepalive', this.keepalive],
      ['deadline', this.deadline],
      ['large_metadata', this.largeMetadata],
    ];
    const all = this.env.channelChecks ? [...scenario, ...channel] : scenario;
    return all.map(([name, check]) => [name, check.bind(this)]);
  }

  close() {
    this.stub.close();
  }

  async whoAmI() {
    const mine = await this.client.unary('WhoAmI', {});
    expect(mine.owner === this.env.owner, `WhoAmI names ${mine.owner}, expected ${this.env.owner}`);
    const theirs = await this.other.unary('WhoAmI', {});
    expect(theirs.owner === this.env.otherOwner,
      `WhoAmI of the other token names ${theirs.owner}, expected ${this.env.otherOwner}`);
  }

  async upload() {
    const data = randomBytes(5 * MIB + 12345);
    const spec = {
      filename: 'matrix.bin', size_bytes: data.length, sha256: sha256Hex(data), request_id: randomUUID(),
    };
    const { document } = await this.client.upload(uploadMessages(spec, data));
    expectDocument(document, spec.filename, data, this.env.owner);
    expect(HANDLE.test(document.handle), `handle ${document.handle} is not 20 letters and digits`);
    this.matrix = { data, spec, document };
  }

  async idempotentRetry() {
    const { data, spec, document } = needs(this.matrix, 'matrix.bin');
    const retried = await this.client.upload(uploadMessages(spec, data));
    expect(retried.document?.id === document.id,
      `the retry stored ${retried.document?.id}, the first upload ${document.id}`);
    const ids = await this.listIds(100);
    expect(ids.length === 1 && ids[0] === document.id, `ListDocuments holds ${ids.join(', ')}`);
  }

  async signedUrl() {
    const { data, document } = needs(this.matrix, 'matrix.bin');
    const reply = await this.client.unary('SignedUrl', { document_id: document.id });
    expect(reply.expire_time && timestampMs(reply.expire_time) > Date.now(),
      `expire_time ${JSON.stringify(reply.expire_time)} is not in the future`);
    const { status: code, body } = await httpGet(reply.url);
    expect(code === 200, `GET of the signed URL answered ${code}`);
    sameBytes(body, data, 'the signed URL served');
    this.matrixUrl = reply.url;
  }

  async thumbnail() {
    const data = gradientPng(64, 48);
    const spec = { filename: 'image.png', size_bytes: data.length };
    const { document } = await this.client.upload([{ spec, data }]);
    expectDocument(document, spec.filename, data, this.env.owner);
    this.image = { data, document };
    const reply = await this.client.unary('Thumbnail', {
      document_id: document.id, width: 32, height: 24, fit: 'FIT_CROP',
    });
    const { status: code, body } = await httpGet(reply.url);
    expect(code === 200, `GET of the thumbnail URL answered ${code}`);
    const { width, height } = decodedPngSize(body);
    expect(width === 32 && height === 24, `the thumbnail is ${width}x${height}, asked 32x24`);
  }

  async metadata() {
    const { data, document } = needs(this.matrix, 'matrix.bin');
    const image = needs(this.image, 'image.png').document;
    const file = await this.client.unary('Metadata', {
      document_id: document.id,
      fields: ['METADATA_FIELD_SIZE', 'METADATA_FIELD_MIMETYPE', 'METADATA_FIELD_FILENAME',
        'METADATA_FIELD_SHA256'],
    });
    const expected = {
      size_bytes: data.length, mimetype: 'application/octet-stream', filename: 'matrix.bin',
      sha256: sha256Hex(data),
    };
    for (const [field, value] of Object.entries(expected)) {
      expect(file[field] === value, `matrix.bin ${field} is ${file[field]}, expected ${value}`);
    }
    const size = await this.client.unary('Metadata', {
      document_id: image.id, fields: ['METADATA_FIELD_WIDTH', 'METADATA_FIELD_HEIGHT'],
    });
    expect(size.width === 64 && size.height === 48,
      `image.png is ${size.width}x${size.height}, expected 64x48`);
  }

  /** The ids of every document of the owner, `pageSize` at a time. */
  async listIds(pageSize) {
    const ids = [];
    let pageToken = '';
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const reply = await this.client.unary('ListDocuments', { page_size: pageSize, page_token: pageToken });
      expect(reply.documents.length <= pageSize,
        `a page of ${reply.documents.length} documents, asked ${pageSize}`);
      ids.push(...reply.documents.map((document) => document.id));
      pageToken = reply.next_page_token;
      if (!pageToken) {
        return ids;
      }
    }
    throw new CheckFailed(`ListDocuments still had pages after ${MAX_PAGES}`);
  }

  async paging() {
    const matrix = needs(this.matrix, 'matrix.bin').document;
    const image = needs(this.image, 'image.png').document;
    const paged = await this.listIds(1);
    const whole = await this.listIds(100);
    expect(JSON.stringify(paged) === JSON.stringify(whole),
      `pages of 1 give ${paged.join(', ')}, one page gives ${whole.join(', ')}`);
    expect(JSON.stringify(whole) === JSON.stringify([image.id, matrix.id]),
      `listed ${whole.join(', ')}, expected image.png ${image.id} then matrix.bin ${matrix.id}`);
  }

  async otherOwner() {
    const { document } = needs(this.matrix, 'matrix.bin');
    const request = { document_id: document.id };
    const wrong = [];
    for (const method of ['GetDocument', 'SignedUrl', 'Delete']) {
      try {
        const error = await expectStatus(this.other.unary(method, request),
          status.PERMISSION_DENIED, `${method} with the other token`);
        const info = statusDetail(error, 'google.rpc.ErrorInfo');
        expect(info?.reason === 'NOT_DOCUMENT_OWNER',
          `${method} with the other token: ErrorInfo reason ${info?.reason}`);
      } catch (error) {
        wrong.push(describe(error));
      }
    }
    const mine = await this.client.unary('GetDocument', request);
    expect(mine.document?.id === document.id, 'the owner no longer finds matrix.bin');
    expect(wrong.length === 0, wrong.join('; '));
  }

  async richError() {
    const image = needs(this.image, 'image.png').document;
    const error = await expectStatus(
      this.client.unary('Thumbnail', { document_id: image.id, width: 0, height: 24, fit: 'FIT_CROP' }),
      status.INVALID_ARGUMENT, 'Thumbnail of width 0');
    const info = statusDetail(error, 'google.rpc.ErrorInfo');
    expect(info, 'no google.rpc.ErrorInfo in grpc-status-details-bin');
    expect(info.domain === 'filegate' && info.reason === 'INVALID_ARGUMENT',
      `ErrorInfo domain ${info.domain}, reason ${info.reason}`);
    const badRequest = statusDetail(error, 'google.rpc.BadRequest');
    expect(badRequest, 'no google.rpc.BadRequest in grpc-status-details-bin');
    const fields = badRequest.field_violations.map((violation) => violation.field);
    expect(fields.includes('width'), `BadRequest names ${fields.join(', ')}, not width`);
  }

  async watchEvents() {
    const handles = [needs(this.matrix, 'matrix.bin'), needs(this.image, 'image.png')]
      .map(({ document }) => document.handle);
    const stream = this.client.watchEvents({ after_event_id: 0 }, WATCH_TIMEOUT_MS);
    let uploads;
    try {
      uploads = await Promise.all(handles.map((handle) => stream.find(isUploadOf(handle))));
    } finally {
      stream.close();
    }
    const [first, second] = uploads.sort((a, b) => a.id - b.id);
    const resumed = this.client.watchEvents({ after_event_id: first.id });
    try {
      const next = await resumed.find(() => true);
      expect(next.id === second.id,
        `after event ${first.id} came event ${next.id} (${next.action}), expected ${second.id}`);
    } finally {
      resumed.close();
    }
    this.lastEventId = second.id;
  }

  async resumedUpload() {
    const data = randomBytes(8 * MIB + 1000);
    const spec = { filename: 'resumed.bin', size_bytes: data.length, sha256: sha256Hex(data) };
    const started = await this.client.unary('StartUpload', { spec });
    expect(started.upload_id, 'StartUpload answered no upload_id');
    expect(started.part_size_bytes === 8 * MIB, `part_size_bytes ${started.part_size_bytes}`);
    const part = started.part_size_bytes;
    const uploadId = { upload_id: started.upload_id };
    const stream = (from, to) => this.client.upload(resumeMessages(started.upload_id, data, from, to));

    const partial = await stream(0, part + 500);
    expect(!partial.document, 'a document before the whole file was sent');
    expect(partial.persisted_bytes === part, `the first stream persisted ${partial.persisted_bytes}`);
    const query = await this.client.unary('QueryUpload', uploadId);
    expect(query.persisted_bytes === part, `QueryUpload persisted_bytes ${query.persisted_bytes}`);

    const refused = await expectStatus(stream(0, data.length), status.OUT_OF_RANGE,
      'a stream resuming at offset 0');
    const info = statusDetail(refused, 'google.rpc.ErrorInfo');
    expect(info?.reason === 'OFFSET_NOT_PERSISTED', `ErrorInfo reason ${info?.reason}`);
    expect(info.metadata.persisted_bytes === String(part),
      `ErrorInfo persisted_bytes ${info.metadata.persisted_bytes}`);

    const finished = await stream(query.persisted_bytes, data.length);
    expectDocument(finished.document, spec.filename, data, this.env.owner);
    this.resumed = finished.document;
    const done = await this.client.unary('QueryUpload', uploadId);
    expect(done.document?.id === finished.document.id,
      `QueryUpload names ${done.document?.id}, expected ${finished.document.id}`);
    await expectStatus(this.other.unary('QueryUpload', uploadId), status.NOT_FOUND,
      'QueryUpload with the other token');
  }

  async rangedRead() {
    const { data, document } = needs(this.matrix, 'matrix.bin');
    const whole = await this.client.read({ document_id: document.id, read_offset: 0, read_limit: 0 });
    expect(whole.length > 1, `the whole file came in ${whole.length} message(s)`);
    const largest = Math.max(...whole.map((message) => message.data.length));
    expect(largest <= 2 * MIB, `a message of ${largest} bytes`);
    sameBytes(Buffer.concat(whole.map((message) => message.data)), data, 'Read of the whole file');

    const start = MIB + 3;
    const ranged = await this.client.read({ document_id: document.id, read_offset: start, read_limit: 1000 });
    sameBytes(Buffer.concat(ranged.map((message) => message.data)), data.subarray(start, start + 1000),
      'Read at 1 MiB + 3, limit 1000');
    const range = ranged[0]?.content_range;
    const expected = { start, end: start + 1000, complete_length: data.length };
    expect(JSON.stringify(range) === JSON.stringify(expected),
      `content_range ${JSON.stringify(range)}, expected ${JSON.stringify(expected)}`);

    const tail = await this.client.read({ document_id: document.id, read_offset: -4321 });
    sameBytes(Buffer.concat(tail.map((message) => message.data)), data.subarray(data.length - 4321),
      'Read at -4321');
  }

  async deleteAll() {
    const matrix = needs(this.matrix, 'matrix.bin').document;
    const image = needs(this.image, 'image.png').document;
    const url = needs(this.matrixUrl, 'the signed URL of matrix.bin');
    for (const document of [matrix, image, this.resumed].filter(Boolean)) {
      await this.client.unary('Delete', { document_id: document.id });
    }
    const left = await this.listIds(100);
    expect(left.length === 0, `ListDocuments still holds ${left.join(', ')}`);
    await expectStatus(this.client.unary('GetDocument', { document_id: matrix.id }), status.NOT_FOUND,
      'GetDocument of the deleted matrix.bin');
    const { status: code } = await httpGet(url);
    expect(code === 404, `the signed URL of the deleted file answered ${code}`);
  }

  async keepalive() {
    const stub = openStub(this.env.address, { gzip: this.env.gzip, keepalive: true });
    const client = new FilegateClient(stub, this.env.token);
    const stream = client.watchEvents({ after_event_id: this.lastEventId });
    try {
      await sleep(IDLE_MS);
      const data = Buffer.from(`keepalive ${randomUUID()}\n`);
      const { document } = await client.upload([{ spec: { filename: 'keepalive.txt' }, data }]);
      try {
        await stream.find(isUploadOf(document.handle));
      } finally {
        await client.unary('Delete', { document_id: document.id });
      }
    } finally {
      stream.close();
      stub.close();
    }
  }

  async deadline() {
    const data = randomBytes(4 * MIB);
    const spec = { filename: 'deadline.bin', size_bytes: data.length, request_id: randomUUID() };
    const [head, firstMiB] = uploadMessages(spec, data);
    const { call, response } = this.client.openUpload(2_000);
    call.write(head);
    call.write(firstMiB);
    await expectStatus(response, status.DEADLINE_EXCEEDED, 'an Upload that stops sending');
    const left = await this.listIds(100);
    expect(left.length === 0, `ListDocuments holds ${left.join(', ')} after the expired upload`);
    const { document } = await this.client.upload(uploadMessages(spec, data));
    try {
      expectDocument(document, spec.filename, data, this.env.owner);
    } finally {
      await this.client.unary('Delete', { document_id: document.id });
    }
  }

  async largeMetadata() {
    const padding = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(158).slice(0, 8192);
    const reply = await this.client.unary('WhoAmI', {}, { extraMetadata: { 'x-filegate-padding': padding } });
    expect(reply.owner === this.env.owner, `WhoAmI names ${reply.owner}, expected ${this.env.owner}`);
  }
}

function isUploadOf(handle) {
  return (event) => event.action === 'fp.upload' && event.handle === handle;
}

/** The reason a check failed, on one line. */
function describe(error) {
  if (error instanceof CheckFailed) {
    return error.message;
  }
  if (error.code !== undefined && error.details !== undefined) {
    return `${codeName(error.code)}: ${error.details}`;
  }
  console.error(error);
  return String(error).replace(/\s+/g, ' ');
}

async function runCheck(name, check) {
  try {
    await check();
  } catch (error) {
    console.log(`FAIL ${name}: ${describe(error)}`);
    return false;
  }
  console.log(`PASS ${name}`);
  return true;
}

async function main() {
  let env;
  try {
    env = readEnvironment();
  } catch (error) {
    console.error(`scenario.mjs: ${error.message}`);
    return 2;
  }
  const scenario = new Scenario(env);
  let failed = 0;
  for (const [name, check] of scenario.checks()) {
    if (!await runCheck(name, check)) {
      failed += 1;
    }
  }
  scenario.close();
  return failed === 0 ? 0 : 1;
}

process.exit(await main());
