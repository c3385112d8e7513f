// A tiny HTTP server on 127.0.0.1:0 that collects webhook deliveries.

import http from 'node:http';

const MAX_BODY_BYTES = 1024 * 1024;

export class WebhookReceiver {
  constructor() {
    this.seen = [];
    this.waiters = new Set();
    this.server = http.createServer((req, res) => {
      const chunks = [];
      let size = 0;
      req.on('data', (chunk) => {
        size += chunk.length;
        if (size <= MAX_BODY_BYTES) {
          chunks.push(chunk);
        }
      });
      req.on('end', () => {
        if (size > MAX_BODY_BYTES) {
          res.writeHead(413).end();
          return;
        }
        const delivery = { path: req.url, headers: req.headers, body: Buffer.concat(chunks) };
        this.seen.push(delivery);
        for (const wake of this.waiters) {
          wake();
        }
        res.writeHead(200, { 'content-length': '0' }).end();
      });
    });
  }

  async listen() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    const { address, port } = this.server.address();
    this.url = `http://${address}:${port}/hook`;
    return this.url;
  }

  /** The first delivery (already seen or arriving within timeoutMs) that `matches`, or null. */
  async waitFor(matches, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.seen.find(matches);
      if (found) {
        return found;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        return null;
      }
      let wake;
      let timer;
      await new Promise((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, remaining);
        this.waiters.add(wake);
      });
      clearTimeout(timer);
      this.waiters.delete(wake);
    }
  }

  close() {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(resolve));
  }
}
