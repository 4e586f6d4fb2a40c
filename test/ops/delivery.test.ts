import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { FINAL_STATES, type RunRow, type TargetRow } from '../../src/ops/executor/run-model.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { deliveryLayout, readState } from '../../src/ops/delivery/state.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import { fakePhp, type FakePhp, type PhpRecord } from '../support/fake-php.ts';
import { opsFixture, registerInstances, type OpsFixture } from '../support/fleet.ts';
import { releaseFiles, releaseRepo, servedDirectory, treeFiles } from '../support/code-trees.ts';
import { testServices } from '../support/services.ts';
import { runCli } from '../support/cli.ts';
import { Backend } from '../../src/verbs/backend.ts';
import { startSlackBot } from '../../src/bot/slack/app.ts';
import { loadConfig } from '../../src/core/config.ts';
import { confirmationText } from '../../src/ops/executor/approvals.ts';
import { Rbac } from '../../src/verbs/rbac.ts';
import {
  approvalSubmission,
  buttonPayload,
  FakeSlackApi,
  interactionBody,
  signedPost,
  slashBody,
  type RecordedCall,
} from '../support/slack.ts';
import { knownSecret } from '../support/secrets.ts';
import { passTime, waitFor } from '../support/wait.ts';

const SLACK_SECRET = knownSecret('0123456789abcdef-delivery');

