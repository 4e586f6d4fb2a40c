import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { passTime } from '../support/wait.ts';

const BIN = join(PROJECT_ROOT, 'bin/vmoodle.js');
let fx: OpsFixture;

describe('the command line as a process', () => {
  it('runs compiled code: vmoodle --help answers from dist/, which a fresh clone builds with npm ci', () => {
    const result = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('Usage: vmoodle');
    expect(result.stdout).toMatch(/runs +runs and their results/);
  });

  it('ends quietly when its reader goes away (vmoodle help | head)', async () => {
    const child = spawn(process.execPath, [BIN, 'help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe.runIf(testServices().moodleDump)('following a run on the terminal', () => {
  beforeAll(async () => {
    fx = await opsFixture('terminal');
    await thinFleet(fx, 3);
    startWorker(fx);
  });

  it('says on Ctrl-C that the run goes on, and how to follow or cancel it', async () => {
    const child = spawn(
      process.execPath,
      [BIN, 'run', 'sql/sql', '--hosts', 't1', 'sql=SELECT SLEEP(2)', '--confirm=1'],
      { env: { ...process.env, ...fx.env } },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => {
      stdout += d;
      // Once the run started, a moment for the follow to begin, as a person pressing Ctrl-C would take.
      if (/Run \d+ started/.test(stdout))
        void passTime(300, 'a person takes a moment to press Ctrl-C').then(() => child.kill('SIGINT'));
    });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    const runId = /Run (\d+) started/.exec(stdout)?.[1];
    expect(code).toBe(130);
    expect(stderr).toContain(
      `Stopped following run ${runId}; the run itself was not stopped. A worker goes on with it.`,
    );
    expect(stderr).toContain(`vmoodle runs show ${runId} --follow`);
    expect(stderr).toContain(`vmoodle runs cancel ${runId}`);
    const followed = await runCli(['--json', 'runs', 'show', String(runId), '--follow'], fx.env);
    expect(JSON.parse(followed.stdout)).toMatchObject({ state: 'succeeded' });
  });

  it('stops at the end of a canary and says how to go on', async () => {
    const result = await runCli(
      ['run', 'generic/setconfig', '--hosts', 't1,t2,t3', 'key=lang', 'value=de', '--canary', '1', '--yes'],
      fx.env,
    );
    const runId = Number(/Run (\d+) started/.exec(result.stdout)?.[1]);
    expect(result.stdout).toContain(
      `The canary is done (1 of 3); the other targets wait.\nGo on with: vmoodle runs go ${runId}\nor stop with: vmoodle runs cancel ${runId}`,
    );
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect((await fx.rt.store.getRun(runId)).state).toBe('running');
    expect((await runCli(['runs', 'cancel', String(runId)], fx.env)).code).toBe(0);
  });

  it('cuts a long value to the width of a line, and --json runs show carries who, what, when and the events', async () => {
    const long = 'x'.repeat(60_000);
    const planned = await runCli(
      ['run', 'generic/setconfig', '--hosts', 't1', 'key=customscripts', `value=${long}`, '--yes'],
      fx.env,
    );
    const runId = Number(/Run (\d+) started/.exec(planned.stdout)?.[1]);
    for (const out of [planned.stdout, (await runCli(['runs', 'show', String(runId)], fx.env)).stdout]) {
      expect(Math.max(...out.split('\n').map((l) => l.length))).toBeLessThanOrEqual(200);
    }
    const json = JSON.parse((await runCli(['--json', 'runs', 'show', String(runId)], fx.env)).stdout);
    expect(json).toMatchObject({
      run: runId,
      command: 'generic/setconfig',
      requestedBy: expect.stringMatching(/@cli$/),
      via: 'cli',
      state: 'succeeded',
    });
    expect(json.params.value).toHaveLength(60_000);
    expect(json.events.map((e: { kind: string }) => e.kind)).toEqual(['plan', 'cli_confirm', 'start']);
    expect(json.createdAt).toBeGreaterThan(0);
  });
});
