// The filegate client of the Node.js interop check: @grpc/grpc-js with the
// service loaded from proto/ at run time by @grpc/proto-loader, and the
// google.rpc.Status details of its errors decoded with the google-proto-files protos.
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protoFiles from 'google-proto-files';

const CALL_TIMEOUT_MS = 60_000;

const PROTO_ROOT = fileURLToPath(new URL('../../../proto', import.meta.url));
const GZIP = 2;
const KEEPALIVE_OPTIONS = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};

const service = loadService();
const rpcTypes = protoFiles.loadSync(
  [protoFiles.getProtoPath('rpc', 'status.proto'), protoFiles.getProtoPath('rpc', 'error_details.proto')],
  { keepCase: true },
);

function loadService() {
  const definition = protoLoader.loadSync('filegate/v1/filegate.proto', {
    includeDirs: [PROTO_ROOT, path.dirname(protoFiles.getProtoPath())],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).filegate.v1.FileGatewayService;
}

/** A stub on its own channel; `gzip` compresses every request message. */
export function openStub(address, { gzip, keepalive = false }) {
  const options = {
    ...(gzip ? { 'grpc.default_compression_algorithm': GZIP } : {}),
    ...(keepalive ? KEEPALIVE_OPTIONS : {}),
  };
  return new service(address, grpc.credentials.createInsecure(), options);
}

/** The status code's name, e.g. NOT_FOUND. */
export function codeName(code) {
  return Object.keys(grpc.status).find((name) => grpc.status[name] === code) ?? String(code);
}

/** The google.rpc.Status of a failed call, its Any details decoded: { code, message, details }. */
function richStatus(error) {
  const [encoded] = error.metadata?.get('grpc-status-details-bin') ?? [];
  if (!encoded) {
    return null;
  }
  const status = rpcTypes.lookupType('google.rpc.Status').decode(encoded);
  const details = status.details.map((any) => {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    const type = rpcTypes.lookup(typeName);
    return { typeName, message: type ? type.decode(any.value) : null };
  });
  return { code: status.code, message: status.message, details };
}

/** The first detail of that type (e.g. google.rpc.ErrorInfo) in the error's status, or null. */
export function statusDetail(error, typeName) {
  return richStatus(error)?.details.find((detail) => detail.typeName === typeName)?.message ?? null;
}

/** Calls as one owner: every call carries the owner's bearer token and a deadline. */
export class FilegateClient {
  constructor(stub, token) {
    this.stub = stub;
    this.token = token;
  }

  metadata(extra = {}) {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${this.token}`);
    for (const [key, value] of Object.entries(extra)) {
      metadata.set(key, value);
    }
    return metadata;
  }

  options(timeoutMs) {
    return { deadline: new Date(Date.now() + timeoutMs) };
  }

  /** A unary call; `extraMetadata` adds entries beside the token. */
  unary(method, request, { timeoutMs = CALL_TIMEOUT_MS, extraMetadata = {} } = {}) {
    return new Promise((resolve, reject) => {
      this.stub[method](request, this.metadata(extraMetadata), this.options(timeoutMs),
        (error, response) => (error ? reject(error) : resolve(response)));
    });
  }

  /** An Upload call left open: { call, response }, the response a promise of the UploadResponse. */
  openUpload(timeoutMs = CALL_TIMEOUT_MS) {
    let call;
    const response = new Promise((resolve, reject) => {
      call = this.stub.Upload(this.metadata(), this.options(timeoutMs),
        (error, reply) => (error ? reject(error) : resolve(reply)));
    });
    return { call, response };
  }

  /** Sends every message of an Upload stream, ends it, and returns its UploadResponse. */
  async upload(messages, timeoutMs = CALL_TIMEOUT_MS) {
    const { call, response } = this.openUpload(timeoutMs);
    await send(call, messages, response);
    call.end();
    return response;
  }

  /** The messages of a Read call, all of them. */
  async read(request) {
    const messages = [];
    for await (const message of this.stub.Read(request, this.metadata(), this.options(CALL_TIMEOUT_MS))) {
      messages.push(message);
    }
    return messages;
  }

  /** A WatchEvents stream, read as its events arrive. */
  watchEvents(request, timeoutMs = CALL_TIMEOUT_MS) {
    return new EventStream(this.stub.WatchEvents(request, this.metadata(), this.options(timeoutMs)));
  }
}

/** The events of a WatchEvents call, kept from the moment it opens. */
class EventStream {
  constructor(call) {
    this.call = call;
    this.events = [];
    this.failure = null;
    this.waiters = [];
    call.on('data', (event) => this.arrived(event));
    call.on('error', (error) => this.ended(error));
    call.on('end', () => this.ended(new Error('WatchEvents ended')));
  }

  /** The first event that matches, once it came; rejects if the stream ends before. */
  find(predicate) {
    return new Promise((resolve, reject) => {
      const look = () => {
        const event = this.events.find(predicate);
        if (event) {
          resolve(event);
        } else if (this.failure) {
          reject(this.failure);
        }
        return Boolean(event || this.failure);
      };
      if (!look()) {
        this.waiters.push(look);
      }
    });
  }

  /** Hangs up. */
  close() {
    this.call.cancel();
  }

  arrived(event) {
    this.events.push(event);
    this.waiters = this.waiters.filter((look) => !look());
  }

  ended(error) {
    this.failure ??= error;
    this.waiters = this.waiters.filter((look) => !look());
  }
}

/** Writes the messages in order, waiting for the stream to drain, until the call ends. */
async function send(call, messages, response) {
  const ended = response.then(() => 'ended', () => 'ended');
  for (const message of messages) {
    if (!call.write(message) && await Promise.race([once(call, 'drain'), ended]) === 'ended') {
      return;
    }
  }
}
