import type { MoodleAccess } from './access.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';

/** What one site publishes to a peer and subscribes to from it, by service name (mnet_host2service). */
export type ServiceMap = Record<string, { publish: 0 | 1; subscribe: 0 | 1 }>;

/** A peer as a site's mnet_host row holds it. */
export interface PeerRecord {
  wwwroot: string;
  name: string;
  public_key: string;
  public_key_expires: number;
}

/** The other side of a map: what one publishes the other subscribes to. */
export const mirrored = (map: ServiceMap): ServiceMap =>
  Object.fromEntries(Object.entries(map).map(([name, s]) => [name, { publish: s.subscribe, subscribe: s.publish }]));

/** VMoodle's `default` strategy: single sign-on both ways between peers, nothing else. */
export const DEFAULT_SERVICES: ServiceMap = {
  sso_idp: { publish: 1, subscribe: 1 },
  sso_sp: { publish: 1, subscribe: 1 },
};

/**
 * VMoodle's `subnetwork` strategy (its services_strategy setting, `peer_<service>_publish|subscribe`): what a new
 * member publishes to and subscribes from each other member.
 */
export function strategyServices(strategy: Record<string, unknown>): ServiceMap {
  const map: ServiceMap = {};
  for (const [key, value] of Object.entries(strategy)) {
    const m = /^peer_(.+)_(publish|subscribe)$/.exec(key);
    if (!m) continue;
    const entry = (map[m[1] as string] ??= { publish: 0, subscribe: 0 });
    entry[m[2] as 'publish' | 'subscribe'] = Number(value) ? 1 : 0;
  }
  return map;
}

/**
 * The `main` domain: the master, as its own row for an instance says, publishes the SSO service provider and data
 * exchange to it and subscribes to its identity provider and to its VMoodle administration (mirrored on the instance).
 */
export const MASTER_SIDE: ServiceMap = {
  sso_sp: { publish: 1, subscribe: 0 },
  sso_idp: { publish: 0, subscribe: 1 },
  mnetadmin: { publish: 0, subscribe: 1 },
  dataexchange: { publish: 1, subscribe: 0 },
};

/** A site's own MNET record, as a peer should hold it: its wwwroot, its key and expiry. */
export async function ownRecord(access: MoodleAccess, target: MoodleTarget, name: string): Promise<PeerRecord> {
  return access.withConnection(target, async (conn) => {
    const [rows] = await conn.query(
      `SELECT h.public_key, h.public_key_expires FROM ${access.table(target, MOODLE_TABLES.mnetHost)} h
       WHERE h.id = (SELECT value FROM ${access.table(target, MOODLE_TABLES.config)} WHERE name = 'mnet_localhost_id')`,
    );
    const own = (rows as Array<{ public_key: string; public_key_expires: number }>)[0];
    return {
      wwwroot: target.host.wwwroot,
      name,
      public_key: own?.public_key ?? '',
      public_key_expires: Number(own?.public_key_expires ?? 0),
    };
  });
}

/** The wwwroots of the peers a site holds live rows for (not itself, not All Hosts). */
export async function livePeers(access: MoodleAccess, target: MoodleTarget): Promise<string[]> {
  return access.withConnection(target, async (conn) => {
    const [rows] = await conn.query(
      `SELECT wwwroot FROM ${access.table(target, MOODLE_TABLES.mnetHost)} WHERE deleted = 0 AND wwwroot <> ''
       AND id NOT IN (SELECT value FROM ${access.table(target, MOODLE_TABLES.config)} WHERE name IN ('mnet_localhost_id', 'mnet_all_hosts_id'))`,
    );
    return (rows as Array<{ wwwroot: string }>).map((r) => r.wwwroot);
  });
}

/**
 * VMoodle's bind_peer on one site: the peer's mnet_host row added, or brought back and refreshed, by wwwroot, and its
 * mnet_host2service rows rewritten from the map (services the site does not have are left out). One transaction.
 * Whether anything changed.
 */