describe.runIf(testServices().moodleDump)('delivery across two web nodes', () => {
  let fx: OpsFixture;
  let fake: FakePhp;
  const code: Record<string, string> = {};
  const workers: Record<string, ExecutorWorker> = {};
  let opcacheLog: string;

  const layout = (node: string) =>
    deliveryLayout(fx.rt.config.nodes.find((n) => n.name === node) as (typeof fx.rt.config.nodes)[number]);
  const served = (node: string) => readlinkSync(join(code[node] as string));
  const plan = (command: string, params: Record<string, string> = {}) =>
    createPlan(fx.rt, { command, params, selector: { master: true }, requestedBy: 'alice', via: 'cli' });
  const start = async (command: string, params: Record<string, string> = {}) => {
    const planned = await plan(command, params);
    await startRun(fx.rt, planned.run.id, 'alice', planned.run.plan_hash);
    return planned.run.id;
  };
  const finished = async (runId: number): Promise<{ run: RunRow; target: TargetRow }> => {
    await fx.rt.progress.follow(
      runId,
      () => undefined,
      (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
    );
    return { run: await fx.rt.store.getRun(runId), target: (await fx.rt.store.getTargets(runId))[0] as TargetRow };
  };
  const run = async (command: string, params: Record<string, string> = {}) => finished(await start(command, params));
  const upgrades = (flag: string): PhpRecord[] =>
    fake.records().filter((r) => r.argv[0]?.endsWith('/upgrade.php') && r.argv.includes(flag));
  const startNodeWorker = async (node: string) => {
    workers[node] = new ExecutorWorker(fx.rt, { node });
    await workers[node].waitUntilReady();
  };
  const reported = async (node: string) => {
    await waitFor(
      `node ${node}'s report`,
      async () => (await fx.rt.redis.get(fx.rt.keys.deliveryState(node))) ?? undefined,
    );
  };

  beforeAll(async () => {
    const base = mkdtempSync(join(tmpdir(), 'vmops-delivery-'));
    fake = fakePhp({ maintenanceUnder: base });
    const repo = releaseRepo();
    opcacheLog = join(base, 'opcache.log');
    const nodes = ['web1', 'web2'].map((name) => {
      code[name] = servedDirectory(repo, name);
      return `${name}:\n  code_root: ${code[name]}\n  dataroots: [${join(base, name)}]\n  php: ${fake.php}\n  max_php: 2\n  opcache_reset: [/bin/sh, -c, 'echo ${name} >> ${opcacheLog}']\n`;
    });
    const nodesFile = join(base, 'nodes.yml');
    writeFileSync(nodesFile, nodes.join(''));
    fx = await opsFixture('delivery', undefined, { VMOODLE_NODES: nodesFile });
    const specs = [
      { shortname: 'a1', dataroot: join(base, 'web1', 'a1') },
      { shortname: 'a2', dataroot: join(base, 'web1', 'a2') },
      { shortname: 'b1', dataroot: join(base, 'web2', 'b1') },
      { shortname: 'd1', dataroot: join(base, 'web2', 'd1'), enabled: false },
      { shortname: 'upfails_b2', dataroot: join(base, 'web2', 'b2'), enabled: false },
    ];
    const db = await createDatabase('delivery');
    const prefixes = await thinInstances(db.name, specs.length, {
      tables: ['config', 'course'],
      rowsOf: ['config', 'course'],
    });
    await registerInstances(
      fx,
      specs.map((s, i) => ({ ...s, database: db.name, prefix: prefixes[i] as string })),
    );
    await startNodeWorker('web1');
    await startNodeWorker('web2');
    await Promise.all([reported('web1'), reported('web2')]);
  });
  afterAll(async () => {
    await Promise.all(Object.values(workers).map((w) => w.close()));
  });

  it('refuses any step before the nodes are converted, naming the node and what it allows', async () => {
    await expect(plan('delivery/secure')).rejects.toThrow(
      'secure is not allowed now: node web1 is not converted yet and allows convert',
    );
    await expect(plan('delivery/steps', { steps: 'convert,switch' })).rejects.toThrow(
      'switch is not allowed at that point of convert, switch: node web1 is in production with no SAVE copy secured since the code last changed and allows secure',
    );
  });

  it('converts every node once, under CLI maintenance, leaving a working symlink', async () => {
    // A site already in CLI maintenance stays in it: the conversion removes only the pages it wrote.
    writeFileSync(join(fx.rt.config.nodes[0]?.dataroots[0] as string, 'a1', 'climaintenance.html'), 'ours');
    const { run: done, target } = await run('delivery/convert');
    expect(done.state, target.message ?? '').toBe('succeeded');
    expect(target.message).toContain('2 sites put in CLI maintenance for the move and taken out after');
    for (const node of ['web1', 'web2']) {
      expect(served(node)).toBe('moodle-VCS');
      expect(treeFiles(code[node] as string)).toEqual(releaseFiles(1));
    }
    const dataroot = (node: number, site: string) => join(fx.rt.config.nodes[node]?.dataroots[0] as string, site);
    expect(readFileSync(join(dataroot(0, 'a1'), 'climaintenance.html'), 'utf8')).toBe('ours');
    expect(existsSync(join(dataroot(0, 'a2'), 'climaintenance.html'))).toBe(false);
    expect(existsSync(join(dataroot(1, 'b1'), 'climaintenance.html'))).toBe(false);

    await expect(plan('delivery/convert')).rejects.toThrow(
      'convert is not allowed now: node web1 is in production and allows secure',
    );
    expect(served('web1')).toBe('moodle-VCS');
  });

  it('starts step 3 only once both nodes finished step 2', async () => {
    expect((await run('delivery/secure')).run.state).toBe('succeeded');
    // web2's worker is away while the switch and the update are asked for together.
    await workers.web2?.close();
    const runId = await start('delivery/steps', { steps: 'switch,update', ref: 'v2' });
    await waitFor('web1 serving the saved tree', () => served('web1') === 'moodle-SAVE');
    await passTime(1500, "web1's update, were it to start without web2, would have started by now");
    expect(treeFiles(layout('web1').vcs)).toEqual(releaseFiles(1));
    expect(served('web2')).toBe('moodle-VCS');
    expect((await fx.rt.store.getRun(runId)).state).toBe('running');

    await startNodeWorker('web2');
    const { run: done, target } = await finished(runId);
    expect(done.state, target.message ?? '').toBe('succeeded');
    expect(target.message).toContain('A mod/forum/new.php');
    const history = async (node: string) => (await readState(layout(node)))?.history ?? [];
    const web1Update = (await history('web1')).find((h) => h.step === 'update');
    const web2Switch = (await history('web2')).find((h) => h.step === 'switch');
    expect(web1Update && web2Switch && web1Update.at >= web2Switch.at + web2Switch.ms).toBe(true);
    for (const node of ['web1', 'web2']) {
      expect(served(node)).toBe('moodle-SAVE');
      expect(treeFiles(layout(node).vcs)).toEqual(releaseFiles(2));
    }
  });

  it('restores: every node serves the new code, then each site is upgraded once and each opcode cache reset', async () => {
    const { run: done, target } = await run('delivery/restore');
    expect(done.state, target.message ?? '').toBe('succeeded');
    for (const node of ['web1', 'web2']) expect(treeFiles(code[node] as string)).toEqual(releaseFiles(2));
    const upgraded = upgrades('--non-interactive');
    expect(upgraded.map((r) => r.argv.find((a) => a.startsWith('--host='))).sort()).toEqual(
      ['a1', 'a2', 'b1'].map((s) => `--host=https://${s}.campus.example.org`),
    );
    expect(upgrades('--is-pending')).toHaveLength(3);
    // Each upgrade ran with its own site in CLI maintenance (upgrades on other sites run meanwhile).
    const own = { a1: 'web1/a1', a2: 'web1/a2', b1: 'web2/b1' } as Record<string, string>;
    for (const r of upgraded)
      expect(r.maintenance).toContain(own[r.argv.find((a) => a.startsWith('--host='))?.slice(15, 17) as string]);
    for (const site of ['web1/a2', 'web2/b1'])
      expect(existsSync(join(fx.rt.config.nodes[0]?.dataroots[0] as string, '..', site, 'climaintenance.html'))).toBe(
        false,
      );
    expect(existsSync(join(fx.rt.config.nodes[0]?.dataroots[0] as string, 'a1', 'climaintenance.html'))).toBe(true);
    // No site was upgraded before both nodes served the new code.
    const swapsEnded = await Promise.all(
      ['web1', 'web2'].map(async (n) => {
        const swap = (await readState(layout(n)))?.history.findLast((h) => h.step === 'restore');
        return (swap?.at ?? 0) + (swap?.ms ?? 0);
      }),
    );
    expect(Math.min(...upgraded.map((r) => r.start))).toBeGreaterThanOrEqual(Math.max(...swapsEnded));
    expect(readFileSync(opcacheLog, 'utf8').split('\n').filter(Boolean).sort()).toEqual(['web1', 'web2']);
    expect(target.message).toContain(
      'upgrade of 3 sites: 3 upgraded, 0 up to date, 0 failed; not upgraded, disabled: d1, upfails_b2',
    );
  });

  it('leaves the nodes where a rollback works when an upgrade fails', async () => {
    await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'upfails_b2' }).update({ enabled: 1 });
    expect((await run('delivery/rollback')).run.state).toBe('succeeded');
    const { run: failed, target } = await run('delivery/restore');
    expect(failed.state).toBe('failed');
    expect(target.message).toContain(
      'upfails_b2: upgrade.php exited 1: Default exception handler: Error writing to database',
    );
    expect(target.message).toContain('roll back');
    for (const node of ['web1', 'web2']) expect(served(node)).toBe('moodle-VCS');

    const { run: back } = await run('delivery/rollback');
    expect(back.state).toBe('succeeded');
    for (const node of ['web1', 'web2']) {
      expect(served(node)).toBe('moodle-SAVE');
      expect(treeFiles(code[node] as string)).toEqual(releaseFiles(1));
    }
  });

  it('in Slack: shows the steps the nodes allow as buttons, has a second person approve a restore, and posts the session report in its thread', async () => {
    await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'upfails_b2' }).update({ enabled: 0 });
    const api = new FakeSlackApi();
    await api.start();
    const app = new Backend(loadConfig({ ...fx.env, SLACK_API_URL: api.url }));
    const bot = await startSlackBot(
      app,
      new Rbac({ roles: { operator: ['UOPS'], approver: ['UAPP'] } }),
      { threshold: 50, ttlMs: 60_000 },
      { signingSecret: SLACK_SECRET, botToken: 'xoxb-delivery', port: 0 },
    );
    const slash = async (user: string, line: string) => {
      await signedPost(bot.url, SLACK_SECRET, slashBody(user, line));
      await bot.idle();
    };
    const press = async (user: string, actionId: string, value: string) => {
      await signedPost(bot.url, SLACK_SECRET, interactionBody(buttonPayload(user, actionId, value)));
      await bot.idle();
    };
    try {
      await slash('UOPS', 'deliver open "Moodle 4.5.7" --impact "a few minutes of maintenance per site"');
      const opened = api.of('chat.postMessage').at(-1) as RecordedCall;
      expect(opened.params).toMatchObject({ channel: 'C1' });
      expect(String(opened.params.text)).toContain('Delivery session');

      await slash('UOPS', 'deliver');
      const status = api.of('respond').at(-1) as RecordedCall;
      expect(String(status.params.text)).toContain('web1: delivery, serves moodle-SAVE');
      const buttons =
        (status.params.blocks as Array<{ type: string; elements?: Array<{ action_id: string; style?: string }> }>).find(
          (b) => b.type === 'actions',
        )?.elements ?? [];
      expect(buttons.map((b) => [b.action_id, b.style ?? ''])).toEqual([
        ['deliver_update', ''],
        ['deliver_restore', 'danger'],
      ]);

      // Restore serves other code: the button asks a second person, who approves it in the modal.
      await press('UOPS', 'deliver_restore', 'restore');
      const request = api.of('chat.postMessage').at(-1) as RecordedCall;
      const value = (
        request.params.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>
      )
        .find((b) => b.type === 'actions')
        ?.elements?.find((e) => e.action_id === 'approve')?.value as string;
      expect(value).toBeDefined();
      const runId = Number(value.split(':')[0]);
      expect((await fx.rt.store.getRun(runId)).state).toBe('awaiting_approval');
      await press('UOPS', 'approve', value);
      expect(api.repliesTo('UOPS').at(-1)?.params.text).toBe('approve needs the approver role; you are operator');
      await press('UAPP', 'approve', value);
      const modal = (api.of('views.open').at(-1) as RecordedCall).params.view as { private_metadata: string };
      await signedPost(
        bot.url,
        SLACK_SECRET,
        interactionBody(
          approvalSubmission(
            'UAPP',
            modal.private_metadata,
            await confirmationText(fx.rt, await fx.rt.store.getRun(runId)),
          ),
        ),
      );
      await bot.idle();
      const { run: done, target } = await finished(runId);
      expect(done.state, target.message ?? '').toBe('succeeded');
      for (const node of ['web1', 'web2']) expect(served(node)).toBe('moodle-VCS');

      await slash('UOPS', 'deliver close --followup "check the quiz reports on Monday"');
      const report = api.of('chat.postMessage').at(-1) as RecordedCall;
      expect(report.params).toMatchObject({ channel: 'C1', thread_ts: opened.answer?.ts });
      const text = String(report.params.text);
      expect(text).toContain('Moodle 4.5.7');
      expect(text).toContain('Follow-up: check the quiz reports on Monday');
      expect(text).toMatch(/restore on web1 by UOPS \(run \d+\): ok: moodle now serves moodle-VCS/);
      expect(text).toMatch(/restore on the fleet by UOPS \(run \d+\): ok: upgrade of 3 sites: 3 upgraded/);
      await expect(app.ops().then((rt) => rt.journal.openSession())).resolves.toBeUndefined();
    } finally {
      await bot.close();
      await app.close();
      await api.close();
    }
  });

  it('on the command line: prints where each node stands, and asks a serving step for its typed confirmation', async () => {
    const status = await runCli(['deliver', 'status'], fx.env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/web1\s+production\s+moodle-VCS\s+restore ok .*secure, rollback/);
    expect(status.stdout).toContain('No delivery session open');

    const unconfirmed = await runCli(['deliver', 'rollback', '--yes'], fx.env);
    expect(unconfirmed.code, unconfirmed.stderr).toBe(2);
    expect(unconfirmed.stderr).toMatch(
      /is destructive: confirm with --confirm=1 \(the number of targets\); nothing was run/,
    );
    expect(served('web1')).toBe('moodle-VCS');

    const refused = await runCli(['deliver', 'update', '--yes'], fx.env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      'update is not allowed now: node web1 is in production and allows secure, rollback',
    );

    const rolledBack = await runCli(['deliver', 'rollback', '--yes', '--confirm=1'], fx.env);
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    for (const node of ['web1', 'web2']) expect(served(node)).toBe('moodle-SAVE');
  });
});

