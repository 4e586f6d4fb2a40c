import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { autoRenew, inWindow } from '../../src/ops/schedules/mnet-autorenew.ts';
import { FINAL_STATES } from '../../src/ops/executor/run-model.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

describe('MNET auto-renewal', () => {
  it('runs only inside its UTC window, one that passes midnight too', () => {
    const at = (hhmm: string) => Date.parse(`2026-12-01T${hhmm}:00Z`);
    const night = { from: 2 * 60, to: 5 * 60 };
    expect([at('01:59'), at('02:00'), at('04:59'), at('05:00')].map((t) => inWindow(night, t))).toEqual([
      false,
      true,
      true,
      false,
    ]);
    const late = { from: 23 * 60, to: 60 };
    expect([at('22:59'), at('23:30'), at('00:30'), at('01:00')].map((t) => inWindow(late, t))).toEqual([
      false,
      true,
      true,
      false,
    ]);
  });
});

describe.runIf(testServices().moodleDump)('MNET auto-renewal on a fleet', () => {
  let fx: OpsFixture;
  let conn: Connection;
  let db: string;
  const prefixes = new Map<string, string>();
  const t = (host: string, table: string) => `\`${db}\`.\`${prefixes.get(host)}${table}\``;
  const localKey = async (host: string) =>
    (
      (await conn.query(`SELECT public_key FROM ${t(host, 'mnet_host')} WHERE id = 1`))[0] as Array<{
        public_key: string;
      }>
    )[0]?.public_key;
  const now = Date.parse('2026-12-01T03:00:00Z');

  beforeAll(async () => {
    fx = await opsFixture('autorenew', undefined, {
      VMOODLE_MNET_AUTORENEW: '02:00-05:00',
      VMOODLE_MNET_RENEW_GAP: '72',
    });
    const database = await createDatabase('autorenew');
    db = database.name;
    const names = ['soon', 'later', 'expired', 'off'];
    const made = await thinInstances(db, names.length, {
      tables: ['config', 'config_log', 'config_plugins', 'course', 'user', 'mnet_host', 'logstore_standard_log'],
      rowsOf: ['config', 'course', 'user', 'mnet_host'],
    });
    for (const [i, n] of names.entries()) prefixes.set(n, made[i] as string);
    await registerInstances(
      fx,
      names.map((shortname) => ({ shortname, database: db, prefix: prefixes.get(shortname) as string })),
    );
    startWorker(fx);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    // soon: expires within the 72-hour gap; later: in 20 days; expired: a day ago; off: MNET off, with a key left over.
    const expiry: Record<string, number> = {
      soon: now / 1000 + 24 * 3600,
      later: now / 1000 + 20 * 86_400,
      expired: now / 1000 - 86_400,
      off: now / 1000 - 86_400,
    };
    for (const name of names) {
      await conn.query(`UPDATE ${t(name, 'config')} SET value = ? WHERE name = 'mnet_dispatcher_mode'`, [
        name === 'off' ? 'off' : 'strict',
      ]);
      await conn.query(`INSERT INTO ${t(name, 'config_plugins')} (plugin, name, value) VALUES ('mnet', 'openssl', ?)`, [
        `CERT-${name}@@@@@@@@KEY-${name}`,
      ]);
      await conn.query(`UPDATE ${t(name, 'mnet_host')} SET public_key = ?, public_key_expires = ? WHERE id = 1`, [
        `CERT-${name}`,
        Math.floor(expiry[name] as number),
      ]);
    }
  });
  afterAll(() => conn.end());

  it('renews nothing outside its window, and inside it only the keys within the gap or expired, with MNET on', async () => {
    expect(await autoRenew(fx.rt, Date.parse('2026-12-01T06:00:00Z'))).toBeUndefined();
    expect(await localKey('soon')).toBe('CERT-soon');

    const runId = await autoRenew(fx.rt, now);
    expect(runId).toBeDefined();
    await fx.rt.progress.follow(
      runId as number,
      () => undefined,
      (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
    );
    const run = await fx.rt.store.getRun(runId as number);
    expect(run).toMatchObject({
      command: 'mnet/renew',
      requested_by: 'auto-renewal',
      via: 'schedule',
      state: 'succeeded',
    });
    expect((await fx.rt.store.getTargets(runId as number)).map((x) => x.shortname).sort()).toEqual(['expired', 'soon']);
    expect(await localKey('soon')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(await localKey('expired')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(await localKey('later')).toBe('CERT-later');
    expect(await localKey('off')).toBe('CERT-off');
    const alerts = (await fx.rt.redis.lrange(fx.rt.keys.alerts(), 0, -1)).map((a) => JSON.parse(a).text as string);
    expect(alerts).toContain(
      `MNET auto-renewal renews the keys of 2 hosts expiring within 72 h: soon, expired (run ${runId}).`,
    );
  });
});
