// filestack-js 4.3.8 as referee of `filegate emulator`.
//
// Starts the emulator binary on 127.0.0.1:0 with a temporary data dir, routes
// the official SDK to it, runs every check, prints one PASS/FAIL line per
// check and a closing `N passed, M failed` line, and exits non-zero on any
// failure.
//
//     node tests/sdk-js/referee.mjs --filegate target/debug/filegate

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import filestack from 'filestack-js';

import * as checksFaults from './checks_faults.mjs';
import * as checksFiles from './checks_files.mjs';
import * as checksRefusals from './checks_refusals.mjs';
import {
  Emulator, EmulatorError, Journal, Router, describeExchange, journalSdkRequests, routeNodeRequests,
} from './harness.mjs';
import { CheckFailed, Context } from './sdkcalls.mjs';
import { WebhookReceiver } from './webhooks.mjs';

const API_KEY = 'RefereeJsApiKey00000000';
const APP_SECRET = 'referee-js-app-secret';
const WEBHOOK_SECRET = 'referee-js-webhook-secret';
const START_TIMEOUT_MS = 30000;
const CHECK_TIMEOUT_MS = 180000;
const EXCHANGES_SHOWN = 4;

class Tally {
  constructor() {
    this.passed = 0;
    this.failed = 0;
  }

  ok(name, detail) {
    this.passed += 1;
    console.log(`PASS ${name}${detail ? ` (${detail})` : ''}`);
  }

  fail(name, reason, exchanges = []) {
    this.failed += 1;
    console.log(`FAIL ${name}: ${reason}`);
    if (exchanges.length) {
      console.log('  last requests the SDK sent, and the answers:');
      for (const exchange of exchanges) {
        console.log(describeExchange(exchange));
      }
    }
  }

  close() {
    console.log(`${this.passed} passed, ${this.failed} failed`);
    return this.failed === 0 ? 0 : 1;
  }
}

function sentence(check) {
  return check.name.replace(/_/g, ' ');
}

function reason(err) {
  if (err instanceof CheckFailed) {
    return err.message;
  }
  const where = (err && err.stack ? err.stack.split('\n').find((l) => l.includes('/tests/sdk-js/')) : '') || '';
  const at = where.trim().replace(/^at /, '').replace(/.*\/tests\/sdk-js\//, '').replace(/\)$/, '');
  const text = String(err && err.message).replace(/\s+/g, ' ').slice(0, 300);
  return `${err && err.constructor ? err.constructor.name : 'Error'}${at ? ` at ${at}` : ''}: ${text}`;
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`no outcome within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// What an uncaught error (one the SDK's own code leaves unhandled, which
// would end the process) is reported against.
const live = { tally: null, check: null, journal: null, mark: 0, emulator: null, workdir: null };

function onUncaught(err) {
  const { tally, check, journal, mark, emulator, workdir } = live;
  const name = check ? sentence(check) : 'the referee runs every check';
  const exchanges = journal ? journal.since(mark).slice(-EXCHANGES_SHOWN) : [];
  tally.fail(name, `uncaught in the Node process, which cannot go on: ${reason(err)}`, exchanges);
  if (emulator) {
    emulator.proc.kill('SIGTERM');
    console.log(`emulator log (stderr tail):\n${emulator.stderrTail()}`);
  }
  try {
    fs.rmSync(workdir, { recursive: true, force: true });
  } catch {
    // the emulator may still be writing there as it stops
  }
  process.exit(tally.close());
}

async function runChecks(ctx, tally) {
  const checks = [...checksFiles.CHECKS, ...checksRefusals.CHECKS, ...checksFaults.CHECKS];
  for (const check of checks) {
    const mark = ctx.journal.mark();
    Object.assign(live, { check, journal: ctx.journal, mark });
    try {
      const detail = await withTimeout(check(ctx), CHECK_TIMEOUT_MS);
      tally.ok(sentence(check), detail);
    } catch (err) {
      tally.fail(sentence(check), reason(err), ctx.journal.since(mark).slice(-EXCHANGES_SHOWN));
    }
  }
}

/** The routing must refuse, not send, a request to a host that is not Filestack's. */
async function refusesOtherHosts(tally) {
  const name = 'the SDK cannot reach a host outside Filestack and the emulator';
  try {
    await filestack.FsRequest.get('https://example.com/elsewhere');
    tally.fail(name, 'a request to example.com was answered');
  } catch (err) {
    if (String(err && err.message).startsWith('refusing to leave the emulator')) {
      tally.ok(name, 'example.com refused');
    } else {
      tally.fail(name, `failed otherwise: ${reason(err)}`);
    }
  }
}

async function referee(binary, workdir, tally) {
  const receiver = new WebhookReceiver();
  await receiver.listen();
  const dataDir = path.join(workdir, 'emulator-data');
  fs.mkdirSync(dataDir);
  const emulator = new Emulator(binary, {
    dataDir,
    stderrPath: path.join(workdir, 'emulator.stderr'),
    apiKey: API_KEY,
    appSecret: APP_SECRET,
    webhook: { url: receiver.url, secret: WEBHOOK_SECRET },
  });
  live.emulator = emulator;
  try {
    const address = await emulator.waitForAddress(START_TIMEOUT_MS);
    tally.ok('the emulator starts and prints its address', address);
    const journal = new Journal();
    const router = new Router(address);
    routeNodeRequests(router);
    journalSdkRequests(filestack.FsRequest, router, journal);
    await refusesOtherHosts(tally);
    const ctx = new Context({
      address, apiKey: API_KEY, appSecret: APP_SECRET, webhookSecret: WEBHOOK_SECRET, receiver, journal,
    });
    await runChecks(ctx, tally);
  } catch (err) {
    if (!(err instanceof EmulatorError)) {
      throw err;
    }
    tally.fail('the emulator starts and prints its address', err.message);
  } finally {
    live.check = null;
    try {
      tally.ok('the emulator stops on SIGTERM', await emulator.stop());
    } catch (err) {
      tally.fail('the emulator stops on SIGTERM', err.message);
    }
    await receiver.close();
    if (tally.failed) {
      console.log(`emulator log (stderr tail):\n${emulator.stderrTail()}`);
    }
  }
}

async function main() {
  const { values } = parseArgs({ options: { filegate: { type: 'string', default: 'target/debug/filegate' } } });
  const binary = path.resolve(values.filegate);
  if (!fs.existsSync(binary) || !fs.statSync(binary).isFile()) {
    console.error(`no filegate binary at ${binary}: build it with \`cargo build\``);
    return 2;
  }
  const tally = new Tally();
  live.tally = tally;
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'filegate-referee-js-'));
  live.workdir = workdir;
  try {
    await referee(binary, workdir, tally);
  } finally {
    fs.rmSync(workdir, { recursive: true, force: true });
  }
  return tally.close();
}

// Exit explicitly: the SDK may leave timers (progress intervals, retries) behind.
main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