describe.runIf(testServices().moodleDump)('delivery with a node that has no worker', () => {
  let fx: OpsFixture;
  let worker: ExecutorWorker;
  const code: Record<string, string> = {};

  beforeAll(async () => {
    const repo = releaseRepo();
    const base = mkdtempSync(join(tmpdir(), 'vmops-delivery-absent-'));
    code.web1 = servedDirectory(repo, 'absent1');
    code.web9 = servedDirectory(repo, 'absent9');
    const nodesFile = join(base, 'nodes.yml');
    writeFileSync(
      nodesFile,
      Object.entries(code)
        .map(([name, root]) => `${name}:\n  code_root: ${root}\n  dataroots: [${join(base, name)}]\n`)
        .join(''),
    );
    fx = await opsFixture('delivery_absent', undefined, { VMOODLE_NODES: nodesFile, VMOODLE_TARGET_TIMEOUT: '3' });
    worker = new ExecutorWorker(fx.rt, { node: 'web1' });
    await worker.waitUntilReady();
  });
  afterAll(() => worker.close());

  it('ends the step within the target timeout, naming the node, and converts nothing', async () => {
    const planned = await createPlan(fx.rt, {
      command: 'delivery/convert',
      params: {},
      selector: { master: true },
      requestedBy: 'alice',
      via: 'cli',
    });
    await startRun(fx.rt, planned.run.id, 'alice', planned.run.plan_hash);
    await fx.rt.progress.follow(
      planned.run.id,
      () => undefined,
      (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
    );
    const [target] = await fx.rt.store.getTargets(planned.run.id);
    expect((await fx.rt.store.getRun(planned.run.id)).state).toBe('failed');
    expect(target?.message).toContain(
      'no worker of node web9 took its delivery-maintenance within 3 s (start one there: vmoodle worker --node web9)',
    );
    expect(target?.message).toContain('nothing was converted');
    for (const root of Object.values(code)) expect(lstatSync(root).isDirectory()).toBe(true);
  });
});
