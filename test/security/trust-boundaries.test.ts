import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2';
import mysqlPromise from 'mysql2/promise';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { connectionSecurity } from '../../src/ops/moodle/db-servers.ts';
import { splitDbHost } from '../../src/registry/instance.ts';
import { parseSettings, serverName } from '../../src/core/security-settings.ts';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Chat } from '../../src/bot/chat.ts';
import { TERMINAL_STYLE } from '../../src/verbs/text-views.ts';
import { Rbac } from '../../src/verbs/rbac.ts';
import { buildComparison, comparisonCsv } from '../../src/verbs/compare.ts';
import type { TargetRow } from '../../src/ops/executor/run-model.ts';
import { runCli } from '../support/cli.ts';
import { dropDatabase, leaseMoodleDatabase, serverConnection, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { knownSecret } from '../support/secrets.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

/**
 * An operator in chat (no approver role, no database credentials) tries every way the product could hand over a
 * credential, a database or a folder that is not theirs. Each test is one attack class of docs/security.md.
 */
let fx: OpsFixture;
let site: TestDatabase;
const me = userInfo().username;
const SMTP_SECRET = 'Smtp-Pass-Never-Returned-42';
const cli = async (...args: string[]) => {
  const result = await runCli(['--json', ...args], fx.env);
  // biome-ignore lint/suspicious/noExplicitAny: the command's JSON is read as each test expects it; a wrong shape fails that expectation
  let json: any;
  try {
    json = result.stdout ? JSON.parse(result.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...result, json };
};

const ROLES = {
  roles: { admin: ['boss'], approver: ['checker', me], operator: ['ops'], viewer: ['watcher'] },
  os_users: { ops: me },
};

function chat(rbac = new Rbac(ROLES)): Chat {
  return new Chat(fx.app, rbac, { threshold: 50, ttlMs: 60_000 }, 'console', TERMINAL_STYLE);
}

/** A fake MySQL server on loopback that counts the connections it is offered and never finishes a handshake. */
async function fakeMysql(): Promise<{ port: number; connections: () => number; close: () => void }> {
  let connections = 0;
  const server = mysql.createServer((conn) => {
    connections++;
    (conn as unknown as { stream: Socket }).stream.destroy();
  });
  const listening = (server as unknown as { _server: Server })._server;
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  const port = (listening.address() as AddressInfo).port;
  return { port, connections: () => connections, close: () => listening.close() };
}

describe.runIf(testServices().moodleDump)(
  'trust boundaries: an operator in chat reaches nothing that is not theirs',
  () => {
    let root: string;

    beforeAll(async () => {
      const master = await leaseMoodleDatabase();
      site = await leaseMoodleDatabase();
      root = mkdtempSync(join(tmpdir(), 'vmops-trust-'));
      afterAll(() => rmSync(root, { recursive: true, force: true }));
      fx = await opsFixture('trust', master, { VMOODLE_DATAROOT_ROOT: join(root, 'dataroots') });
      mkdirSync(join(root, 'dataroots'), { recursive: true });
      await registerInstances(fx, [
        { shortname: 'alpha', database: site.name, dataroot: join(root, 'dataroots', 'alpha') },
      ]);
      const conn = await serverConnection();
      await conn.query(`UPDATE \`${site.name}\`.mdl_config SET value = ? WHERE name = 'smtppass'`, [
        knownSecret(SMTP_SECRET),
      ]);
      await conn.end();
      const rbacFile = join(fx.dataDir, 'settings.yml');
      writeFileSync(
        rbacFile,
        `rbac:\n  roles:\n${Object.entries(ROLES.roles)
          .map(([role, ids]) => `    ${role}: [${ids.join(', ')}]`)
          .join('\n')}\n  os_users:\n    ops: ${me}\ndb_servers:\n  - server: 127.0.0.1:3306\n`,
      );
      // The security settings go into the master; each test below shows what they stop.
      await cli('settings', 'import', rbacFile);
      startWorker(fx);
    });

    describe('database credentials go only to the servers an admin allowed', () => {
      it('refuses an operator who edits where an instance database lives, from chat', async () => {
        const fake = await fakeMysql();
        onTestFinished(fake.close);
        const reply = await chat().handle(`instances edit alpha --vdbhost=127.0.0.1:${fake.port}`, { id: 'ops' });
        expect(reply.text).toMatch(/instances edit of vdbhost needs the admin role; you are operator/);
        expect((await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'alpha' }).first()).vdbhost).toBe(
          '127.0.0.1:3306',
        );
        await chat().handle('run generic/setconfig --hosts alpha key=theme value=classic', { id: 'ops' });
        expect(fake.connections()).toBe(0);
      });

      it("plans an admin's chat edit of where an instance lives for a second person, old → new, and changes nothing before", async () => {
        const before = join(root, 'dataroots', 'alpha');
        const moved = join(root, 'dataroots', 'alpha2');
        const reply = await chat().handle(`instances edit alpha --vdatapath=${moved}`, { id: 'boss' });
        const plan = (
          reply.view as {
            plan: {
              run: { id: number; state: string; destructive: number | boolean };
              targets: Array<{ preview_old: string; preview_new: string }>;
            };
          }
        ).plan;
        expect(plan.run.state).toBe('awaiting_approval');
        expect(plan.targets[0]).toMatchObject({
          preview_old: `vdatapath=${before}`,
          preview_new: `vdatapath=${moved}`,
        });
        const row = () => fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'alpha' }).first();
        expect((await row()).vdatapath).toBe(before);
        expect((await chat().handle(`approve ${plan.run.id} alpha`, { id: 'checker' })).text).toContain(
          `Run ${plan.run.id} approved by checker`,
        );
        await waitFor('the approved edit applied', async () => (await row()).vdatapath !== before, {
          timeoutMs: 10_000,
        });
        expect((await row()).vdatapath).toBe(moved);
        expect((await cli('instances', 'edit', 'alpha', `--vdatapath=${before}`)).code).toBe(0);
        expect(
          (await chat().handle(`run registry/edit --hosts alpha vdbhost=127.0.0.1:1`, { id: 'ops' })).text,
        ).toMatch(/registry\/edit needs the admin role; you are operator/);
      });

      it('names a server one way however it is written (localhost is 127.0.0.1), in the settings and in every check', () => {
        expect(parseSettings({ db_servers: [{ server: 'LOCALHOST:3306' }] }).dbServers?.[0]?.server).toBe(
          '127.0.0.1:3306',
        );
        expect(serverName({ host: 'localhost', port: 3306 })).toBe('127.0.0.1:3306');
        expect(serverName({ host: 'localhost', port: 3306 })).toBe(serverName(splitDbHost('localhost')));
      });

      it('sends no password in clear or under a key the server chose without TLS, and checks the certificate with it', () => {
        const plain = connectionSecurity({ server: '127.0.0.1:3306', tls: false });
        const handshake = { connection: { config: { password: 'Never-Sent-Pa55' } }, command: 'auth' } as never;
        const scramble = Buffer.alloc(20, 7);
        expect(() => plain.authPlugins?.sha256_password?.(handshake)(scramble)).toThrow(
          /would expose the password without TLS; nothing was sent/,
        );
        expect(() => plain.authPlugins?.mysql_clear_password?.(handshake)(scramble)).toThrow(
          /would expose the password without TLS/,
        );
        const sha2 = plain.authPlugins?.caching_sha2_password?.(handshake) as (data: Buffer) => unknown;
        expect(Buffer.isBuffer(sha2(scramble))).toBe(true);
        expect(() => sha2(Buffer.from([4]))).toThrow(/caching_sha2_password full authentication/);
        expect(connectionSecurity({ server: 'db.example.org:3306', tls: true })).toEqual({
          ssl: { rejectUnauthorized: true },
        });
      });

      it('never connects a login to a server that is not on the allowed list, whoever wrote the registry row', async () => {
        const fake = await fakeMysql();
        onTestFinished(fake.close);
        await registerInstances(fx, [
          {
            shortname: 'rogue',
            database: site.name,
            vdbhost: `127.0.0.1:${fake.port}`,
            dataroot: join(root, 'dataroots', 'rogue'),
          },
        ]);
        const result = await cli('run', 'generic/setconfig', '--hosts', 'rogue', 'key=theme', 'value=classic', '--yes');
        expect(JSON.stringify(result.json ?? result.stderr)).toMatch(
          new RegExp(`127\\.0\\.0\\.1:${fake.port} is not an allowed database server`),
        );
        expect(fake.connections()).toBe(0);
        expect(await fx.rt.serverWarning()).toContain(
          `instances on 127.0.0.1:${fake.port} cannot be reached: it is not among the allowed database servers`,
        );
        await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'rogue' }).delete();
      });
    });

    describe("no instance gets the master's login", () => {
      it('creates an instance with a login of its own that reads its own database and no other, and drops it on destroy', async () => {
        expect((await cli('run', 'lifecycle/snapshot', '--hosts', 'alpha', 'template=tpl-trust', '--yes')).code).toBe(
          0,
        );
        const database = `${testServices().runId}_trust_beta`;
        afterAll(() => dropDatabase(database));
        const created = await cli(
          'run',
          'lifecycle/create',
          '--master',
          'template=tpl-trust',
          'shortname=beta',
          'name=Beta',
          'vhostname=https://beta.campus.example.org',
          `vdbname=${database}`,
          `vdatapath=${join(root, 'dataroots', 'beta')}`,
          '--yes',
        );
        expect(created.json?.targets?.[0]?.status, created.stderr + created.stdout).toBe('applied');
        const row = await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'beta' }).first();
        expect(row.vdblogin).toMatch(/^vmi_[0-9a-f]{12}$/);
        expect(row.vdblogin).not.toBe(parseMysqlUrl(testServices().mysqlServer).user);
        const login = await mysqlPromise.createConnection({
          host: '127.0.0.1',
          port: 3306,
          user: row.vdblogin,
          password: row.vdbpass,
        });
        try {
          const [own] = await login.query(`SELECT COUNT(*) AS n FROM \`${database}\`.mdl_config`);
          expect(Number((own as Array<{ n: number }>)[0]?.n)).toBeGreaterThan(100);
          await expect(login.query(`SELECT COUNT(*) FROM \`${site.name}\`.mdl_config`)).rejects.toThrow(/denied/);
          await expect(login.query(`SELECT vdbpass FROM \`${fx.master.name}\`.mdl_local_vmoodle`)).rejects.toThrow(
            /denied/,
          );
          await expect(login.query('SELECT user FROM mysql.user')).rejects.toThrow(/denied/);
        } finally {
          await login.end();
        }
        expect((await cli('instances', 'disable', 'beta')).code).toBe(0);
        const destroyed = await cli(
          'run',
          'lifecycle/destroy',
          '--hosts',
          'beta',
          '--include-disabled',
          'snapshot=skip',
          '--confirm=1',
        );
        expect(destroyed.json?.targets?.[0]?.message, destroyed.stderr + destroyed.stdout).toContain(
          `login ${row.vdblogin} dropped`,
        );
        const conn = await serverConnection();
        const [users] = await conn.query('SELECT User FROM mysql.user WHERE User = ?', [row.vdblogin]);
        await conn.end();
        expect(users).toEqual([]);
      });

      it('refuses to create from a template that records no wwwroot, whose addresses could not be rewritten', async () => {
        const templates = fx.rt.config.lifecycle.templatesDir;
        cpSync(join(templates, 'tpl-trust'), join(templates, 'tpl-blank'), { recursive: true });
        const manifest = JSON.parse(readFileSync(join(templates, 'tpl-blank', 'manifest.json'), 'utf8'));
        writeFileSync(
          join(templates, 'tpl-blank', 'manifest.json'),
          JSON.stringify({ ...manifest, name: 'tpl-blank', source: { ...manifest.source, wwwroot: '' } }),
        );
        const result = await cli(
          'run',
          'lifecycle/create',
          '--master',
          'template=tpl-blank',
          'shortname=gamma',
          'name=Gamma',
          'vhostname=https://gamma.campus.example.org',
          `vdbname=${testServices().runId}_trust_gamma`,
          `vdatapath=${join(root, 'dataroots', 'gamma')}`,
          '--yes',
        );
        expect(result.code).not.toBe(0);
        expect(result.stderr).toContain('template tpl-blank records no wwwroot for its source');
        expect(existsSync(join(root, 'dataroots', 'gamma'))).toBe(false);
      });
    });

    describe('a template that leads out of its folder', () => {
      it('copies nothing from a template whose dataroot is a link out of the templates folder', async () => {
        const templates = fx.rt.config.lifecycle.templatesDir;
        const secretDir = join(root, 'secret-dataroot');
        mkdirSync(secretDir, { recursive: true });
        writeFileSync(join(secretDir, 'private.txt'), 'another site');
        cpSync(join(templates, 'tpl-trust'), join(templates, 'tpl-linked'), { recursive: true });
        const manifest = JSON.parse(readFileSync(join(templates, 'tpl-linked', 'manifest.json'), 'utf8'));
        writeFileSync(
          join(templates, 'tpl-linked', 'manifest.json'),
          JSON.stringify({ ...manifest, name: 'tpl-linked' }),
        );
        rmSync(join(templates, 'tpl-linked', 'dataroot'), { recursive: true, force: true });
        symlinkSync(secretDir, join(templates, 'tpl-linked', 'dataroot'));
        const result = await cli(
          'run',
          'lifecycle/create',
          '--master',
          'template=tpl-linked',
          'shortname=zeta',
          'name=Zeta',
          'vhostname=https://zeta.campus.example.org',
          `vdbname=${testServices().runId}_trust_zeta`,
          `vdatapath=${join(root, 'dataroots', 'zeta')}`,
          '--yes',
        );
        expect(JSON.stringify(result.json ?? result.stderr)).toMatch(
          /template tpl-linked: .*dataroot \(which leads to .*secret-dataroot\) is not under the templates folder/,
        );
        expect(existsSync(join(root, 'dataroots', 'zeta'))).toBe(false);
        expect(await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'zeta' }).first()).toBeUndefined();
      });
    });

    describe('small ones', () => {
      it("refuses a second row on an instance's tables, and warns of a row that shares the master's login", async () => {
        const add = (prefix: string) =>
          runCli(
            [
              'instances',
              'add',
              '--vhostname=https://eps.campus.example.org',
              '--shortname=eps',
              '--name=Eps',
              `--vdbname=${site.name}`,
              `--vdbprefix=${prefix}`,
              `--vdatapath=${join(root, 'dataroots', 'eps')}`,
              '--vdbhost=127.0.0.1:3306',
              `--vdblogin=${parseMysqlUrl(testServices().mysqlServer).user}`,
            ],
            fx.env,
          );
        const twice = await add('mdl_');
        expect(twice.code).toBe(2);
        expect(twice.stderr).toContain(
          `vdbname: ${site.name} with the prefix mdl_ holds the tables of enabled instance alpha`,
        );
        const shared = await add('eps_');
        expect(shared.code).toBe(0);
        expect(shared.stdout).toContain("Warning: eps uses the master's database login");
        await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'eps' }).delete();
      });

      it('neutralises formula cells in a comparison CSV, as in the results CSV', () => {
        const target = (shortname: string, value: Record<string, string>) =>
          ({
            position: 0,
            shortname,
            status: 'applied',
            message: null,
            returned_value: JSON.stringify(value),
          }) as unknown as TargetRow;
        const csv = comparisonCsv(
          buildComparison('plugin', [target('=HYPERLINK("http://x")', { '@mod_evil': '+1', mod_forum: 'on' })]),
        );
        expect(csv).toContain(`'=HYPERLINK`);
        expect(csv).toContain(`'@mod_evil,'+1`);
        expect(csv).not.toMatch(/(^|,)[=+@-]/m);
      });

      it('says a config.php value built with backticks is one only PHP could work out, and registers nothing', async () => {
        const file = join(root, 'config.php');
        writeFileSync(
          file,
          "<?php\n$CFG = new stdClass();\n$CFG->wwwroot = 'https://delta.campus.example.org';\n$CFG->dataroot = '/srv/delta';\n$CFG->dbtype = 'mariadb';\n$CFG->dbhost = '127.0.0.1';\n$CFG->dbname = 'delta';\n$CFG->dbuser = 'delta';\n$CFG->dbpass = `cat /etc/delta-secret`;\n$CFG->prefix = 'mdl_';\n",
        );
        const result = await cli('instances', 'register', file, '--lint');
        expect(JSON.stringify(result.json)).toContain(
          '$CFG->dbpass (line 9) is built with backticks, a shell command: only PHP could work this out',
        );
        expect(JSON.stringify(result.json)).not.toContain('cat /etc/delta-secret');
      });
    });

    describe('operator SQL reads what the instance owns, nothing else', () => {
      it.each([
        [
          'the registry of the master',
          ['--master'],
          'SELECT vdblogin, vdbpass FROM {local_vmoodle}',
          /local_vmoodle is protected/,
        ],
        [
          'the registry by a schema-qualified name',
          ['--hosts', 'alpha'],
          'SELECT vdbpass FROM MASTER.mdl_local_vmoodle',
          /name tables as \{name\}/,
        ],
        [
          'a bare table name',
          ['--hosts', 'alpha'],
          'SELECT value FROM mdl_config',
          /name tables as \{name\}.*: mdl_config is not/,
        ],
        [
          "the server's accounts",
          ['--hosts', 'alpha'],
          'SELECT user, password FROM mysql.user',
          /name tables as \{name\}/,
        ],
        [
          'a prepared statement',
          ['--hosts', 'alpha'],
          "PREPARE s FROM 'SELECT vdbpass FROM MASTER.mdl_local_vmoodle'",
          /PREPARE statements are not allowed/,
        ],
        [
          'password hashes',
          ['--hosts', 'alpha'],
          'SELECT username, password FROM {user}',
          /user\.password is protected/,
        ],
        [
          'every column of a table holding secrets',
          ['--hosts', 'alpha'],
          'SELECT * FROM {user} WHERE id = 2',
          /user\.password is protected/,
        ],
        ['tokens', ['--hosts', 'alpha'], 'SELECT token FROM {external_tokens}', /external_tokens is protected/],
        [
          'every column of a join with such a table',
          ['--hosts', 'alpha'],
          'SELECT * FROM {user} u JOIN {course} c ON c.id = u.id',
          /user\.password is protected/,
        ],
        [
          'a password told by the rows a write changed',
          ['--hosts', 'alpha'],
          "DELETE FROM {config_log} WHERE name = 'smtppass' AND value LIKE 'S%'",
          /DELETE on \{config_log\} may not read value, which may hold a password/,
        ],
        [
          'a password copied into a readable table',
          ['--hosts', 'alpha'],
          "UPDATE {course} SET fullname = (SELECT value FROM {config} WHERE name = 'smtppass') WHERE id = 1",
          /UPDATE on \{config\} may not read another table/,
        ],
      ])('refuses a returned SELECT of %s before anything is planned', async (_label, target, statement, message) => {
        const runsBefore = (await fx.rt.store.listRuns(1000)).length;
        const result = await cli(
          'run',
          'sql/sql',
          ...target,
          'returned=1',
          `sql=${statement.replace('MASTER', fx.master.name)}`,
          '--yes',
        );
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(message);
        expect((await fx.rt.store.listRuns(1000)).length).toBe(runsBefore);
      });

      it('returns a password setting masked, in the run, its CSV and the audit, from the settings and their log', async () => {
        const conn = await serverConnection();
        await conn.query(
          `INSERT INTO \`${site.name}\`.mdl_config_log (userid, timemodified, plugin, name, value, oldvalue) VALUES (2, 0, NULL, 'smtppass', ?, ?)`,
          [SMTP_SECRET, SMTP_SECRET],
        );
        await conn.end();
        const log = await cli(
          'run',
          'sql/sql',
          '--hosts',
          'alpha',
          'returned=1',
          "sql=SELECT value, oldvalue FROM {config_log} WHERE name = 'smtppass' AND value LIKE 'Smtp%'",
          '--yes',
        );
        expect(log.json.targets[0]).toMatchObject({ status: 'applied', value: '' });
        const result = await cli(
          'run',
          'sql/sql',
          '--hosts',
          'alpha',
          'returned=1',
          "sql=SELECT name, value FROM {config} WHERE name = 'smtppass'",
          '--yes',
        );
        expect(result.json.targets[0].status).toBe('applied');
        const [rows] = await fx.app.masterDb.raw(`SELECT * FROM ${fx.rt.store.t.targets} WHERE run_id = ?`, [
          result.json.run,
        ]);
        expect(JSON.stringify(rows)).not.toContain(SMTP_SECRET);
        // What it returned rests sealed; the run shows it opened.
        expect((rows as Array<{ returned_value: string }>)[0]?.returned_value).toMatch(/^sealed:/);
        expect(JSON.stringify(rows)).not.toContain('smtppass');
        expect(JSON.stringify(result.json)).not.toContain(SMTP_SECRET);
        expect(JSON.stringify(result.json)).toContain('smtppass');
      });

      it('keeps the sql commands for approvers when the RBAC says nothing of them, and SQL on the master for admins', async () => {
        expect((await chat().handle('run sql/sql --hosts alpha sql="SELECT 1"', { id: 'ops' })).text).toMatch(
          /sql commands need the approver role; you are operator/,
        );
        const everyone = new Rbac({ roles: ROLES.roles, categories: { sql: 'operator' } });
        expect((await chat(everyone).handle('run sql/sql --master sql="SELECT 1"', { id: 'ops' })).text).toMatch(
          /SQL on the master needs the admin role; you are operator/,
        );
      });
    });

    describe('paths never leave their root', () => {
      it('neither empties nor removes a cache folder that is a link, and says so', async () => {
        const victim = join(root, 'victim-cache');
        mkdirSync(victim, { recursive: true });
        writeFileSync(join(victim, 'precious.txt'), 'keep me');
        const dataroot = join(root, 'dataroots', 'alpha');
        rmSync(join(dataroot, 'cache'), { recursive: true, force: true });
        symlinkSync(victim, join(dataroot, 'cache'));
        const result = await cli('run', 'generic/purgecaches', '--hosts', 'alpha', '--yes');
        expect(readFileSync(join(victim, 'precious.txt'), 'utf8')).toBe('keep me');
        expect(JSON.stringify(result.json)).toContain(`cache not purged: ${join(dataroot, 'cache')} is a link`);
      });

      it('writes generated config.php files through no link in the output folder', async () => {
        const out = join(root, 'configs');
        mkdirSync(out);
        const victim = join(root, 'victim.txt');
        writeFileSync(victim, 'original');
        symlinkSync(victim, join(out, 'config-alpha.php'));
        const result = await cli('instances', 'generateconfigs', 'alpha', '--out', out, '--replace');
        expect(readFileSync(victim, 'utf8')).toBe('original');
        expect(result.code).toBe(0);
        expect(lstatSync(join(out, 'config-alpha.php')).isSymbolicLink()).toBe(false);
      });

      it("refuses a registry dataroot inside the master's", async () => {
        const result = await cli(
          'instances',
          'edit',
          'alpha',
          `--vdatapath=${join(fx.env.VMOODLE_MASTER_DATAROOT as string, 'sub')}`,
        );
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(/lies in the master's dataroot/);
      });

      it('creates no dataroot through a linked folder under the dataroot root', async () => {
        const outside = join(root, 'outside');
        mkdirSync(outside);
        symlinkSync(outside, join(root, 'dataroots', 'linked'));
        const result = await cli(
          'run',
          'lifecycle/create',
          '--master',
          'template=none',
          'shortname=evil',
          'name=Evil',
          'vhostname=https://evil.campus.example.org',
          `vdbname=${testServices().runId}_evil`,
          `vdatapath=${join(root, 'dataroots', 'linked', 'evil')}`,
          '--yes',
        );
        expect(result.code).not.toBe(0);
        expect(existsSync(join(outside, 'evil'))).toBe(false);
        expect(result.stderr + JSON.stringify(result.json ?? '')).toMatch(
          /which leads to .*outside\/evil\) is not under the allowed dataroot folder/,
        );
      });
    });

    describe('approvals cannot be forged or self-given', () => {
      const requestDestructive = async () => {
        const everyone = new Rbac({ roles: ROLES.roles, categories: { sql: 'operator' } });
        const reply = await chat(everyone).handle(
          "run sql/multisql --hosts alpha sql=\"UPDATE {config} SET value = 'fr' WHERE name = 'lang'\"",
          { id: 'ops' },
        );
        expect(reply.view?.kind).toBe('plan');
        return (reply.view as { plan: { run: { id: number } } }).plan.run.id;
      };

      it("refuses a command-line approval by the requester's own operating-system user", async () => {
        const id = await requestDestructive();
        const result = await cli('runs', 'approve', String(id), 'alpha');
        expect(result.code).not.toBe(0);
        expect(result.stderr).toMatch(/you requested this run as ops/);
        expect((await fx.rt.store.getRun(id)).state).toBe('awaiting_approval');
      });

      it('ignores an RBAC file named by the caller', async () => {
        const id = await requestDestructive();
        const file = join(fx.dataDir, 'mine.yml');
        writeFileSync(file, `roles:\n  approver: [${me}]\n`);
        const result = await runCli(['runs', 'approve', String(id), 'alpha'], { ...fx.env, VMOODLE_RBAC: file });
        expect(result.code).not.toBe(0);
        expect((await fx.rt.store.getRun(id)).state).toBe('awaiting_approval');
      });

      it('refuses a waiting plan rewritten in the master database with its plain hash recomputed', async () => {
        const id = await requestDestructive();
        const run = await fx.rt.store.getRun(id);
        const targets = await fx.rt.store.getTargets(id);
        const params = JSON.parse(run.params) as Record<string, string>;
        params.sql = "UPDATE {config} SET value = 'pwned' WHERE name = 'theme'";
        const canonical = JSON.stringify({
          command: run.command,
          params: Object.entries(params).sort(([a], [b]) => a.localeCompare(b)),
          source: run.source,
          targets: targets.map((t) => [
            t.host_kind,
            t.host_id,
            t.wwwroot,
            t.db_server,
            t.db_name,
            t.db_prefix,
            t.params,
          ]),
        });
        await fx.app
          .masterDb(fx.rt.store.t.runs)
          .where({ id })
          .update({ params: JSON.stringify(params), plan_hash: createHash('sha256').update(canonical).digest('hex') });
        const reply = await chat().handle(`approve ${id} alpha`, { id: 'checker' });
        expect(reply.text).toMatch(/was changed after it was planned/);
        const conn = await serverConnection();
        const [rows] = await conn.query(`SELECT value FROM \`${site.name}\`.mdl_config WHERE name = 'theme'`);
        await conn.end();
        expect((rows as Array<{ value: string }>)[0]?.value).not.toBe('pwned');
      });
    });

    describe('a row moved off a shared login', () => {
      it("gives alpha a login of its own, which reads alpha's tables and not the master's registry", async () => {
        const moved = await cli('instances', 'own-login', 'alpha');
        expect(moved.stderr).toBe('');
        const row = await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'alpha' }).first();
        expect(row.vdblogin).toMatch(/^vmi_[0-9a-f]{12}$/);
        afterAll(async () => {
          const conn = await serverConnection();
          await conn.query("DROP USER IF EXISTS ?@'%', ?@'localhost'", [row.vdblogin, row.vdblogin]);
          await conn.end();
        });
        const login = await mysqlPromise.createConnection({
          host: '127.0.0.1',
          port: 3306,
          user: row.vdblogin,
          password: row.vdbpass,
        });
        try {
          await expect(login.query(`SELECT vdbpass FROM \`${fx.master.name}\`.mdl_local_vmoodle`)).rejects.toThrow(
            /denied/,
          );
        } finally {
          await login.end();
        }
        const read = await cli(
          'run',
          'sql/sql',
          '--hosts',
          'alpha',
          'returned=1',
          'sql=SELECT COUNT(*) AS n FROM {course}',
          '--yes',
        );
        expect(read.json?.targets?.[0]?.status, read.stderr).toBe('applied');
      });
    });
  },
);
