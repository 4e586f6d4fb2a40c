import { createPrivateKey, X509Certificate } from 'node:crypto';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { cancelRun } from '../../src/ops/executor/run-actions.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { siteQueries } from '../support/moodle-log.ts';
import { testServices } from '../support/services.ts';

const A = 'https://a.campus.example.org';
const B = 'https://b.campus.example.org';
const OUTSIDE = 'https://partner.example.net';

describe.runIf(testServices().moodleDump)('MNET keys, stored as Moodle stores them (moodle-facts §2.4)', () => {
  let fx: OpsFixture;
  let siteA: TestDatabase;
  let siteB: TestDatabase;
  let conn: Connection;
  const a = siteQueries(
    () => conn,
    () => siteA.name,
  );
  const b = siteQueries(
    () => conn,
    () => siteB.name,
  );

  async function run(args: string[]) {
    const result = await runCli(['--json', 'run', ...args], fx.env);
    expect(result.stderr).toBe('');
    return JSON.parse(result.stdout);
  }
  const peerRow = (q: typeof a, wwwroot: string) =>
    q.rows<{ public_key: string; public_key_expires: number }>(
      'SELECT public_key, public_key_expires FROM {mnet_host} WHERE wwwroot = ?',
      [wwwroot],
    );

  beforeAll(async () => {
    [siteA, siteB] = await Promise.all([leaseMoodleDatabase(), leaseMoodleDatabase()]);
    fx = await opsFixture('mnet');
    await registerInstances(fx, [
      { shortname: 'a', database: siteA.name },
      { shortname: 'b', database: siteB.name },
    ]);
    startWorker(fx);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    // A has a key pair (its text a literal), MNET on, and two peers: B, and a partner outside the fleet. B holds a stale copy of A's key.
    await a.rows("UPDATE {config} SET value = 'strict' WHERE name = 'mnet_dispatcher_mode'");
    await a.rows(
      "INSERT INTO {config_plugins} (plugin, name, value) VALUES ('mnet', 'openssl', 'CERT-A0@@@@@@@@KEY-A0')",
    );
    await a.rows(
      "UPDATE {mnet_host} SET wwwroot = ?, public_key = 'CERT-A0', public_key_expires = 1790000000 WHERE id = 1",
      [A],
    );
    await a.rows(
      "INSERT INTO {mnet_host} (deleted, wwwroot, ip_address, name, public_key, public_key_expires, transport, portno, last_connect_time, last_log_id, force_theme, applicationid, sslverification) VALUES (0, ?, '', 'B', 'CERT-B0', 1790000000, 1, 0, 0, 0, 0, 1, 0), (0, ?, '', 'Partner', 'CERT-P', 1790000000, 1, 0, 0, 0, 0, 1, 0)",
      [B, OUTSIDE],
    );
    await b.rows(
      "INSERT INTO {mnet_host} (deleted, wwwroot, ip_address, name, public_key, public_key_expires, transport, portno, last_connect_time, last_log_id, force_theme, applicationid, sslverification) VALUES (0, ?, '', 'A', 'CERT-A-STALE', 1780000000, 1, 0, 0, 0, 0, 1, 0)",
      [A],
    );
  });
  afterAll(() => conn.end());

  it('status says when each key expires, which peer holds a stale copy, and how many peers are outside the fleet', async () => {
    const status = await run(['mnet/status', '--hosts', 'a,b', '--yes']);
    const byHost = Object.fromEntries(
      status.targets.map((t: { shortname: string; value: string }) => [t.shortname, t.value]),
    );
    expect(byHost.a).toBe(
      'expired: until 2026-09-21 14:13 UTC; MNET strict; stale copy at b; 1 peer outside the fleet',
    );
    expect(byHost.b).toBe('no key; MNET off');
  });

  it("renews A's key: a certificate with Moodle's DN whose key matches, the old pair archived in openssl_history, every fleet peer's copy replaced", async () => {
    const before = Date.now();
    const plan = await createPlan(fx.rt, {
      command: 'mnet/renew',
      params: {},
      selector: { tohosts: ['a'] },
      requestedBy: 'tester',
      via: 'cli',
    });
    await cancelRun(fx.rt, plan.run.id, 'tester');
    expect(plan.targets[0]).toMatchObject({
      preview_old: 'expired',
      preview_new: 'valid',
      preview_note:
        '1 peer in the fleet to update; 1 peer outside the fleet (https://partner.example.net) cannot be updated and will reject the new key until they fetch it',
    });
    const result = await run(['mnet/renew', '--hosts', 'a', '--yes']);
    expect(result.targets[0]).toMatchObject({ status: 'applied' });
    expect(result.targets[0].message).toMatch(
      /^new key until \d{4}-\d\d-\d\d \d\d:\d\d UTC; copied to b; 1 peer outside the fleet \(https:\/\/partner\.example\.net\) cannot be updated/,
    );

    const [{ value: openssl }] = (await a.rows<{ value: string }>(
      "SELECT value FROM {config_plugins} WHERE plugin = 'mnet' AND name = 'openssl'",
    )) as [{ value: string }];
    const [certificate, keyPem] = openssl.split('@@@@@@@@') as [string, string];
    const cert = new X509Certificate(certificate);
    const subject = Object.fromEntries(cert.subject.split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2)));
    // The dump's admin (admin@example.com, no country or city) and site ("Moodle Template"), as mnet_generate_keypair() fills the DN.
    expect(subject).toEqual({
      C: 'NZ',
      ST: 'Wellington',
      L: 'Wellington',
      O: 'Moodle Template',
      OU: 'Moodle',
      CN: A,
      subjectAltName: A,
      emailAddress: 'admin@example.com',
    });
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    const expires = Math.floor(new Date(cert.validTo).getTime() / 1000);
    expect(expires * 1000).toBeGreaterThanOrEqual(before + 28 * 86_400_000 - 60_000);
    expect(expires * 1000).toBeLessThanOrEqual(Date.now() + 28 * 86_400_000 + 1000);

    // get_keypair()'s archive: the old pair newest first, as PHP serialize() writes an array of arrays; generations set to 3.
    const history = await a.rows<{ name: string; value: string }>(
      "SELECT name, value FROM {config_plugins} WHERE plugin = 'mnet' AND name IN ('openssl_history', 'openssl_generations') ORDER BY name",
    );
    expect(history).toEqual([
      { name: 'openssl_generations', value: '3' },
      {
        name: 'openssl_history',
        value:
          'a:1:{i:0;a:3:{s:11:"certificate";s:7:"CERT-A0";s:11:"keypair_PEM";s:6:"KEY-A0";s:7:"expires";s:10:"1790000000";}}',
      },
    ]);
    expect(await a.rows('SELECT wwwroot, public_key, public_key_expires FROM {mnet_host} WHERE id = 1')).toEqual([
      { wwwroot: A, public_key: certificate, public_key_expires: expires },
    ]);
    expect(await peerRow(b, A)).toEqual([{ public_key: certificate, public_key_expires: expires }]);
    expect(await peerRow(a, OUTSIDE)).toEqual([{ public_key: 'CERT-P', public_key_expires: 1790000000 }]);

    const status = await run(['mnet/status', '--hosts', 'a', '--yes']);
    expect(status.targets[0].value).toMatch(/^valid: until .* UTC; MNET strict; 1 peer outside the fleet$/);
  });

  it('keeps at most openssl_generations pairs, newest first', async () => {
    await a.rows("UPDATE {config_plugins} SET value = '2' WHERE plugin = 'mnet' AND name = 'openssl_generations'");
    const [{ value: first }] = (await a.rows<{ value: string }>(
      "SELECT value FROM {config_plugins} WHERE plugin = 'mnet' AND name = 'openssl'",
    )) as [{ value: string }];
    await run(['mnet/renew', '--hosts', 'a', '--yes']);
    await run(['mnet/renew', '--hosts', 'a', '--yes']);
    const [{ value }] = (await a.rows<{ value: string }>(
      "SELECT value FROM {config_plugins} WHERE plugin = 'mnet' AND name = 'openssl_history'",
    )) as [{ value: string }];
    const certs = [...value.matchAll(/s:11:"certificate";s:\d+:"(-----BEGIN CERTIFICATE-----[^"]+)"/g)].map(
      (m) => m[1],
    );
    expect(certs).toHaveLength(2);
    expect(certs[1]).toBe(first.split('@@@@@@@@')[0]);
    expect(value).not.toContain('CERT-A0');
  });

  it('init turns MNET on and gives a site without a key its first pair, with an empty history', async () => {
    const result = await run(['mnet/init', '--hosts', 'b', '--yes']);
    expect(result.targets[0]).toMatchObject({ status: 'applied', old: 'off, no key', new: 'strict, key' });
    expect(
      (await b.rows<{ value: string }>("SELECT value FROM {config} WHERE name = 'mnet_dispatcher_mode'"))[0]?.value,
    ).toBe('strict');
    const rows = await b.rows<{ name: string; value: string }>(
      "SELECT name, value FROM {config_plugins} WHERE plugin = 'mnet' AND name IN ('openssl_history', 'openssl_generations') ORDER BY name",
    );
    expect(rows).toEqual([
      { name: 'openssl_generations', value: '3' },
      { name: 'openssl_history', value: 'a:0:{}' },
    ]);
    const [{ value: openssl }] = (await b.rows<{ value: string }>(
      "SELECT value FROM {config_plugins} WHERE plugin = 'mnet' AND name = 'openssl'",
    )) as [{ value: string }];
    expect(new X509Certificate(openssl.split('@@@@@@@@')[0] as string).subject).toContain(`CN=${B}`);
    // A knows B: its copy of B's key is the new one.
    expect((await peerRow(a, B))[0]?.public_key).toBe(openssl.split('@@@@@@@@')[0]);
    expect((await run(['mnet/init', '--hosts', 'b', '--yes'])).targets[0]).toMatchObject({ status: 'already_applied' });
  });
});
