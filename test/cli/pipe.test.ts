import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { sandboxInstance } from '../../src/ops/lifecycle/sandbox-fleet.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { passTime } from '../support/wait.ts';

const FLEET = 10_000;

describe.runIf(testServices().moodleDump)('output piped to a slow reader', () => {
  let fx: OpsFixture;

  beforeAll(async () => {
    fx = await opsFixture('pipe');
    const rows = Array.from({ length: FLEET }, (_, k) => {
      const plan = sandboxInstance(k + 1);
      return {
        name: plan.name,
        shortname: plan.shortname,
        vhostname: plan.vhostname,
        enabled: 1,
        vdbname: `moodle_${plan.shortname}`,
        vdatapath: `/var/moodledata/${plan.shortname}`,
        mnet: -1,
        vdbtype: 'mariadb',
      };
    });
    await fx.app.masterDb.batchInsert(fx.rt.registry.table, rows, 1000);
  });

  it('gets every byte of a multi-megabyte --json answer, however slowly it reads', async () => {
    const child = spawn(
      process.execPath,
      [join(PROJECT_ROOT, 'bin', 'vmoodle.js'), '--json', 'showtargets', '--tohosts', '*'],
      { env: { ...process.env, ...fx.env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const chunks: Buffer[] = [];
    // A reader slower than the command: it takes one pipe's worth, then lets the writer wait.
    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      child.stdout.pause();
      void passTime(5, 'a slow reader').then(() => child.stdout.resume());
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    const text = Buffer.concat(chunks).toString('utf8');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const whole = (await runCli(['--json', 'showtargets', '--tohosts', '*'], fx.env)).stdout;
    expect(whole.length).toBeGreaterThan(1_000_000);
    expect(text.length).toBe(whole.length);
    expect(JSON.parse(text).targets).toHaveLength(FLEET);
  }, 120_000);
});
