import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, PROJECT_ROOT } from '../../src/core/config.ts';
import { createPlan, type PlanRequest } from '../../src/ops/executor/planner.ts';
import { placeTargets } from '../../src/ops/executor/placement.ts';
import type { ProgressEvent } from '../../src/ops/executor/progress.ts';
import { cancelRun, startRun } from '../../src/ops/executor/run-actions.ts';
import { FINAL_STATES, type RunRow, type TargetRow } from '../../src/ops/executor/run-model.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { findCommand } from '../../src/ops/commands/index.ts';
import { nodeOfDataroot, parseNodes } from '../../src/core/nodes.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import { fakePhp, type FakePhp, type PhpRecord } from '../support/fake-php.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { runCli } from '../support/cli.ts';
import { testServices } from '../support/services.ts';
import { Backend } from '../../src/verbs/backend.ts';
import { startSlackBot } from '../../src/bot/slack/app.ts';
import { Rbac } from '../../src/verbs/rbac.ts';
import {
  FakeSlackApi,
  interactionBody,
  signedPost,
  slashBody,
  viewSubmission,
  type RecordedCall,
} from '../support/slack.ts';
import { knownSecret } from '../support/secrets.ts';
import { CONFIG_IN_REDIS, mucConfigPhp, redisStorePhp } from '../support/muc.ts';

const SLACK_SECRET = knownSecret('0123456789abcdef-nodes');

function nodesFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'vmops-nodes-')), 'nodes.yml');
  writeFileSync(path, text);
  return path;
}

describe('the nodes file', () => {
  const load = (text: string) => loadConfig({ VMOODLE_NODES: nodesFile(text) }).nodes;

  it('reads nodes and finds an instance by the longest dataroot prefix, on path boundaries', () => {
    const nodes = load(
      'web1:\n  code_root: /var/www/moodle/\n  dataroots: [/srv/data]\n  max_php: 2\nweb2:\n  code_root: /var/www/moodle\n  dataroots: [/srv/data/big]\n',
    );
    expect(nodes).toEqual([
      { name: 'web1', codeRoot: '/var/www/moodle', dataroots: ['/srv/data'], php: '/usr/bin/php', maxPhp: 2 },
      { name: 'web2', codeRoot: '/var/www/moodle', dataroots: ['/srv/data/big'], php: '/usr/bin/php', maxPhp: 4 },
    ]);
    expect(nodeOfDataroot(nodes, '/srv/data/a1')?.name).toBe('web1');
    expect(nodeOfDataroot(nodes, '/srv/data/big/a2/')?.name).toBe('web2');
    expect(nodeOfDataroot(nodes, '/srv/database/a3')).toBeUndefined();
    expect(nodeOfDataroot(nodes, undefined)).toBeUndefined();
  });

  it('names what is wrong in a nodes file', () => {
    expect(() => load('web1:\n  code_root: relative/path\n  dataroots: [/srv]\n')).toThrow(
      'node web1: code_root: expected an absolute path',
    );
    expect(() => load('web1:\n  code_root: /m\n  dataroots: []\n')).toThrow(
      'node web1: dataroots: expected a list of absolute path prefixes',
    );
    expect(() => load('web1:\n  code_root: /m\n  dataroots: [/srv]\n  maxphp: 3\n')).toThrow(
      'node web1: unknown keys maxphp',
    );
    expect(() => load('web1:\n  code_root: /m\n  dataroots: [/srv]\n  max_php: 0\n')).toThrow(
      'node web1: max_php: expected',
    );
    expect(() => load('web 1:\n  code_root: /m\n  dataroots: [/srv]\n')).toThrow("node 'web 1': a name holds only");
    expect(() => load('a:\n  code_root: /m\n  dataroots: [/srv]\nb:\n  code_root: /m\n  dataroots: [/srv/]\n')).toThrow(
      'nodes a and b both claim /srv',
    );
    expect(() => loadConfig({ VMOODLE_NODES: '/nonexistent/nodes.yml' })).toThrow(
      /^VMOODLE_NODES: expected the path of the nodes YAML file .*cannot read \/nonexistent\/nodes\.yml/,
    );
  });

  it("refuses work through Moodle's PHP when no nodes are configured", () => {
    expect(() => placeTargets([], findCommand('generic/purgecaches'), { via: 'php' }, [])).toThrow(
      "generic/purgecaches with these parameters runs Moodle's PHP on the node that holds each instance, and no nodes are configured (set VMOODLE_NODES to a nodes file)",
    );
    expect(parseNodes(null)).toEqual([]);
  });
});

