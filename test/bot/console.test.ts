import { spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { COMPACT_SCHEMA_PATH } from '../../src/ops/moodle/moodle-source.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, type OpsFixture } from '../support/fleet.ts';

let fx: OpsFixture;

beforeAll(async () => {
  fx = await opsFixture('console', undefined, { VMOODLE_MOODLE_DUMP: COMPACT_SCHEMA_PATH });
  expect((await runCli(['sandbox', 'create', '--count', '6'], fx.env)).code).toBe(0);
});

/** Types the lines into `vmoodle start` and returns what the terminal showed. */
async function chat(lines: string[]): Promise<{ stdout: string; stderr: string; code: unknown }> {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/vmoodle.js'), 'start'], {
    env: { ...process.env, ...fx.env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(`${lines.join('\n')}\nquit\n`);
  const code = await new Promise((resolve) => child.on('exit', resolve));
  return { stdout, stderr, code };
}

describe('the terminal chat', () => {
  it('runs the whole loop: preview, run, approval by another person, progress, canary and cancel', async () => {
    const me = userInfo().username;
    const { stdout, stderr, code } = await chat([
      "showtargets --match '*.campus.example.org' --exclude '*test*'",
      'run generic/setconfig --hosts physics,chemistry key=theme value=classic',
      'start 1',
      "run sql/multisql --hosts physics sql=\"UPDATE {config} SET value = 'fr' WHERE name = 'lang'\"",
      'approve 2 physics',
      'as approver',
      'approve 2 3',
      'approve 2 physics',
      'as viewer',
      'run generic/purgecaches --hosts physics',
      `as ${me}`,
      'run generic/setconfig --hosts physics,chemistry,biology key=lang value=de --canary 1',
      'start 3',
      'cancel 3',
      'as stranger',
      'showtargets --hosts physics',
    ]);
    expect(stderr).toBe('');
    expect(stdout).not.toMatch(/:warning:|`/);
    expect(code).toBe(0);
    expect(stdout).toMatch(/2 targets \(matched 4, excluded 1, disabled left out 1\)/);
    expect(stdout).toContain('Start it with start 1.');
    expect(stdout).toMatch(/Run 1 succeeded: 2 applied/);
    expect(stdout).toContain('Warning: Destructive');
    expect(stdout).toContain('Approval: Needs a second person with approver rights: approve 2 physics');
    expect(stdout).toContain('Warning: you requested this run; a second person must approve it (approval)');
    expect(stdout).toContain('Warning: type the instance short name (physics) to approve run 2 (approval)');
    expect(stdout).toContain('Run 2 approved by approver and started.');
    expect(stdout).toMatch(/Run 2 succeeded: 1 applied/);
    expect(stdout).toContain('Warning: run needs the operator role; you are viewer (access_denied)');
    expect(stdout).toContain('The canary is done (1 of 3): go 3 to go on with the rest, or cancel 3.');
    expect(stdout).toMatch(/Run 3 cancelled: 1 applied, 2 cancelled/);
    expect(stdout).toContain('Warning: you have no access to vmoodle-ops');
    const events = (await fx.rt.store.events(2)).map((e) => `${e.kind}:${e.actor}`);
    expect(events).toEqual([`plan:${me}`, `approval_requested:${me}`, 'approve:approver', 'start:approver']);
  }, 60_000);
});
