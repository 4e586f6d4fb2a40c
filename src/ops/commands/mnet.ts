import { defineCommand, type ApplyOutcome, type CommandContext, type CommandDef } from './command.ts';
import type { FleetMember } from '../moodle/site.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { invalidateCaches, PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import { readSetting, storeSetting } from '../moodle/config.ts';
import {
  bindPeer,
  DEFAULT_SERVICES,
  livePeers,
  MASTER_SIDE,
  mirrored,
  ownRecord,
  strategyServices,
  unbindPeer,
  type ServiceMap,
} from '../moodle/mnet-peers.ts';
import { phpUnserialize } from '../moodle/php-values.ts';
import { ParamError } from './params.ts';
import { onceForSource } from './source-reads.ts';
import {
  generateKeyPair,
  keyState,
  peerCopy,
  readMnet,
  writeKeyPair,
  writePeerKey,
  type KeyPair,
  type MnetSite,
} from '../moodle/mnet-keys.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { READ_ONLY } from './traits.ts';

const siteOf = (ctx: CommandContext, target: MoodleTarget) =>
  ctx.moodle.withStatements(target, (sql) => readMnet(ctx.moodle, sql, target, false), false);

const day = (expires: number) => new Date(expires * 1000).toISOString().slice(0, 16).replace('T', ' ');
const listed = (items: string[], max = 5) =>
  `${items.slice(0, max).join(', ')}${items.length > max ? ` and ${items.length - max} more` : ''}`;

/** A site's peers split into those the registry holds (whose copy of its key the product can update) and the others. */
async function peersOf(ctx: CommandContext, site: MnetSite) {
  const known = await ctx.peers(site.peers.map((p) => p.wwwroot));
  return {
    inFleet: site.peers
      .filter((p) => known.has(p.wwwroot))
      .map((p) => ({ ...p, target: known.get(p.wwwroot) as MoodleTarget })),
    outside: site.peers.filter((p) => !known.has(p.wwwroot)).map((p) => p.wwwroot),
  };
}

const outsideWarning = (outside: string[]) =>
  outside.length
    ? `${outside.length} peer${outside.length === 1 ? '' : 's'} outside the fleet (${listed(outside)}) cannot be updated and will reject the new key until they fetch it`
    : '';