export async function bindPeer(
  access: MoodleAccess,
  site: MoodleTarget,
  peer: PeerRecord,
  services: ServiceMap,
): Promise<boolean> {
  const hosts = access.table(site, MOODLE_TABLES.mnetHost);
  const links = access.table(site, MOODLE_TABLES.mnetHost2service);
  return access.withTransaction(site, async (conn) => {
    const [found] = await conn.query(
      `SELECT id, deleted, name, public_key, public_key_expires FROM ${hosts} WHERE wwwroot = ? ORDER BY deleted, id LIMIT 1 FOR UPDATE`,
      [peer.wwwroot],
    );
    const row = (
      found as Array<{ id: number; deleted: number; name: string; public_key: string; public_key_expires: number }>
    )[0];
    let id: number;
    let changed = false;
    if (!row) {
      const port = new URL(peer.wwwroot).protocol === 'https:' ? 443 : 80;
      const [result] = await conn.query(
        `INSERT INTO ${hosts} (deleted, wwwroot, ip_address, name, public_key, public_key_expires, transport, portno, last_connect_time, last_log_id, force_theme, applicationid, sslverification)
         VALUES (0, ?, '', ?, ?, ?, 1, ?, 0, 0, 0, (SELECT id FROM ${access.table(site, MOODLE_TABLES.mnetApplication)} WHERE name = 'moodle'), 0)`,
        [peer.wwwroot, peer.name.slice(0, 80), peer.public_key, peer.public_key_expires, port],
      );
      id = Number((result as { insertId: number }).insertId);
      changed = true;
    } else {
      id = Number(row.id);
      if (
        Number(row.deleted) ||
        row.public_key !== peer.public_key ||
        Number(row.public_key_expires) !== peer.public_key_expires ||
        row.name !== peer.name.slice(0, 80)
      ) {
        await conn.query(
          `UPDATE ${hosts} SET deleted = 0, name = ?, public_key = ?, public_key_expires = ? WHERE id = ?`,
          [peer.name.slice(0, 80), peer.public_key, peer.public_key_expires, id],
        );
        changed = true;
      }
    }
    const [known] = await conn.query(`SELECT id, name FROM ${access.table(site, MOODLE_TABLES.mnetService)}`);
    const byName = new Map((known as Array<{ id: number; name: string }>).map((k) => [k.name, Number(k.id)]));
    const desired = Object.entries(services)
      .filter(([name]) => byName.has(name))
      .map(([name, link]) => ({
        serviceid: byName.get(name) as number,
        publish: link.publish,
        subscribe: link.subscribe,
      }))
      .sort((a, b) => a.serviceid - b.serviceid);
    const [current] = await conn.query(
      `SELECT serviceid, publish, subscribe FROM ${links} WHERE hostid = ? ORDER BY serviceid`,
      [id],
    );
    const now = (current as Array<{ serviceid: number; publish: number; subscribe: number }>).map((c) => ({
      serviceid: Number(c.serviceid),
      publish: Number(c.publish),
      subscribe: Number(c.subscribe),
    }));
    if (JSON.stringify(now) !== JSON.stringify(desired)) {
      await conn.query(`DELETE FROM ${links} WHERE hostid = ?`, [id]);
      if (desired.length)
        await conn.query(`INSERT INTO ${links} (hostid, serviceid, publish, subscribe) VALUES ?`, [
          desired.map((d) => [id, d.serviceid, d.publish, d.subscribe]),
        ]);
      changed = true;
    }
    return changed;
  });
}

/** VMoodle's unbind_peer on one site: the peer's live rows marked deleted. Whether there was one. */
export async function unbindPeer(access: MoodleAccess, site: MoodleTarget, wwwroot: string): Promise<boolean> {
  return access.withConnection(site, async (conn) => {
    const [result] = await conn.query(
      `UPDATE ${access.table(site, MOODLE_TABLES.mnetHost)} SET deleted = 1 WHERE wwwroot = ? AND deleted = 0`,
      [wwwroot],
    );
    return Number((result as { affectedRows: number }).affectedRows) > 0;
  });
}
