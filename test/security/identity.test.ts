import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { Backend } from '../../src/verbs/backend.ts';
import { consoleChat } from '../../src/bot/console.ts';
import { Rbac } from '../../src/verbs/rbac.ts';
import { Chat } from '../../src/bot/chat.ts';
import { SLACK_STYLE } from '../../src/verbs/text-views.ts';
import { loadConfig } from '../../src/core/config.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

let fx: OpsFixture;
const me = userInfo().username;

/** Types the lines into the terminal chat, in this process, and returns what it showed. */
async function chat(env: Record<string, string | undefined>, lines: string[]): Promise<string> {
  let out = '';
  const app = new Backend(loadConfig(env));
  try {
    await consoleChat(
      { stdout: (t) => void (out += t), stderr: (t) => void (out += t), env },
      app,
      Readable.from([`${lines.join('\n')}\nquit\n`]),
    );
  } finally {
    await app.close();
  }
  return out;
}

describe.runIf(testServices().moodleDump)('who is acting, in the terminal chat and on the command line', () => {
  /** Writes the master's settings as an admin does, from a YAML file. */
  const settings = async (yaml: string) => {
    const file = join(fx.dataDir, 'settings.yml');
    writeFileSync(file, `${yaml}db_servers:\n  - server: 127.0.0.1:3306\n`);
    const result = await runCli(['settings', 'import', file], fx.env);
    expect(result.stderr).toBe('');
  };
  const RBAC = `rbac:\n  roles:\n    admin: [${me}]\n    approver: [approver]\n`;

  beforeAll(async () => {
    fx = await opsFixture('identity');
    await thinFleet(fx, 3);
    startWorker(fx);
  });

  it('with an RBAC, acts as the operating-system user and refuses as, so nobody approves their own run', async () => {
    await settings(RBAC);
    const out = await chat(fx.env, [
      "run sql/multisql --hosts t1 sql=\"UPDATE {config} SET value = 'fr' WHERE name = 'lang'\"",
      'as approver',
      'approve 1 t1',
    ]);
    expect(out).toContain(`You are ${me}, the operating-system user, with the roles of the master's RBAC.`);
    expect(out).toContain('Warning: as is refused: with an RBAC the terminal chat acts as the operating-system user');
    expect(out).toContain('Warning: you requested this run; a second person must approve it (approval)');
    expect((await fx.rt.store.getRun(1)).state).toBe('awaiting_approval');
    expect((await fx.rt.store.events(1)).map((e) => e.kind)).toEqual(['plan', 'approval_requested']);
  });

  it('without an RBAC, says it is a one-person demo', async () => {
    await settings('');
    const out = await chat(fx.env, ['as approver', 'runs']);
    expect(out).toContain("No RBAC in the master's settings (vmoodle settings import): this is a one-person demo");
    expect(out).toContain('approver> ');
  });

  it('records a CLI write confirmed with --confirm as a CLI confirmation in the audit', async () => {
    const result = await runCli(
      [
        '--json',
        'run',
        'sql/multisql',
        '--hosts',
        't2',
        "sql=UPDATE {config} SET value = 1 WHERE name = 'x'",
        '--confirm=1',
      ],
      fx.env,
    );
    expect(result.code).toBe(0);
    const runId = JSON.parse(result.stdout).run as number;
    const events = (await fx.rt.store.events(runId)).map((e) => `${e.kind}:${e.actor}:${e.detail ?? ''}`);
    expect(events).toContain(`cli_confirm:${me}@cli:--confirm=1`);
  });

  it('with approval.cli: require, makes a CLI write above the policy wait for a chat approval', async () => {
    await settings(`${RBAC}approval:\n  cli: require\n`);
    const env = fx.env;
    const result = await runCli(
      [
        'run',
        'sql/multisql',
        '--hosts',
        't3',
        "sql=UPDATE {config} SET value = 'de' WHERE name = 'lang'",
        '--confirm=1',
        '--detach',
      ],
      env,
    );
    expect(result.code).toBe(0);
    const runId = Number(/Run (\d+):/.exec(result.stdout)?.[1]);
    expect(result.stdout).toContain(`Run ${runId} waits for a chat approval by a second person: approve ${runId} t3`);
    expect((await fx.rt.store.getRun(runId)).state).toBe('awaiting_approval');
    const router = new Chat(
      fx.app,
      new Rbac({ roles: { approver: ['lead'] } }),
      { threshold: 50, ttlMs: 60_000 },
      'slack',
      SLACK_STYLE,
    );
    expect((await router.handle(`approve ${runId} t3`, { id: 'lead' })).text).toBe(
      `Run ${runId} approved by lead and started.`,
    );

    const small = await runCli(
      ['run', 'generic/setconfig', '--hosts', 't3', 'key=theme', 'value=classic', '--yes'],
      env,
    );
    expect(small.code).toBe(0);
  });
});
