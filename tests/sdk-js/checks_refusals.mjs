// Checks that the emulator refuses what Filestack refuses (each refusal with
// a positive control that succeeds), and that its webhooks verify with the
// SDK's own validateWebhookSignature.

import filestack from 'filestack-js';

import { downloadBytes, sdkSecurity } from './checks_files.mjs';
import { CheckFailed, binaryData, expectHttpError, fetchBytes, hmacHex, upload } from './sdkcalls.mjs';

const { validateWebhookSignature } = filestack;

const REFUSED = 403;
const WEBHOOK_WAIT_MS = 15000;

/**
 * `action` must be refused with 403, while `control`, the same request with a
 * valid policy, goes through: otherwise the refusal proves nothing.
 */
async function refused(action, control) {
  try {
    await control();
  } catch (err) {
    throw new CheckFailed(`the same request with a valid policy failed too: ${err.message}`);
  }
  return `HTTP ${await expectHttpError(action, REFUSED)}`;
}

function smallUpload(ctx, security, storeOptions = {}) {
  return () => upload(ctx.client(security), { name: 'refusal.bin', file: binaryData(512, 'refusal') }, {}, storeOptions);
}

async function an_upload_signed_with_another_secret_is_refused(ctx) {
  const good = ctx.policy(['pick']);
  const forged = { policy: good.policy, signature: hmacHex(`${ctx.appSecret}-but-wrong`, good.policy) };
  return refused(smallUpload(ctx, forged), smallUpload(ctx, good));
}

async function an_upload_with_a_policy_without_pick_is_refused(ctx) {
  const withoutPick = ctx.policy(['read', 'stat', 'write', 'convert', 'remove']);
  return refused(smallUpload(ctx, withoutPick), smallUpload(ctx, ctx.policy(['pick'])));
}

async function an_upload_to_a_path_the_policy_does_not_allow_is_refused(ctx) {
  const security = ctx.policy(['pick'], { path: 'referee-js/alice/.*' });
  return refused(
    smallUpload(ctx, security, { path: 'referee-js/bob/x.bin' }),
    smallUpload(ctx, security, { path: 'referee-js/alice/x.bin' }),
  );
}

async function a_download_with_an_expired_policy_is_refused(ctx) {
  const { handle } = ctx.link('small');
  const expired = ctx.policy(['read'], { handle, expiresInS: -60 });
  return refused(() => downloadBytes(ctx, handle, expired), () => downloadBytes(ctx, handle));
}

async function metadata_with_a_policy_without_stat_is_refused(ctx) {
  const { handle } = ctx.link('small');
  const metadata = (calls) => () => ctx.client().metadata(handle, { size: true }, ctx.policy(calls, { handle }));
  return refused(metadata(['read']), metadata(['stat']));
}

async function a_transformation_with_a_read_only_policy_is_refused(ctx) {
  const { handle } = ctx.link('png');
  const fetchWith = (calls) => () => {
    const client = ctx.client(ctx.policy(calls, { handle }));
    return fetchBytes(client.transform(handle, { resize: { width: 100, height: 100, fit: 'crop' } }));
  };
  return refused(fetchWith(['read']), fetchWith(['read', 'convert']));
}

async function remove_with_a_policy_pinned_to_another_handle_is_refused_and_keeps_the_file(ctx) {
  const other = ctx.link('small').handle;
  const data = binaryData(700, 'kept');
  const file = await upload(ctx.client(ctx.policy(['pick'])), { name: 'kept.bin', file: data });
  const client = ctx.client();
  const status = await expectHttpError(
    () => client.remove(file.handle, ctx.policy(['remove'], { handle: other })),
    REFUSED,
  );
  const still = await downloadBytes(ctx, file.handle);
  if (!still.equals(data)) {
    throw new CheckFailed('the file changed after a refused remove');
  }
  await client.remove(file.handle, ctx.policy(['remove'], { handle: file.handle }));
  return `HTTP ${status}, file kept; the right handle then removes it`;
}

async function a_policy_from_get_security_with_another_secret_is_refused(ctx) {
  const { handle } = ctx.link('small');
  const calls = ['read', 'stat'];
  const metadata = (security) => () => ctx.client(security).metadata(handle, { size: true });
  return refused(
    metadata(sdkSecurity(calls, `${ctx.appSecret}-but-wrong`)),
    metadata(sdkSecurity(calls, ctx.appSecret)),
  );
}

function uploadEventFor(handle) {
  return (delivery) => {
    let event;
    try {
      event = JSON.parse(delivery.body.toString('utf8'));
    } catch {
      return false;
    }
    const url = event && event.text && typeof event.text.url === 'string' ? event.text.url : '';
    return event.action === 'fp.upload' && url.endsWith(`/${handle}`);
  };
}

async function an_fp_upload_webhook_arrives_and_validate_webhook_signature_accepts_it(ctx) {
  const { handle } = ctx.link('big');
  const delivery = await ctx.receiver.waitFor(uploadEventFor(handle), WEBHOOK_WAIT_MS);
  if (!delivery) {
    const seen = ctx.receiver.seen.map((d) => d.body.toString('utf8').slice(0, 120));
    throw new CheckFailed(`no fp.upload for ${handle} within ${WEBHOOK_WAIT_MS / 1000} s; received ${JSON.stringify(seen)}`);
  }
  if (delivery.path !== '/hook') {
    throw new CheckFailed(`delivered to ${JSON.stringify(delivery.path)}, want '/hook'`);
  }
  const signed = { signature: delivery.headers['fs-signature'], timestamp: delivery.headers['fs-timestamp'] };
  const body = delivery.body.toString('utf8');
  if (!validateWebhookSignature(ctx.webhookSecret, body, signed)) {
    throw new CheckFailed(`validateWebhookSignature refused it (headers ${JSON.stringify(signed)})`);
  }
  const tampered = body.replace(handle, [...handle].reverse().join(''));
  if (validateWebhookSignature(ctx.webhookSecret, tampered, signed)) {
    throw new CheckFailed('a tampered body verified too: the signature does not cover the body');
  }
  return `delivery for ${handle} verified, tampered copy refused`;
}

export const CHECKS = [
  an_upload_signed_with_another_secret_is_refused,
  an_upload_with_a_policy_without_pick_is_refused,
  an_upload_to_a_path_the_policy_does_not_allow_is_refused,
  a_download_with_an_expired_policy_is_refused,
  metadata_with_a_policy_without_stat_is_refused,
  a_transformation_with_a_read_only_policy_is_refused,
  remove_with_a_policy_pinned_to_another_handle_is_refused_and_keeps_the_file,
  a_policy_from_get_security_with_another_secret_is_refused,
  an_fp_upload_webhook_arrives_and_validate_webhook_signature_accepts_it,
];
