import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backend } from '../../src/verbs/backend.ts';
import { loadConfig } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { appendCronLog, cronLogPath } from '../../src/ops/executor/cron-log.ts';
import { cronTick, lowestGap, roundRobin, runCronJob } from '../../src/ops/schedules/fleet-cron.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { FLEET_SCHEDULES } from '../../src/ops/schedules/index.ts';
import { classifyCron } from '../../src/ops/moodle/host-cron.ts';
import { runCli } from '../support/cli.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import { fakePhp, isRunning, type FakePhp } from '../support/fake-php.ts';
import { opsFixture, registerInstances, type OpsFixture } from '../support/fleet.ts';
import { knownSecret } from '../support/secrets.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

describe("the fleet's cron: which hosts a tick picks", () => {
  it('round robin takes the next hosts by id after the last one, resumes there and wraps', () => {
    const ids = [7, 3, 5, 9, 11];
    expect(roundRobin(ids, 0, 2)).toEqual({ picked: [3, 5], last: 5 });
    expect(roundRobin(ids, 5, 2)).toEqual({ picked: [7, 9], last: 9 });
    expect(roundRobin(ids, 9, 2)).toEqual({ picked: [11, 3], last: 3 });
    expect(roundRobin(ids, 11, 10)).toEqual({ picked: [3, 5, 7, 9, 11], last: 11 });
    expect(roundRobin([], 4, 2)).toEqual({ picked: [], last: 4 });
  });

  it('lowest gap takes the hosts whose last cron is older than the period, the oldest first, at most so many', () => {
    const now = 100_000;
    const hosts = [
      { id: 1, lastcron: now - 100 },
      { id: 2, lastcron: now - 5000 },
      { id: 3, lastcron: 0 },
      { id: 4, lastcron: now - 901 },
      { id: 5, lastcron: now - 3000 },
    ];
    expect(lowestGap(hosts, now, 900, 10)).toEqual([3, 2, 5, 4]);
    expect(lowestGap(hosts, now, 900, 2)).toEqual([3, 2]);
    expect(lowestGap(hosts, now, 10_000, 2)).toEqual([3]);
  });

  it("reads the outcome from Moodle's own lines", () => {
    expect(classifyCron('Server Time: x\nCron run completed correctly\nCron completed at 1', 0)).toBe('completed');
    expect(classifyCron('Cron script completed correctly', 0)).toBe('completed');
    expect(classifyCron('CLI maintenance mode active, cron execution suspended.', 1)).toBe('maintenance');
    expect(classifyCron('Moodle upgrade pending, cron execution suspended.', 1)).toBe('upgrade');
    expect(classifyCron('Cron is disabled. Use --force to override.', 1)).toBe('disabled');
    expect(classifyCron('PHP Fatal error:  Allowed memory size exhausted', 255)).toBe('fatal');
    expect(classifyCron('Arming for https://x\nConfig check : playing for https://x\n', 0)).toBe('empty');
    expect(classifyCron('Something else', 0)).toBe('other');
  });

  it("appends to a host's log and rotates it past its size, keeping five", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmops-cronlog-'));
    for (let i = 0; i < 9; i++) await appendCronLog(dir, 'law', `run ${i} ${'x'.repeat(400)}\n`, 1000);
    const path = cronLogPath(dir, 'law');
    expect(readFileSync(path, 'utf8')).toMatch(/^run 8 /);
    expect(readFileSync(`${path}.1`, 'utf8')).toMatch(/^run 6 .*\nrun 7 /s);
    expect([1, 2, 3, 4].map((i) => existsSync(`${path}.${i}`))).toEqual([true, true, true, true]);
    expect(existsSync(`${path}.5`)).toBe(false);
    for (let i = 9; i < 15; i++) await appendCronLog(dir, 'law', `run ${i} ${'x'.repeat(400)}\n`, 1000);
    expect(existsSync(`${path}.5`)).toBe(true);
    expect(existsSync(`${path}.6`)).toBe(false);
    expect(statSync(path).size).toBeLessThanOrEqual(1000);
  });
});

