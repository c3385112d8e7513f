// Checks that the SDK's own recovery paths work against faults armed through
// the emulator's admin API (`POST /_emulator/faults`): retried part PUTs and
// part announcements, `202` answers to complete, and the fallback from a
// regular to an intelligent-ingestion upload. No connection is cut: a socket
// error while the SDK writes a body is an unhandled stream error that ends
// the Node process (see README.md).

import { downloadBytes } from './checks_files.mjs';
import {
  CheckFailed, MIB, armFault, binaryData, clearFaults, exchangesTo, expectHandle, expectSameBytes, partPuts, upload,
} from './sdkcalls.mjs';

const TWO_PART_SIZE = 7 * MIB + 555; // 6 MiB + 1 MiB with the SDK's default part size
const FALLBACK_SIZE = 9 * MIB + 555; // two 8 MiB parts in fallback mode
const PROGRESS_INTERVAL_MS = 50;

/** Uploads `data` under `name` with `fault` armed, clearing faults afterwards. */
async function uploadWithFault(ctx, fault, name, data, options = {}) {
  const client = ctx.client(ctx.policy(['pick']));
  await armFault(ctx, fault);
  const mark = ctx.journal.mark();
  try {
    const file = await upload(client, { name, file: data }, options);
    expectHandle(file.handle, `upload of ${name}`);
    return { file, mark };
  } finally {
    await clearFaults(ctx);
  }
}

function partOf(exchange) {
  return new URL(exchange.sentTo).searchParams.get('partNumber');
}

async function a_part_put_answering_500_is_retried_and_the_upload_keeps_the_exact_bytes(ctx) {
  const data = binaryData(TWO_PART_SIZE, 'put-500');
  const fault = { route: 'part_put', status: 500, count: 1 };
  const { file, mark } = await uploadWithFault(ctx, fault, 'put-500.bin', data);
  const puts = partPuts(ctx, mark);
  const failed = puts.filter((e) => e.status.startsWith('500'));
  if (failed.length !== 1) {
    throw new CheckFailed(`${failed.length} part PUTs answered 500, want 1: the armed fault did not fire once`);
  }
  const part = partOf(failed[0]);
  const retried = puts.some((e) => e !== failed[0] && partOf(e) === part && e.status.startsWith('200'));
  if (!retried) {
    throw new CheckFailed(`part ${part} was not PUT again after its 500`);
  }
  expectSameBytes(await downloadBytes(ctx, file.handle), data, 'client.download');
  return `part ${part} answered 500, then 200; ${puts.length} PUTs`;
}

async function a_part_announcement_answering_503_is_retried(ctx) {
  const data = binaryData(2 * MIB, 'upload-503');
  const fault = { route: 'multipart_upload', status: 503, count: 1 };
  const { file, mark } = await uploadWithFault(ctx, fault, 'upload-503.bin', data);
  const calls = exchangesTo(ctx, mark, '/multipart/upload', 'POST');
  const statuses = calls.map((e) => e.status.split(' ')[0]);
  if (statuses.join(',') !== '503,200') {
    throw new CheckFailed(`/multipart/upload answered ${statuses.join(', ')}, want 503 then 200`);
  }
  expectSameBytes(await downloadBytes(ctx, file.handle), data, 'client.download');
  return '/multipart/upload answered 503, then 200';
}

async function complete_answering_202_twice_is_repeated_and_on_progress_reaches_100_percent(ctx) {
  const data = binaryData(TWO_PART_SIZE, 'complete-202');
  const progress = [];
  const options = { onProgress: (p) => progress.push({ ...p }), progressInterval: PROGRESS_INTERVAL_MS };
  const fault = { route: 'multipart_complete', accepted: 2 };
  const { file, mark } = await uploadWithFault(ctx, fault, 'complete-202.bin', data, options);
  const statuses = exchangesTo(ctx, mark, '/multipart/complete', 'POST').map((e) => e.status.split(' ')[0]);
  if (statuses.join(',') !== '202,202,200') {
    throw new CheckFailed(`/multipart/complete answered ${statuses.join(', ')}, want 202, 202, 200`);
  }
  expectSameBytes(await downloadBytes(ctx, file.handle), data, 'client.download');
  // The SDK waits 1 s after each 202 with every part sent: progress is sampled there.
  const bytes = progress.map((p) => p.totalBytes);
  if (bytes.some((b, i) => i > 0 && b < bytes[i - 1])) {
    throw new CheckFailed(`onProgress went backwards: ${bytes.join(', ')}`);
  }
  const last = progress[progress.length - 1];
  if (!last || last.totalBytes !== data.length || last.totalPercent !== 100) {
    throw new CheckFailed(`onProgress ended at ${JSON.stringify(last)}, want ${data.length} bytes and 100%`);
  }
  return `complete 202, 202, 200; ${progress.length} progress events up to ${last.totalBytes} bytes`;
}

async function in_fallback_mode_a_failed_part_switches_to_intelligent_ingestion_beside_a_part_sent_whole(ctx) {
  // Fallback mode uses 8 MiB parts: two here, sent at once. The one whose PUT
  // fails is sent again as intelligent-ingestion chunks and committed; the
  // other goes through whole, and complete lists only that one.
  const data = binaryData(FALLBACK_SIZE, 'fallback');
  const fault = { route: 'part_put', status: 500, count: 1 };
  const { file, mark } = await uploadWithFault(ctx, fault, 'fallback.bin', data, { intelligent: 'fallback' });
  const failed = partPuts(ctx, mark).filter((e) => e.status.startsWith('500'));
  if (failed.length !== 1) {
    throw new CheckFailed(`${failed.length} part PUTs answered 500, want 1: the armed fault did not fire once`);
  }
  const commits = exchangesTo(ctx, mark, '/multipart/commit', 'POST').filter((e) => e.status.startsWith('200'));
  const completes = exchangesTo(ctx, mark, '/multipart/complete', 'POST');
  const listed = completes.length ? (completes[completes.length - 1].json.parts || []) : [];
  if (commits.length !== 1 || listed.length !== 1) {
    throw new CheckFailed(`${commits.length} parts committed and ${listed.length} listed at complete, want 1 and 1`);
  }
  expectSameBytes(await downloadBytes(ctx, file.handle), data, 'client.download');
  return `part ${partOf(failed[0])} failed and was committed through intelligent ingestion, part ${listed[0].part_number} went whole`;
}

export const CHECKS = [
  a_part_put_answering_500_is_retried_and_the_upload_keeps_the_exact_bytes,
  a_part_announcement_answering_503_is_retried,
  complete_answering_202_twice_is_repeated_and_on_progress_reaches_100_percent,
  in_fallback_mode_a_failed_part_switches_to_intelligent_ingestion_beside_a_part_sent_whole,
];
