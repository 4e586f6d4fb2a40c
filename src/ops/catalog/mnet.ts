import { defineCommand, type ApplyOutcome, type CommandContext, type CommandDef } from '../command.ts';
import { describeError } from '../moodle/db-errors.ts';
import { invalidateCaches, PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import { storeSetting } from '../moodle/config.ts';
import { generateKeyPair, keyState, peerCopy, readMnet, writeKeyPair, writePeerKey, type KeyPair, type MnetSite } from '../moodle/mnet.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { READ_ONLY } from './traits.ts';

const siteOf = (ctx: CommandContext, target: MoodleTarget) => ctx.moodle.withStatements(target, (sql) => readMnet(ctx.moodle, sql, target, false), false);

const day = (expires: number) => new Date(expires * 1000).toISOString().slice(0, 16).replace('T', ' ');
const listed = (items: string[], max = 5) => `${items.slice(0, max).join(', ')}${items.length > max ? ` and ${items.length - max} more` : ''}`;

/** A site's peers split into those the registry holds (whose copy of its key the product can update) and the others. */
async function peersOf(ctx: CommandContext, site: MnetSite) {
  const known = await ctx.peers(site.peers.map((p) => p.wwwroot));
  return { inFleet: site.peers.filter((p) => known.has(p.wwwroot)).map((p) => ({ ...p, target: known.get(p.wwwroot) as MoodleTarget })), outside: site.peers.filter((p) => !known.has(p.wwwroot)).map((p) => p.wwwroot) };
}

const outsideWarning = (outside: string[]) =>
  outside.length ? `${outside.length} peer${outside.length === 1 ? '' : 's'} outside the fleet (${listed(outside)}) cannot be updated and will reject the new key until they fetch it` : '';

export const mnetStatus = defineCommand({
  name: 'mnet/status',
  category: 'mnet',
  summary: "Each target's MNET key: valid, expiring within the renewal gap, expired or unset, and the peers whose copy of it is stale",
  params: [],
  ...READ_ONLY,
  async apply(ctx, target) {
    const site = await siteOf(ctx, target);
    const expires = site.local?.public_key_expires ?? 0;
    const state = site.openssl ? keyState(expires, ctx.mnet.renewGapHours) : 'unset';
    const { inFleet, outside } = await peersOf(ctx, site);
    const own = site.local?.public_key ?? '';
    const stale: string[] = [];
    const unread: string[] = [];
    // A site without a key has nothing its peers could hold a stale copy of.
    await Promise.all((site.openssl ? inFleet : []).map(async (peer) => {
      try {
        const copy = await peerCopy(ctx.moodle, peer.target, target.host.wwwroot);
        if (copy !== undefined && copy !== own) stale.push(peer.target.host.shortname);
      } catch (err) {
        unread.push(`${peer.target.host.shortname} (${describeError(err)})`);
      }
    }));
    const parts = [
      state === 'unset' ? 'no key' : `${state}: until ${day(expires)} UTC`,
      `MNET ${site.mode}`,
      stale.length ? `stale copy at ${listed(stale.sort())}` : '',
      unread.length ? `could not read ${listed(unread)}` : '',
      outside.length ? `${outside.length} peer${outside.length === 1 ? '' : 's'} outside the fleet` : '',
    ].filter(Boolean);
    return { status: 'applied', value: parts.join('; '), message: `${inFleet.length + outside.length} peers` };
  },
});

/**
 * A new key pair for a target and every copy of it the fleet holds: made outside the transaction (the subject read
 * first), stored in it with the old pair archived, then written into each registry peer's row for this wwwroot.
 */
async function renew(ctx: CommandContext, target: MoodleTarget, when: (site: MnetSite) => boolean): Promise<ApplyOutcome> {
  const before = await siteOf(ctx, target);
  if (!when(before)) return { status: 'already_applied', message: 'nothing to do' };
  const pair: KeyPair = await generateKeyPair({ wwwroot: target.host.wwwroot, ...before.subject }, before.lifetimeDays || ctx.mnet.keyDays);
  const caches = await ctx.moodle.withStatements(target, async (sql) => {
    const site = await readMnet(ctx.moodle, sql, target, true);
    return writeKeyPair(ctx.moodle, sql, target, site, pair);
  });
  const { inFleet, outside } = await peersOf(ctx, before);
  const updated: string[] = [];
  const failed: string[] = [];
  await Promise.all(inFleet.map(async (peer) => {
    try {
      if ((await writePeerKey(ctx.moodle, peer.target, target.host.wwwroot, pair)) > 0) updated.push(peer.target.host.shortname);
    } catch (err) {
      failed.push(`${peer.target.host.shortname} (${describeError(err)})`);
    }
  }));
  const message = [
    `new key until ${day(pair.expires)} UTC`,
    updated.length ? `copied to ${listed(updated.sort())}` : 'no peer in the fleet holds a copy',
    failed.length ? `NOT copied to ${listed(failed)}: they reject the new key until they fetch it` : '',
    outsideWarning(outside),
  ].filter(Boolean).join('; ');
  return { status: 'applied', message, ...(await invalidateCaches(ctx, target, caches)) };
}

async function renewPreview(ctx: CommandContext, target: MoodleTarget) {
  const site = await siteOf(ctx, target);
  const { inFleet, outside } = await peersOf(ctx, site);
  const state = site.openssl ? keyState(site.local?.public_key_expires ?? 0, ctx.mnet.renewGapHours) : 'unset';
  return { old: state, new: 'valid', note: [`${inFleet.length} peer${inFleet.length === 1 ? '' : 's'} in the fleet to update`, outsideWarning(outside)].filter(Boolean).join('; ') };
}

/** Renewal writes keys to the target and to its peers' databases, and is not undone: the old pair is archived. */
const RENEWAL = { reversible: false, idempotent: false, needsSource: false, writes: true, runsOn: 'node', phpScripts: PURGE_THROUGH_MOODLE } as const;

export const renewKeys = defineCommand({
  name: 'mnet/renew',
  category: 'mnet',
  summary: "Renew each target's MNET key pair (the old one archived as Moodle does) and every copy of it the fleet's peers hold",
  params: [],
  destructive: false,
  ...RENEWAL,
  preview: renewPreview,
  apply: (ctx, target) => renew(ctx, target, () => true),
});

export const renewAllPairs = defineCommand({
  name: 'mnet/renewall',
  category: 'mnet',
  summary: "VMoodle's \"renew all pairs\": every target's key pair and every peer's copy, at once (destructive: every MNET link changes)",
  params: [],
  destructive: true,
  ...RENEWAL,
  preview: renewPreview,
  apply: (ctx, target) => renew(ctx, target, () => true),
});

export const initMnet = defineCommand({
  name: 'mnet/init',
  category: 'mnet',
  summary: 'Turn MNET on (mnet_dispatcher_mode strict) and give a site without a key its key pair',
  params: [],
  destructive: false,
  ...RENEWAL,
  idempotent: true,
  async preview(ctx, target) {
    const site = await siteOf(ctx, target);
    return { old: `${site.mode}${site.openssl ? ', key' : ', no key'}`, new: 'strict, key' };
  },
  async apply(ctx, target) {
    const before = await siteOf(ctx, target);
    const caches = await ctx.moodle.withStatements(target, async (sql) => {
      const site = await readMnet(ctx.moodle, sql, target, true);
      if (site.mode === 'strict') return [];
      // The networking settings page saves the mode with set_config and no log row.
      storeSetting(ctx.moodle, sql, target, { name: 'mnet_dispatcher_mode' }, 'strict', site.modeSetting, { enabledStores: null, jsonformat: null });
      return [{ definition: 'core/config', keys: ['core'] }];
    });
    const keyed = before.openssl ? undefined : await renew(ctx, target, (site) => !site.openssl);
    if (caches.length === 0 && !keyed) return { status: 'already_applied', old: 'strict, key', new: 'strict, key' };
    const cache = caches.length ? await invalidateCaches(ctx, target, caches) : {};
    return { status: 'applied', old: `${before.mode}${before.openssl ? ', key' : ', no key'}`, new: 'strict, key', message: keyed?.message, ...cache, ...(keyed ? { cachePurged: keyed.cachePurged, cacheNote: keyed.cacheNote } : {}) };
  },
});

export const MNET_COMMANDS: readonly CommandDef[] = [mnetStatus, renewKeys, renewAllPairs, initMnet];