describe.runIf(testServices().moodleDump)("the fleet's cron through VMoodle's wrapper on the node", () => {
  let fx: OpsFixture;
  let fake: FakePhp;
  let db: string;
  const names = ['r1', 'r2', 'r3', 'r4', 'r5', 'cronmaint-m1', 'slow-h1', 'cronempty-e1'];
  const hostArgs = (since: number) =>
    fake
      .records()
      .sort((a, b) => a.start - b.start)
      .slice(since)
      .map((r) =>
        (r.argv.find((a) => a.startsWith('--host=')) as string).replace(
          /^--host=https:\/\/|\.campus\.example\.org$/g,
          '',
        ),
      );
  const registryRow = async (shortname: string) =>
    fx.app.masterDb(fx.rt.registry.table).where({ shortname }).first('id', 'lastcron', 'lastcrongap', 'croncount');
  // Each cron is a stand-in PHP process: under a full suite on two cores, two of them can take longer than 10 s.
  const until = <T>(what: string, probe: () => Promise<T | undefined>) => waitFor(what, probe, { timeoutMs: 30_000 });

  beforeAll(async () => {
    fake = fakePhp({ delayMs: 300 });
    const base = mkdtempSync(join(tmpdir(), 'vmops-vcron-'));
    const nodes = join(base, 'nodes.yml');
    writeFileSync(
      nodes,
      `web1:\n  code_root: ${fake.codeRoot}\n  dataroots: [${join(base, 'web1')}]\n  php: ${fake.php}\n  max_php: 4\n`,
    );
    fx = await opsFixture('vcron', undefined, {
      VMOODLE_NODES: nodes,
      VMOODLE_CRON_PER_TICK: '2',
      VMOODLE_CRON_TIMEOUT: '2',
      VMOODLE_CRON_LOG_DIR: join(base, 'logs'),
    });
    const database = await createDatabase('vcron');
    db = database.name;
    const prefixes = await thinInstances(db, names.length, {
      tables: ['config', 'config_log', 'config_plugins', 'course'],
      rowsOf: ['config', 'course'],
    });
    await registerInstances(
      fx,
      names.map((shortname, i) => ({
        shortname,
        database: db,
        prefix: prefixes[i] as string,
        dataroot: join(base, 'web1', shortname),
      })),
    );
    const worker = new ExecutorWorker(fx.rt, { node: 'web1', schedules: FLEET_SCHEDULES });
    afterAll(() => worker.close());
    await worker.waitUntilReady();
  });

  it('runs round-robin ticks in registry order, resuming after the last host, and keeps the counters as VMoodle does', async () => {
    const since = fake.records().length;
    const at = Date.now();
    const ids = new Map(
      await Promise.all(['r1', 'r2', 'r3', 'r4', 'r5'].map(async (n) => [n, (await registryRow(n)).id] as const)),
    );
    // Only the five plain hosts are enabled for this round; the others are for the tests after it.
    await fx.app
      .masterDb(fx.rt.registry.table)
      .whereNotIn('shortname', ['r1', 'r2', 'r3', 'r4', 'r5'])
      .update({ enabled: 0 });
    expect(await cronTick(fx.rt, at)).toEqual([ids.get('r1'), ids.get('r2')]);
    expect(await cronTick(fx.rt, at + 60_000)).toEqual([ids.get('r3'), ids.get('r4')]);
    // A minute apart in life: here, once those have run (r1 still running would be left to run alone).
    await until('four crons', async () => (fake.records().filter((r) => r.end).length - since >= 4 ? true : undefined));
    expect(await cronTick(fx.rt, at + 120_000)).toEqual([ids.get('r5'), ids.get('r1')]);
    await until('six crons', async () => (fake.records().filter((r) => r.end).length - since >= 6 ? true : undefined));
    await until('the counters', async () => (Number((await registryRow('r1')).croncount) === 2 ? true : undefined));
    expect(hostArgs(since).sort()).toEqual(['r1', 'r1', 'r2', 'r3', 'r4', 'r5']);
    for (const record of fake.records().slice(since))
      expect(record.argv.slice(0, 2)).toEqual([join(fake.codeRoot, 'local/vmoodle/cli/cron.php'), record.argv[1]]);
    const r1 = await registryRow('r1');
    const starts = fake
      .records()
      .filter((r) => r.argv[1] === '--host=https://r1.campus.example.org')
      .map((r) => r.start)
      .sort();
    // lastcron is when the last one started (in seconds), lastcrongap the time between the two starts.
    expect(Number(r1.lastcron)).toBeGreaterThanOrEqual(Math.floor((starts[1] as number) / 1000) - 1);
    expect(Number(r1.lastcrongap)).toBeLessThanOrEqual(
      Math.ceil(((starts[1] as number) - (starts[0] as number)) / 1000) + 1,
    );
    expect(Number((await registryRow('r3')).croncount)).toBe(1);
    // Moodle's keep-alive loop was turned off once, as cfg.php sets it.
    const conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    const prefix = (await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'r1' }).first('vdbprefix'))
      .vdbprefix;
    const [rows] = await conn.query(`SELECT value FROM \`${db}\`.\`${prefix}config\` WHERE name = 'cron_keepalive'`);
    const [log] = await conn.query(
      `SELECT name, value, oldvalue FROM \`${db}\`.\`${prefix}config_log\` WHERE name = 'cron_keepalive'`,
    );
    await conn.end();
    expect(rows).toEqual([{ value: '0' }]);
    expect(log).toEqual([{ name: 'cron_keepalive', value: '0', oldvalue: '180' }]);
    const text = readFileSync(cronLogPath(fx.rt.config.cron.logDir, 'r1'), 'utf8');
    expect(text.match(/^== .* completed in \d+\.\d s.* ==$/gm)).toHaveLength(2);
    expect(text).toContain('Cron run completed correctly');
  });

  it('never runs one host twice at once, whichever of two workers takes it', async () => {
    const other = new Backend(loadConfig(fx.env));
    try {
      const rt2 = await other.ops();
      const id = (await registryRow('r2')).id;
      const since = fake.records().length;
      const outcomes = await Promise.all([runCronJob(fx.rt, id), runCronJob(rt2, id)]);
      expect(outcomes.sort()).toEqual(['busy', 'completed']);
      expect(fake.records().length - since).toBe(1);
    } finally {
      await other.close();
    }
  });

  it('reports a refusal and an empty run, stops a hung cron at its timeout, and alerts once per change', async () => {
    await fx.app.masterDb(fx.rt.registry.table).update({ enabled: 1 });
    await fx.rt.redis.del(fx.rt.keys.alerts());
    const id = async (n: string) => Number((await registryRow(n)).id);
    expect(await runCronJob(fx.rt, await id('cronmaint-m1'))).toBe('maintenance');
    expect(await runCronJob(fx.rt, await id('cronmaint-m1'))).toBe('maintenance');
    expect(await runCronJob(fx.rt, await id('cronempty-e1'))).toBe('empty');
    const started = Date.now();
    expect(await runCronJob(fx.rt, await id('slow-h1'))).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(10_000);
    const hung = fake.records().find((r) => r.argv[1] === '--host=https://slow-h1.campus.example.org');
    expect(isRunning(hung?.pid as number)).toBe(false);
    expect(readFileSync(cronLogPath(fx.rt.config.cron.logDir, 'slow-h1'), 'utf8')).toMatch(
      /^== .* timeout in \d+\.\d s \(.*stopped after 2 s with every process it started\) ==$/m,
    );
    const alerts = (await fx.rt.redis.lrange(fx.rt.keys.alerts(), 0, -1)).map((a) => JSON.parse(a).text as string);
    expect(alerts).toEqual([
      expect.stringMatching(/^Cron of cronmaint-m1 \(https:\/\/cronmaint-m1\.campus\.example\.org\): maintenance/),
      expect.stringMatching(/^Cron of cronempty-e1 .*: empty/),
      expect.stringMatching(/^Cron of slow-h1 .*: timeout/),
    ]);
    const status = await runCli(['cron', 'status'], fx.env);
    expect(status.stdout).toMatch(/slow-h1\s+.*timeout/);
    expect(status.stdout).toMatch(/cronmaint-m1\s+.*maintenance/);
  });
});