const request = (command: string, params: Record<string, string>, hosts: string[]): PlanRequest => ({
  command,
  params,
  selector: { tohosts: hosts },
  requestedBy: 'tester',
  via: 'cli',
});

describe.runIf(testServices().moodleDump)('work on nodes', () => {
  let fx: OpsFixture;
  let fake: FakePhp;
  let base: string;
  const children: ChildProcess[] = [];

  const finished = async (runId: number): Promise<{ run: RunRow; targets: TargetRow[] }> => {
    await fx.rt.progress.follow(
      runId,
      () => undefined,
      (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
    );
    return { run: await fx.rt.store.getRun(runId), targets: await fx.rt.store.getTargets(runId) };
  };
  const started = async (command: string, params: Record<string, string>, hosts: string[]) => {
    const plan = await createPlan(fx.rt, request(command, params, hosts));
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    return plan;
  };
  const firstWaiting = async (runId: number): Promise<Extract<ProgressEvent, { type: 'waiting' }>> => {
    let found: ProgressEvent | undefined;
    await fx.rt.progress.follow(
      runId,
      (e) => void (found = e),
      (e) => e.type === 'waiting',
    );
    return found as Extract<ProgressEvent, { type: 'waiting' }>;
  };
  const nodeWorker = (node: string): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/vmoodle.js'), 'worker', '--node', node], {
      env: { ...process.env, ...fx.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    return new Promise((resolve, reject) => {
      child.stdout?.on('data', (d) => String(d).includes('ready') && resolve(child));
      child.once('exit', (code) => reject(new Error(`worker --node ${node} exited with ${code}`)));
    });
  };
  const ranFor = (shortname: string): PhpRecord[] =>
    fake.records().filter((r) => r.argv.includes(`--host=https://${shortname}.campus.example.org`));

  beforeAll(async () => {
    fake = fakePhp({ delayMs: 400 });
    base = mkdtempSync(join(tmpdir(), 'vmops-nodedata-'));
    const node = (name: string, maxPhp: number) =>
      `${name}:\n  code_root: ${fake.codeRoot}\n  dataroots: [${join(base, name)}]\n  php: ${fake.php}\n  max_php: ${maxPhp}\n`;
    fx = await opsFixture('nodes', undefined, {
      VMOODLE_NODES: nodesFile(node('web1', 4) + node('web2', 2) + node('web3', 4)),
      VMOODLE_TARGET_TIMEOUT: '5',
    });
    const onNode: Record<string, string[]> = {
      web1: ['a1', 'a2', 's1', 's2'],
      web2: ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10'],
      web3: ['w1', 'w2', 'w3'],
    };
    const specs = Object.entries(onNode).flatMap(([name, shortnames]) =>
      shortnames.map((s) => ({ shortname: s, dataroot: join(base, name, s) })),
    );
    specs.push({ shortname: 'o1', dataroot: '/elsewhere/o1' });
    const db = await createDatabase('nodes');
    const prefixes = await thinInstances(db.name, specs.length, {
      tables: ['config', 'config_log', 'config_plugins', 'course', 'user'],
      rowsOf: ['config', 'course'],
    });
    await registerInstances(
      fx,
      specs.map((s, i) => ({ ...s, database: db.name, prefix: prefixes[i] as string })),
    );
    startWorker(fx);
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  });

  it('says in the preview which way and where each target is purged, and leaves out an instance outside every node', async () => {
    const php = await createPlan(fx.rt, request('generic/purgecaches', { via: 'php' }, ['a1', 'o1']));
    expect(php.targets.map((t) => [t.shortname, t.node, t.preview_note])).toEqual([
      ['a1', 'web1', "Moodle's purge_caches (VMoodle's CLI wrapper) · through Moodle's PHP on node web1"],
    ]);
    expect(php.leftOut).toEqual([
      `left out o1 (https://o1.campus.example.org): its dataroot /elsewhere/o1 is under no configured node (web1: ${base}/web1; web2: ${base}/web2; web3: ${base}/web3)`,
    ]);
    const sql = await createPlan(fx.rt, request('generic/purgecaches', {}, ['a1']));
    expect(sql.targets[0]?.preview_note).toBe('revisions, course cacherev and cache folders · on node web1');
    const cli = await runCli(['plan', 'generic/purgecaches', '--hosts', 'o1', 'via=php'], fx.env);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain(
      'no node holds any of the 1 targets: left out o1 (https://o1.campus.example.org): its dataroot /elsewhere/o1 is under no configured node',
    );
  });

  it('refuses to start a worker for a node that is not configured', async () => {
    const result = await runCli(['worker', '--node', 'web9'], fx.env);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      "vmoodle: node 'web9' is not configured (configured: web1, web2, web3) [config]; the README's configuration table lists every setting\n",
    );
  });

  it('reports node work with no worker as waiting, then runs it when vmoodle worker --node starts', async () => {
    const plan = await started('generic/purgecaches', { via: 'php' }, ['a1', 'a2']);
    const waiting = await firstWaiting(plan.run.id);
    expect(waiting).toMatchObject({
      node: 'web1',
      targets: 2,
      message: 'waiting for node web1: no worker serves it (start one there: vmoodle worker --node web1)',
    });
    const shown = JSON.parse((await runCli(['--json', 'runs', 'show', String(plan.run.id)], fx.env)).stdout);
    expect(shown.targets.map((t: { status: string; message: string }) => [t.status, t.message])).toEqual([
      ['pending', waiting.message],
      ['pending', waiting.message],
    ]);
    expect(ranFor('a1')).toHaveLength(0);

    await nodeWorker('web1');
    const { run, targets } = await finished(plan.run.id);
    expect(run.state).toBe('succeeded');
    expect(targets.map((t) => [t.shortname, t.status, t.message])).toEqual([
      [
        'a1',
        'applied',
        expect.stringMatching(/^purge_caches\.php ran for https:\/\/a1\.campus\.example\.org \(0\.\d s\)$/),
      ],
      ['a2', 'applied', expect.stringMatching(/^purge_caches\.php ran for https:\/\/a2\.campus\.example\.org/)],
    ]);
    for (const shortname of ['a1', 'a2']) {
      const [record] = ranFor(shortname);
      expect(record?.argv).toEqual([
        `${fake.codeRoot}/local/vmoodle/cli/purge_caches.php`,
        `--host=https://${shortname}.campus.example.org`,
      ]);
      expect(Object.keys(record?.env ?? {}).sort()).toEqual(['LANG', 'PATH']);
      expect(JSON.stringify(record)).not.toContain(fx.env.VMOODLE_SECRET_KEYS?.split(':')[1] as string);
    }
  });

  it("never runs more of Moodle's PHP at once on a node than its cap, across two workers", async () => {
    const inProcess = new ExecutorWorker(fx.rt, { node: 'web2' });
    try {
      await Promise.all([nodeWorker('web2'), inProcess.waitUntilReady()]);
      const names = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10'];
      const plan = await started('generic/purgecaches', { via: 'php' }, names);
      const { run } = await finished(plan.run.id);
      expect(run.state).toBe('succeeded');
      const records = names.flatMap(ranFor);
      expect(records).toHaveLength(10);
      const moments = records
        .flatMap((r) => [
          [r.start, 1],
          [r.end as number, -1],
        ])
        .sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number));
      let running = 0;
      let most = 0;
      for (const [, change] of moments) most = Math.max(most, (running += change as number));
      expect(most).toBe(2);
      expect(new Set(records.map((r) => r.ppid)).size).toBe(2);
    } finally {
      await inProcess.close();
    }
  });

  it('fails node work that no worker took within the target timeout, and the run ends', async () => {
    const plan = await started('generic/purgecaches', { via: 'php' }, ['w1']);
    expect((await firstWaiting(plan.run.id)).node).toBe('web3');
    expect((await fx.rt.store.getTargets(plan.run.id))[0]?.status).toBe('pending');
    const { run, targets } = await finished(plan.run.id);
    expect(run.state).toBe('failed');
    expect(targets[0]).toMatchObject({
      status: 'failed',
      message:
        'not started: no worker of node web3 took it within 5 s (start one there: vmoodle worker --node web3, then retry the run)',
    });
    expect(ranFor('w1')).toHaveLength(0);
  });

  it('ends a cancelled run whose node has no worker', async () => {
    const plan = await started('generic/purgecaches', { via: 'php' }, ['w2']);
    await firstWaiting(plan.run.id);
    await cancelRun(fx.rt, plan.run.id, 'tester');
    const { run, targets } = await finished(plan.run.id);
    expect(run.state).toBe('cancelled');
    expect(targets[0]).toMatchObject({ status: 'cancelled', message: 'not started: the run was cancelled' });
  });

  it("shows Slack the node each target runs on, and says in the run's thread what waits for a node", async () => {
    const api = new FakeSlackApi();
    await api.start();
    const app = new Backend(loadConfig({ ...fx.env, SLACK_API_URL: api.url }));
    const bot = await startSlackBot(
      app,
      new Rbac({ roles: { admin: ['UADMIN'] } }),
      { threshold: 50, ttlMs: 60_000 },
      { signingSecret: SLACK_SECRET, botToken: 'xoxb-nodes', port: 0 },
    );
    try {
      await signedPost(bot.url, SLACK_SECRET, slashBody('UADMIN', 'run generic/purgecaches --hosts w3 via=php'));
      await bot.idle();
      const filled = (api.of('views.update').at(-1) as RecordedCall).params.view as {
        private_metadata: string;
        blocks: unknown[];
      };
      expect(JSON.stringify(filled.blocks)).toContain(
        "w3: (Moodle's purge_caches (VMoodle's CLI wrapper) · through Moodle's PHP on node web3)",
      );
      await signedPost(
        bot.url,
        SLACK_SECRET,
        interactionBody(viewSubmission('UADMIN', 'plan_modal', filled.private_metadata, {})),
      );
      await bot.idle();
      const thread = api.of('chat.postMessage').map((c) => c.params.text as string);
      expect(thread).toContain(
        ':hourglass: 1 target waiting for node web3: no worker serves it (start one there: vmoodle worker --node web3)',
      );
      expect(thread.at(-1)).toMatch(
        /^Run \d+ failed: 1 failed\n• failed: not started: no worker of node web3 took it within 5 s/,
      );
    } finally {
      await bot.close();
      await app.close();
      await api.close();
    }
  });

  it('runs cache-purging writes on the node, and refuses a target whose dataroot left the node after the plan', async () => {
    const plan = await createPlan(
      fx.rt,
      request('generic/setconfig', { key: 'theme', value: 'classic' }, ['s1', 's2']),
    );
    expect(plan.targets.map((t) => t.node)).toEqual(['web1', 'web1']);
    await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 's1' }).update({ vdatapath: '/elsewhere/s1' });
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    const { targets } = await finished(plan.run.id);
    expect(targets.map((t) => [t.shortname, t.status, t.message])).toEqual([
      [
        's1',
        'failed',
        expect.stringMatching(/^refused: its dataroot \/elsewhere\/s1 is under no configured node \(web1: /),
      ],
      ['s2', 'applied', null],
    ]);
  });

  it("reports a setting forced by the node's config.php or VMoodle's defaults file, in the preview and as a warning", async () => {
    writeFileSync(
      join(fake.codeRoot, 'config.php'),
      `<?php
unset($CFG);
global $CFG;
$CFG = new stdClass();
$CFG->dbpass = 'not read';
$CFG->forcelogin = 1;
$CFG->vmoodlehardchildsdefaults = 'campus';
$CFG->forced_plugin_settings = array('auth_ldap' => array('host_url' => 'ldap://x'));
require_once(__DIR__ . '/lib/setup.php');
`,
    );
    mkdirSync(join(fake.codeRoot, 'local'), { recursive: true });
    writeFileSync(
      join(fake.codeRoot, 'local', 'defaults_campus.php'),
      "<?php\n$CFG->forced_plugin_settings['auth_cas']['hostname'] = 'cas.example.org';\n",
    );
    const forced = 'forced by config: the database value has no effect';
    const cases: Array<[string, Record<string, string>, boolean]> = [
      ['generic/setconfig', { key: 'forcelogin', value: '1' }, true],
      ['generic/setpluginconfig', { pkey: 'auth_ldap/host_url', pvalue: 'ldap://y' }, true],
      ['generic/setpluginconfig', { pkey: 'auth_cas/hostname', pvalue: 'cas2' }, true],
      ['generic/setconfig', { key: 'theme', value: 'boost' }, false],
    ];
    for (const [command, params, isForced] of cases) {
      const plan = await started(command, params, ['s2']);
      expect(plan.targets[0]?.preview_note ?? '').toBe(isForced ? `${forced} · on node web1` : 'on node web1');
      const { targets } = await finished(plan.run.id);
      expect([targets[0]?.status, targets[0]?.message]).toEqual(
        isForced ? ['applied_forced', forced] : ['applied', null],
      );
    }

    writeFileSync(
      join(fake.codeRoot, 'config.php'),
      "<?php\n$CFG = new stdClass();\n$CFG->vmoodlehardchildsdefaults = 'campus';\n$CFG->vmoodlehardchildsdefaultsexclude = '^https://s2\\.';\n",
    );
    const excluded = await createPlan(
      fx.rt,
      request('generic/setpluginconfig', { pkey: 'auth_cas/hostname', pvalue: 'cas3' }, ['a1', 's2']),
    );
    expect(excluded.targets.map((t) => [t.shortname, t.preview_note])).toEqual([
      ['a1', `${forced} · on node web1`],
      ['s2', 'on node web1'],
    ]);
    await cancelRun(fx.rt, excluded.run.id, 'tester');
  });

  it("purges the cache folders the node's config.php names, not the dataroot's old ones", async () => {
    writeFileSync(
      join(fake.codeRoot, 'config.php'),
      "<?php\n$CFG = new stdClass();\n$CFG->cachedir = $CFG->dataroot . '/muc-cache';\n$CFG->localcachedir = '/nonexistent-local/' . 'cache';\n",
    );
    const dataroot = join(base, 'web1', 's2');
    for (const dir of ['muc-cache/cachestore_file', 'cache/cachestore_file']) {
      mkdirSync(join(dataroot, dir), { recursive: true });
      writeFileSync(join(dataroot, dir, 'x.cache'), 'cached');
    }
    const plan = await started('generic/purgecaches', {}, ['s2']);
    const { targets } = await finished(plan.run.id);
    expect(targets[0]?.status).toBe('applied');
    expect(existsSync(join(dataroot, 'muc-cache', 'cachestore_file'))).toBe(false);
    expect(existsSync(join(dataroot, 'cache', 'cachestore_file', 'x.cache'))).toBe(true);
  });

  it("purges through Moodle's PHP on the node a cache store it cannot reach, within the node's PHP cap, following altcacheconfigpath", async () => {
    const alt = mkdtempSync(join(tmpdir(), 'vmops-muc-'));
    writeFileSync(
      join(fake.codeRoot, 'config.php'),
      `<?php\n$CFG = new stdClass();\n$CFG->altcacheconfigpath = '${alt}';\n`,
    );
    writeFileSync(
      join(alt, 'cacheconfig.php'),
      mucConfigPhp('f3b6c2a1d4e5f60718293a4b5c6d7e8f', redisStorePhp('127.0.0.1:1', 'gone_'), CONFIG_IN_REDIS),
    );
    const names = ['c1', 'c2', 'c3', 'c4', 'c5'];
    for (const name of names) mkdirSync(join(base, 'web2', name), { recursive: true });
    const since = Date.now();
    const plan = await started('generic/setconfig', { key: 'forcelogin', value: '1' }, names);
    const { run, targets } = await finished(plan.run.id);
    expect(run.state).toBe('succeeded');
    expect(targets.map((t) => [t.status, t.message])).toEqual(
      names.map(() => [
        'applied',
        'cache store "redis_store" (redis) at 127.0.0.1:1 could not be reached: ECONNREFUSED: purged by Moodle\'s purge_caches on the node instead',
      ]),
    );
    const records = names.flatMap(ranFor).filter((r) => r.start >= since);
    expect(records.map((r) => r.argv[0])).toEqual(
      names.map(() => `${fake.codeRoot}/local/vmoodle/cli/purge_caches.php`),
    );
    const moments = records
      .flatMap((r) => [
        [r.start, 1],
        [r.end as number, -1],
      ])
      .sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number));
    let running = 0;
    let most = 0;
    for (const [, change] of moments) most = Math.max(most, (running += change as number));
    expect(most).toBe(2);
  });

  it("gives the CLI maintenance file the node's config.php filepermissions", async () => {
    writeFileSync(join(fake.codeRoot, 'config.php'), '<?php\n$CFG = new stdClass();\n$CFG->filepermissions = 0640;\n');
    const { targets } = await finished(
      (await started('generic/maintenance', { mmode: '1', climaintenance: '1' }, ['c6'])).run.id,
    );
    expect(targets[0]?.status).toBe('applied');
    expect(statSync(join(base, 'web2', 'c6', 'climaintenance.html')).mode & 0o777).toBe(0o640);
  });
});