export const mnetStatus = defineCommand({
  name: 'mnet/status',
  category: 'mnet',
  summary:
    "Each target's MNET key: valid, expiring within the renewal gap, expired or unset, and the peers whose copy of it is stale",
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
    await Promise.all(
      (site.openssl ? inFleet : []).map(async (peer) => {
        try {
          const copy = await peerCopy(ctx.moodle, peer.target, target.host.wwwroot);
          if (copy !== undefined && copy !== own) stale.push(peer.target.host.shortname);
        } catch (err) {
          unread.push(`${peer.target.host.shortname} (${describeError(err)})`);
        }
      }),
    );
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
async function renew(
  ctx: CommandContext,
  target: MoodleTarget,
  when: (site: MnetSite) => boolean,
): Promise<ApplyOutcome> {
  const before = await siteOf(ctx, target);
  if (!when(before)) return { status: 'already_applied', message: 'nothing to do' };
  const pair: KeyPair = await generateKeyPair(
    { wwwroot: target.host.wwwroot, ...before.subject },
    before.lifetimeDays || ctx.mnet.keyDays,
  );
  const caches = await ctx.moodle.withStatements(target, async (sql) => {
    const site = await readMnet(ctx.moodle, sql, target, true);
    return writeKeyPair(ctx.moodle, sql, target, site, pair);
  });
  const { inFleet, outside } = await peersOf(ctx, before);
  const updated: string[] = [];
  const failed: string[] = [];
  await Promise.all(
    inFleet.map(async (peer) => {
      try {
        if ((await writePeerKey(ctx.moodle, peer.target, target.host.wwwroot, pair)) > 0)
          updated.push(peer.target.host.shortname);
      } catch (err) {
        failed.push(`${peer.target.host.shortname} (${describeError(err)})`);
      }
    }),
  );
  const message = [
    `new key until ${day(pair.expires)} UTC`,
    updated.length ? `copied to ${listed(updated.sort())}` : 'no peer in the fleet holds a copy',
    failed.length ? `NOT copied to ${listed(failed)}: they reject the new key until they fetch it` : '',
    outsideWarning(outside),
  ]
    .filter(Boolean)
    .join('; ');
  return { status: 'applied', message, ...(await invalidateCaches(ctx, target, caches)) };
}

async function renewPreview(ctx: CommandContext, target: MoodleTarget) {
  const site = await siteOf(ctx, target);
  const { inFleet, outside } = await peersOf(ctx, site);
  const state = site.openssl ? keyState(site.local?.public_key_expires ?? 0, ctx.mnet.renewGapHours) : 'unset';
  return {
    old: state,
    new: 'valid',
    note: [`${inFleet.length} peer${inFleet.length === 1 ? '' : 's'} in the fleet to update`, outsideWarning(outside)]
      .filter(Boolean)
      .join('; '),
  };
}

/** Renewal writes keys to the target and to its peers' databases, and is not undone: the old pair is archived. */
const RENEWAL = {
  reversible: false,
  idempotent: false,
  needsSource: false,
  writes: true,
  runsOn: 'node',
  phpScripts: PURGE_THROUGH_MOODLE,
} as const;

/** mnet/renew and VMoodle's "renew all pairs": the same renewal, the second destructive, since every MNET link changes at once. */
const renewal = (name: string, summary: string, destructive: boolean) =>
  defineCommand({
    name,
    category: 'mnet',
    summary,
    params: [],
    destructive,
    ...RENEWAL,
    preview: renewPreview,
    apply: (ctx, target) => renew(ctx, target, () => true),
  });

export const renewKeys = renewal(
  'mnet/renew',
  "Renew each target's MNET key pair (the old one archived as Moodle does) and every copy of it the fleet's peers hold",
  false,
);
export const renewAllPairs = renewal(
  'mnet/renewall',
  "VMoodle's \"renew all pairs\": every target's key pair and every peer's copy, at once (destructive: every MNET link changes)",
  true,
);

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
  async apply(ctx, target, _p, planned) {
    const before = await siteOf(ctx, target);
    const caches = await ctx.moodle.withStatements(target, async (sql) => {
      const site = await readMnet(ctx.moodle, sql, target, true);
      if (site.mode === 'strict') return [];
      await planned.beforeWrite(`${before.mode}${before.openssl ? ', key' : ', no key'}`);
      // The networking settings page saves the mode with set_config and no log row.
      storeSetting(ctx.moodle, sql, target, { name: 'mnet_dispatcher_mode' }, 'strict', site.modeSetting, {
        enabledStores: null,
        jsonformat: null,
      });
      return [{ definition: 'core/config', keys: ['core'] }];
    });
    const keyed = before.openssl ? undefined : await renew(ctx, target, (site) => !site.openssl);
    if (caches.length === 0 && !keyed) return { status: 'already_applied', old: 'strict, key', new: 'strict, key' };
    const cache = caches.length ? await invalidateCaches(ctx, target, caches) : {};
    return {
      status: 'applied',
      old: `${before.mode}${before.openssl ? ', key' : ', no key'}`,
      new: 'strict, key',
      message: keyed?.message,
      ...cache,
      ...(keyed ? { cachePurged: keyed.cachePurged, cacheNote: keyed.cacheNote } : {}),
    };
  },
});

/** How members of a subnet serve each other: the master's VMoodle settings `services` and `services_strategy`. */
async function peerServices(ctx: CommandContext): Promise<ServiceMap> {
  return onceForSource(ctx, 'mnet-services', async () => {
    const [mode, strategy] = await ctx.moodle.withStatements(
      ctx.source,
      (sql) =>
        Promise.all([
          readSetting(ctx.moodle, sql, ctx.source, { plugin: 'local_vmoodle', name: 'services' }),
          readSetting(ctx.moodle, sql, ctx.source, { plugin: 'local_vmoodle', name: 'services_strategy' }),
        ]),
      false,
    );
    if (mode !== 'subnetwork') return DEFAULT_SERVICES;
    if (!strategy)
      throw new ParamError(
        "the master's VMoodle services are 'subnetwork' but its services_strategy is empty: set the strategy in VMoodle first",
      );
    return strategyServices(phpUnserialize(strategy) as Record<string, unknown>);
  });
}