describe.runIf(testServices().moodleDump)("a host's cron over HTTP", () => {
  let fx: OpsFixture;
  let server: Server;
  const seen: Array<{ method: string; url: string; body: string }> = [];
  const PASSWORD = knownSecret('Cr0n-Pa55word-http');

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req
        .on('data', (c) => (body += c))
        .on('end', () => {
          seen.push({ method: req.method ?? '', url: req.url ?? '', body });
          const ok = new URLSearchParams(body).get('password') === PASSWORD;
          res
            .writeHead(ok ? 200 : 403, { 'content-type': 'text/html' })
            .end(ok ? '<pre>Server Time: x\nCron run completed correctly\n</pre>' : 'Sorry');
        });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    fx = await opsFixture('webcron');
    const database = await createDatabase('webcron');
    const [prefix] = await thinInstances(database.name, 1, {
      tables: ['config', 'config_log', 'config_plugins', 'course'],
      rowsOf: ['config', 'course'],
    });
    await registerInstances(fx, [{ shortname: 'web', database: database.name, prefix: prefix as string }]);
    await fx.app
      .masterDb(fx.rt.registry.table)
      .where({ shortname: 'web' })
      .update({ vhostname: `http://127.0.0.1:${port}/moodle` });
    const conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    await conn.query(
      `UPDATE \`${database.name}\`.\`${prefix}config\` SET value = ? WHERE name = 'cronremotepassword'`,
      [PASSWORD],
    );
    await conn.end();
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('POSTs the site cron password to admin/cron.php, never in the address, and counts the run', async () => {
    const result = await runCli(['--json', 'run', 'cron/run', '--hosts', 'web', 'via=http', '--yes'], fx.env);
    expect(JSON.parse(result.stdout).targets[0]).toMatchObject({
      status: 'applied',
      message: expect.stringMatching(/^completed in \d+\.\d s; cron_keepalive set to 0/),
    });
    expect(seen).toEqual([{ method: 'POST', url: '/moodle/admin/cron.php', body: `password=${PASSWORD}` }]);
    expect(
      Number((await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'web' }).first('croncount')).croncount),
    ).toBe(1);
    expect(result.stdout).not.toContain(PASSWORD);
  });
});
