// Runs the filegate emulator as a subprocess and points filestack-js at it.
//
// filestack-js sends every request through one `FsRequest` singleton whose
// Node adapter calls `require('https').request` (or `http`) with the host
// taken from hard-coded `https://` Filestack URLs, from the `location_url`
// the emulator returns (`127.0.0.1:PORT`, made `https://127.0.0.1:PORT`) and
// from the part `PUT` URL (`http://127.0.0.1:PORT/s3/...`). Nothing is
// patched on disk: `request` on Node's `https` and `http` modules is swapped
// at runtime for one that sends Filestack and emulator hosts to the
// emulator's plain-HTTP address and refuses every other host, and the
// singleton's adapter is wrapped so every exchange is journaled.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import readline from 'node:readline';

const LISTENING_LINE = /^filegate emulator listening on (http:\/\/127\.0\.0\.1:(\d+))$/;
const FILESTACK_DOMAINS = ['filestackapi.com', 'filestackcontent.com'];
const EXCERPT_CHARS = 600;
const ROUTINE_HEADERS = new Set([
  'user-agent', 'accept', 'accept-encoding', 'connection', 'content-length', 'content-type',
  'filestack-source', 'filestack-trace-id', 'filestack-trace-span',
]);

export class EmulatorError extends Error {}

/** One `filegate emulator` subprocess listening on a port it chose itself. */
export class Emulator {
  constructor(binary, { dataDir, stderrPath, apiKey, appSecret, webhook }) {
    const args = [
      'emulator',
      '--listen', '127.0.0.1:0',
      '--data-dir', dataDir,
      '--api-key', apiKey,
      '--app-secret', appSecret,
    ];
    if (webhook) {
      args.push('--webhook-url', webhook.url, '--webhook-secret', webhook.secret);
    }
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/^(FILESTACK_|FILEGATE_)/.test(k)),
    );
    this.stderrPath = stderrPath;
    const stderr = fs.openSync(stderrPath, 'w');
    this.proc = spawn(binary, args, { stdio: ['ignore', 'pipe', stderr], env });
    fs.closeSync(stderr);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => resolve({ code, signal }));
    });
    this.spawnError = new Promise((resolve) => this.proc.once('error', resolve));
    this.lines = readline.createInterface({ input: this.proc.stdout });
    this.address = null;
  }

  /** Reads the first stdout line and returns the `http://127.0.0.1:PORT` it names. */
  async waitForAddress(timeoutMs) {
    let timer;
    const first = new Promise((resolve) => this.lines.once('line', resolve));
    const closed = new Promise((resolve) => this.lines.once('close', () => resolve(null)));
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs); });
    const failed = this.spawnError.then((err) => ({ err }));
    const line = await Promise.race([first, closed, timeout, failed]);
    clearTimeout(timer);
    if (line && line.err) {
      throw new EmulatorError(`cannot run the emulator: ${line.err.message}`);
    }
    if (line === undefined) {
      throw new EmulatorError(`no address line on stdout within ${timeoutMs / 1000} s`);
    }
    if (line === null) {
      const { code, signal } = await this.exited;
      throw new EmulatorError(`emulator exited (${signal || `status ${code}`}) before printing its address`);
    }
    const match = LISTENING_LINE.exec(line);
    if (!match) {
      throw new EmulatorError(`unexpected first stdout line: ${JSON.stringify(line)}`);
    }
    this.address = match[1];
    this.lines.on('line', () => {}); // keep draining stdout
    return this.address;
  }

  /** Sends SIGTERM and waits; throws if it had died before, or ignores SIGTERM. */
  async stop(timeoutMs = 10000) {
    const early = this.proc.exitCode !== null || this.proc.signalCode !== null;
    if (!early) {
      this.proc.kill('SIGTERM');
    }
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); });
    const outcome = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (outcome === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
      throw new EmulatorError(`emulator ignored SIGTERM for ${timeoutMs / 1000} s and was killed`);
    }
    const how = outcome.signal || `status ${outcome.code}`;
    if (early) {
      throw new EmulatorError(`emulator had already exited (${how}) before SIGTERM`);
    }
    if (outcome.code !== 0 && outcome.signal !== 'SIGTERM') {
      throw new EmulatorError(`emulator exited (${how}) on SIGTERM`);
    }
    return how;
  }

  /** The last lines the emulator wrote to stderr (its log). */
  stderrTail(lines = 20) {
    try {
      return fs.readFileSync(this.stderrPath, 'utf8').split('\n').filter(Boolean).slice(-lines).join('\n');
    } catch (err) {
      return `(cannot read ${this.stderrPath}: ${err.message})`;
    }
  }
}

/** Append-only record of every exchange the SDK made. */
export class Journal {
  constructor() {
    this.entries = [];
  }

  record(exchange) {
    this.entries.push(exchange);
  }

  /** A position; `since(mark)` returns what was recorded after it. */
  mark() {
    return this.entries.length;
  }

  since(mark) {
    return this.entries.slice(mark);
  }
}