/** Who a target should be bound to: the enabled members of its subnet and the master (subnet 0: the master only; -1: none). */
async function wantedPeers(
  ctx: CommandContext,
  target: MoodleTarget,
): Promise<{ self: FleetMember | undefined; wanted: FleetMember[]; fleet: FleetMember[] }> {
  const fleet = await ctx.members();
  const self = fleet.find((m) => m.target.host.kind === target.host.kind && m.target.host.id === target.host.id);
  const master = fleet.find((m) => m.target.host.kind === 'master');
  if (!self || self.mnet < 0) return { self, wanted: [], fleet };
  const members =
    self.mnet > 0
      ? fleet.filter((m) => m !== self && m.target.host.kind === 'instance' && m.enabled && m.mnet === self.mnet)
      : [];
  return { self, wanted: [...(master && master !== self ? [master] : []), ...members], fleet };
}

const sameHost = (a: MoodleTarget, b: MoodleTarget) => a.host.kind === b.host.kind && a.host.id === b.host.id;

export const bindSubnet = defineCommand({
  name: 'mnet/bind',
  category: 'mnet',
  summary:
    "Bind each target to its registry MNET subnet (VMoodle's subnet binding): peer rows and services written on both sides, left subnets unbound",
  params: [],
  destructive: false,
  reversible: false,
  idempotent: true,
  needsSource: false,
  writes: true,
  async check(ctx) {
    await peerServices(ctx);
  },
  async preview(ctx, target) {
    const { self, wanted, fleet } = await wantedPeers(ctx, target);
    const live = await livePeers(ctx.moodle, target);
    const leaving = fleet.filter(
      (m) => live.includes(m.target.host.wwwroot) && !wanted.includes(m) && !sameHost(m.target, target),
    );
    return {
      note: `subnet ${self?.mnet ?? -1}: bind ${wanted.length} (${listed(wanted.map((m) => m.target.host.shortname))})${leaving.length ? `, unbind ${listed(leaving.map((m) => m.target.host.shortname))}` : ''}`,
    };
  },
  async apply(ctx, target) {
    const services = await peerServices(ctx);
    const { self, wanted, fleet } = await wantedPeers(ctx, target);
    const own = await ownRecord(ctx.moodle, target, self?.name ?? target.host.shortname);
    const bound: string[] = [];
    const unbound: string[] = [];
    for (const peer of wanted) {
      const theirs = await ownRecord(ctx.moodle, peer.target, peer.name);
      // Towards the master, the main domain's services; between members, the subnet's, mirrored on the other side.
      const mine = peer.target.host.kind === 'master' ? mirrored(MASTER_SIDE) : services;
      const changedHere = await bindPeer(ctx.moodle, target, theirs, mine);
      const changedThere = await bindPeer(ctx.moodle, peer.target, own, mirrored(mine));
      if (changedHere || changedThere) bound.push(peer.target.host.shortname);
    }
    const live = await livePeers(ctx.moodle, target);
    for (const peer of fleet.filter(
      (m) => live.includes(m.target.host.wwwroot) && !wanted.includes(m) && !sameHost(m.target, target),
    )) {
      await unbindPeer(ctx.moodle, target, peer.target.host.wwwroot);
      await unbindPeer(ctx.moodle, peer.target, target.host.wwwroot);
      unbound.push(peer.target.host.shortname);
    }
    if (bound.length + unbound.length === 0)
      return { status: 'already_applied', message: `bound as subnet ${self?.mnet ?? -1} wants` };
    return {
      status: 'applied',
      message: [bound.length ? `bound ${listed(bound)}` : '', unbound.length ? `unbound ${listed(unbound)}` : '']
        .filter(Boolean)
        .join('; '),
    };
  },
});

export const MNET_COMMANDS: readonly CommandDef[] = [mnetStatus, renewKeys, renewAllPairs, initMnet, bindSubnet];
