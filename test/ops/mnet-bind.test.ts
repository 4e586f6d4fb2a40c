import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { loadDump, restoreSql, runSqlIn } from '../../src/ops/moodle/dump.ts';
import { runCli } from '../support/cli.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

const MNET_TABLES = [
  'config',
  'config_plugins',
  'course',
  'user',
  'mnet_host',
  'mnet_host2service',
  'mnet_service',
  'mnet_application',
];
const MASTER = 'https://master.example.org';

describe.runIf(testServices().moodleDump)("VMoodle's subnet binding (vmoodle-spec §7.4)", () => {
  let fx: OpsFixture;
  let conn: Connection;
  let db: string;
  const prefixes = new Map<string, string>();
  const table = (host: string, name: string) =>
    host === 'master' ? `\`${fx.master.name}\`.\`mdl_${name}\`` : `\`${db}\`.\`${prefixes.get(host)}${name}\``;
  const url = (host: string) => (host === 'master' ? MASTER : `https://${host}.campus.example.org`);

  /** What a host holds of its peers: each live or deleted row, with its services as publish/subscribe pairs. */
  async function peersOf(host: string) {
    const [rows] = await conn.query(
      `SELECT id, wwwroot, deleted FROM ${table(host, 'mnet_host')} WHERE id > 2 ORDER BY wwwroot`,
    );
    const out: Record<string, { deleted: number; services: Record<string, string> }> = {};
    for (const r of rows as Array<{ id: number; wwwroot: string; deleted: number }>) {
      const [links] = await conn.query(
        `SELECT s.name, l.publish, l.subscribe FROM ${table(host, 'mnet_host2service')} l JOIN ${table(host, 'mnet_service')} s ON s.id = l.serviceid WHERE l.hostid = ? ORDER BY s.name`,
        [r.id],
      );
      out[r.wwwroot] = {
        deleted: r.deleted,
        services: Object.fromEntries(
          (links as Array<{ name: string; publish: number; subscribe: number }>).map((l) => [
            l.name,
            `${l.publish}/${l.subscribe}`,
          ]),
        ),
      };
    }
    return out;
  }
  const bind = async (hosts: string) =>
    JSON.parse((await runCli(['--json', 'run', 'mnet/bind', '--hosts', hosts, '--yes'], fx.env)).stdout).targets;

  beforeAll(async () => {
    fx = await opsFixture('mnetbind');
    const { moodleDump, mysqlServer } = testServices();
    await runSqlIn(
      parseMysqlUrl(mysqlServer),
      fx.master.name,
      restoreSql(await loadDump(moodleDump as string), { tables: MNET_TABLES, rowsOf: MNET_TABLES, prefix: 'mdl_' }),
    );
    db = (await createDatabase('mnetbind')).name;
    const names = ['x1', 'x2', 'x3'];
    const made = await thinInstances(db, names.length, { tables: MNET_TABLES, rowsOf: MNET_TABLES });
    for (const [i, n] of names.entries()) prefixes.set(n, made[i] as string);
    await registerInstances(
      fx,
      names.map((shortname) => ({ shortname, database: db, prefix: prefixes.get(shortname) as string })),
    );
    await fx.app.masterDb(fx.rt.registry.table).whereIn('shortname', ['x1', 'x2']).update({ mnet: 1 });
    await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'x3' }).update({ mnet: 2 });
    startWorker(fx);
    conn = await mysql.createConnection(parseMysqlUrl(mysqlServer));
    // Each site's key, which its peers get a copy of.
    for (const host of ['master', ...names])
      await conn.query(
        `UPDATE ${table(host, 'mnet_host')} SET wwwroot = ?, public_key = ?, public_key_expires = 1900000000 WHERE id = 1`,
        [url(host), `KEY-${host}`],
      );
  });
  afterAll(() => conn.end());

  it('binds each instance to the members of its subnet (single sign-on both ways) and to the master (the main domain), on both sides', async () => {
    expect((await bind('x1,x2,x3')).map((t: { status: string }) => t.status)).toEqual([
      'applied',
      'applied',
      'applied',
    ]);
    // sso_idp and sso_sp both ways between members; towards the master, the instance publishes its identity provider.
    const member = { sso_idp: '1/1', sso_sp: '1/1' };
    const toMaster = { sso_idp: '1/0', sso_sp: '0/1' };
    expect(await peersOf('x1')).toEqual({
      [MASTER]: { deleted: 0, services: toMaster },
      [url('x2')]: { deleted: 0, services: member },
    });
    expect(await peersOf('x2')).toEqual({
      [MASTER]: { deleted: 0, services: toMaster },
      [url('x1')]: { deleted: 0, services: member },
    });
    expect(await peersOf('x3')).toEqual({ [MASTER]: { deleted: 0, services: toMaster } });
    const fromMaster = { sso_idp: '0/1', sso_sp: '1/0' };
    expect(await peersOf('master')).toEqual(
      Object.fromEntries(['x1', 'x2', 'x3'].map((h) => [url(h), { deleted: 0, services: fromMaster }])),
    );
    const [[copy]] = (await conn.query(`SELECT public_key FROM ${table('x2', 'mnet_host')} WHERE wwwroot = ?`, [
      url('x1'),
    ])) as unknown as [[{ public_key: string }]];
    expect(copy.public_key).toBe('KEY-x1');
    expect((await bind('x1')).map((t: { status: string }) => t.status)).toEqual(['already_applied']);
  });

  it("moving to another subnet unbinds the old members on both sides and binds the new ones with the subnetwork strategy's services", async () => {
    await conn.query(
      `INSERT INTO ${table('master', 'config_plugins')} (plugin, name, value) VALUES ('local_vmoodle', 'services', 'subnetwork'), ('local_vmoodle', 'services_strategy', ?)`,
      [
        'a:3:{s:20:"peer_sso_idp_publish";s:1:"1";s:22:"peer_sso_idp_subscribe";s:1:"0";s:23:"peer_mnet_enrol_publish";s:1:"1";}',
      ],
    );
    await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'x2' }).update({ mnet: 2 });
    expect((await bind('x2'))[0]).toMatchObject({ status: 'applied', message: 'bound x3; unbound x1' });
    expect((await peersOf('x1'))[url('x2')]?.deleted).toBe(1);
    expect((await peersOf('x2'))[url('x1')]?.deleted).toBe(1);
    expect((await peersOf('x2'))[url('x3')]).toEqual({ deleted: 0, services: { mnet_enrol: '1/0', sso_idp: '1/0' } });
    expect((await peersOf('x3'))[url('x2')]).toEqual({ deleted: 0, services: { mnet_enrol: '0/1', sso_idp: '0/1' } });
  });
});