export function describeExchange(e) {
  return [
    `    ${e.method} ${e.sdkUrl}`,
    `      (sent to ${e.sentTo})`,
    `      headers: ${e.headers}`,
    `      request body: ${e.body}`,
    `      -> ${e.status}: ${e.answer}`,
  ].join('\n');
}

function notableHeaders(headers) {
  const shown = Object.entries(headers || {}).filter(([k]) => !ROUTINE_HEADERS.has(k.toLowerCase()));
  return shown.map(([k, v]) => `${k}: ${v}`).join(', ') || '(only routine ones)';
}

function excerpt(data, contentType) {
  if (data === undefined || data === null) {
    return '(none)';
  }
  if (Buffer.isBuffer(data) || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    return `(${data.byteLength} bytes of ${contentType || 'unknown type'})`;
  }
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  return text.length <= EXCERPT_CHARS ? text : `${text.slice(0, EXCERPT_CHARS)}...`;
}

function withParams(url, params) {
  if (!params) {
    return url;
  }
  const query = Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return query ? `${url}${url.includes('?') ? '&' : '?'}${query}` : url;
}

/** Where requests for Filestack hosts and the emulator's own address go. */
export class Router {
  constructor(address) {
    const target = new URL(address);
    this.netloc = target.host;
    this.hostname = target.hostname;
    this.port = Number(target.port);
  }

  /** True for a Filestack host or the emulator's `host:port`. */
  ours(hostname, port) {
    const host = (hostname || '').toLowerCase();
    if (FILESTACK_DOMAINS.some((d) => host === d || host.endsWith(`.${d}`))) {
      return true;
    }
    return `${host}:${port}` === this.netloc;
  }

  /** The URL a request for `url` really goes to; throws for any other host. */
  route(url) {
    const parsed = new URL(url.includes('://') ? url : `https://${url}`);
    const port = parsed.port || (parsed.protocol === 'https:' ? '443' : '80');
    if (!this.ours(parsed.hostname, port)) {
      throw new Error(`refusing to leave the emulator: ${url}`);
    }
    return `http://${this.netloc}${parsed.pathname}${parsed.search}`;
  }

  /** Node `request` options rewritten to the emulator (see `routeNodeRequests`). */
  options(options) {
    // filestack-js passes `host` as `hostname[:port]` (url.parse's `host`).
    const raw = options.hostname || options.host || 'localhost';
    const [hostname, hostPort] = raw.startsWith('[') ? [raw, undefined] : raw.split(':');
    const port = String(options.port || hostPort || (options.protocol === 'https:' ? 443 : 80));
    if (!this.ours(hostname, port)) {
      throw new Error(`refusing to leave the emulator: ${options.protocol || ''}//${raw}${options.path || ''}`);
    }
    const routed = { ...options, protocol: 'http:', host: this.hostname, port: this.port, agent: false };
    delete routed.hostname;
    return routed;
  }
}

/**
 * Sends every request made through Node's `http`/`https` modules to the
 * emulator (Filestack and emulator hosts) or refuses it (any other host).
 */
export function routeNodeRequests(router) {
  const plainRequest = http.request.bind(http);
  const routed = (...args) => {
    let [options, rest] = [args[0], args.slice(1)];
    if (typeof options === 'string' || options instanceof URL) {
      const url = new URL(options);
      const extra = rest.length && typeof rest[0] === 'object' ? rest.shift() : {};
      options = { ...extra, protocol: url.protocol, host: url.host, path: `${url.pathname}${url.search}` };
    }
    return plainRequest(router.options(options), ...rest);
  };
  https.request = routed;
  http.request = routed;
}

/** Wraps the SDK's request adapter so every exchange lands in `journal`. */
export function journalSdkRequests(FsRequest, router, journal) {
  const dispatcher = FsRequest.getInstance().dispatcher;
  const adapter = dispatcher.adapter;
  const send = adapter.request.bind(adapter);
  adapter.request = async (config) => {
    const sdkUrl = withParams(config.url, config.params);
    let sentTo;
    try {
      sentTo = router.route(sdkUrl);
    } catch (err) {
      sentTo = `nowhere: ${err.message}`;
    }
    const entry = {
      method: (config.method || 'GET').toUpperCase(),
      sdkUrl,
      sentTo,
      headers: notableHeaders(config.headers),
      body: excerpt(config.data, 'request data'),
      // JSON bodies as sent (part bytes are not kept).
      json: config.data && !Buffer.isBuffer(config.data) && typeof config.data === 'object' ? config.data : null,
      status: 'no answer',
      answer: '',
      response: null,
    };
    journal.record(entry);
    try {
      const response = await send(config);
      entry.status = `${response.status} ${response.statusText || ''}`.trim();
      entry.answer = excerpt(response.data, response.headers && response.headers['content-type']);
      entry.response = response;
      return response;
    } catch (err) {
      const response = err && err.response;
      if (response) {
        entry.status = `${response.status} ${response.statusText || ''}`.trim();
        entry.answer = excerpt(response.data, response.headers && response.headers['content-type']);
        entry.response = response;
      } else {
        entry.answer = String(err && err.message);
      }
      throw err;
    }
  };
}
