import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MoodleTarget } from '../../src/ops/moodle/target.ts';
import { PhpError, PhpStopped, runVmoodleScript, type PhpScripts } from '../../src/ops/moodle/php.ts';
import type { NodeConfig } from '../../src/core/nodes.ts';
import { SecretValues } from '../../src/core/log.ts';
import { fakePhp, isRunning, type FakePhp } from '../support/fake-php.ts';
import { knownSecret } from '../support/secrets.ts';
import { waitFor } from '../support/wait.ts';

const DB_PASSWORD = knownSecret(`pw-${randomBytes(8).toString('hex')}`);

function target(label: string, dataroot: string | undefined = `/srv/moodledata/${label}`): MoodleTarget {
  return {
    host: {
      kind: 'instance',
      id: 1,
      shortname: label,
      name: label,
      wwwroot: `https://${label}.campus.example.org`,
      enabled: true,
    },
    db: { host: '127.0.0.1', port: 3306, user: 'moodle', password: DB_PASSWORD, database: 'moodle_a', prefix: 'mdl_' },
    dataroot,
  };
}

describe('the Moodle PHP runner', () => {
  let fake: FakePhp;
  let nodes: NodeConfig[];
  const secrets = new SecretValues();
  secrets.add(DB_PASSWORD);
  /** What a command would declare: purge_caches with no option, cron with a numeric --keep-alive. */
  const allowed: PhpScripts = { purge_caches: {}, cron: { 'keep-alive': /^\d{1,4}$/ } };
  const run = (
    t: MoodleTarget,
    script = 'purge_caches',
    options: Record<string, string | true> = {},
    timeoutMs = 20_000,
  ) => runVmoodleScript(nodes, t, script, options, { allowed, timeoutMs, redact: (text) => secrets.scrub(text) });
  const recordOf = (wwwroot: string) => fake.records().find((r) => r.argv.includes(`--host=${wwwroot}`));

  beforeAll(() => {
    fake = fakePhp({ secret: DB_PASSWORD });
    nodes = [{ name: 'web1', codeRoot: fake.codeRoot, dataroots: ['/srv/moodledata'], php: fake.php, maxPhp: 4 }];
  });

  it("runs VMoodle's wrapper with --host=<wwwroot> in the code root, with no secret in its argv or environment", async () => {
    const outsider = knownSecret(`env-${randomBytes(8).toString('hex')}`);
    process.env.VMOODLE_SECRET_KEYS_TEST = outsider;
    try {
      const result = await run(target('alpha'));
      expect(result).toMatchObject({
        ok: true,
        exitCode: 0,
        message: 'purge_caches.php ran for https://alpha.campus.example.org',
      });
    } finally {
      delete process.env.VMOODLE_SECRET_KEYS_TEST;
    }
    const record = recordOf('https://alpha.campus.example.org');
    expect(record?.argv).toEqual([
      `${fake.codeRoot}/local/vmoodle/cli/purge_caches.php`,
      '--host=https://alpha.campus.example.org',
    ]);
    expect(record?.cwd).toBe(fake.codeRoot);
    expect(Object.keys(record?.env ?? {}).sort()).toEqual(['LANG', 'PATH']);
    const seen = JSON.stringify(record);
    expect(seen).not.toContain(DB_PASSWORD);
    expect(seen).not.toContain(outsider);
  });

  it('never runs a core script or an undeclared one, never gives --host to one, and passes only declared options', async () => {
    await run(target('beta'));
    await run(target('beta2'), 'cron', { 'keep-alive': '0' });
    expect(recordOf('https://beta2.campus.example.org')?.argv).toEqual([
      `${fake.codeRoot}/local/vmoodle/cli/cron.php`,
      '--host=https://beta2.campus.example.org',
      '--keep-alive=0',
    ]);
    for (const record of fake.records()) {
      expect(record.argv[0]).toMatch(/\/local\/vmoodle\/cli\/[a-z_]+\.php$/);
      expect(record.argv.join(' ')).not.toContain('/admin/cli/');
    }
    const before = fake.records().length;
    await expect(run(target('gamma'), '../../../admin/cli/purge_caches')).rejects.toThrow(
      '"../../../admin/cli/purge_caches" is not a VMoodle CLI wrapper this command declares',
    );
    await expect(run(target('gamma'), 'upgrade')).rejects.toThrow(
      '"upgrade" is not a VMoodle CLI wrapper this command declares',
    );
    await expect(run(target('gamma'), 'purge_caches', { muc: true })).rejects.toThrow(
      'purge_caches.php takes no --muc option',
    );
    await expect(run(target('gamma'), 'cron', { 'keep-alive': '0 --force' })).rejects.toThrow(
      '--keep-alive of cron.php does not accept that value',
    );
    await expect(run(target('gamma'), 'cron', { 'keep-alive': true })).rejects.toThrow(
      '--keep-alive of cron.php does not accept that value',
    );
    expect(fake.records().length).toBe(before);
  });

  it('stops a run at its timeout with every process it started', async () => {
    const started = Date.now();
    await expect(run(target('slow-one'), 'purge_caches', {}, 1000)).rejects.toThrow(PhpStopped);
    expect(Date.now() - started).toBeLessThan(8000);
    const record = recordOf('https://slow-one.campus.example.org');
    expect(record?.child).toBeGreaterThan(0);
    await waitFor('the stopped PHP process gone', () => !isRunning(record?.pid as number), { timeoutMs: 5_000 });
    expect(isRunning(record?.child as number)).toBe(false);
  });

  it("reads Moodle's and VMoodle's own messages as the result, whatever the exit code", async () => {
    await expect(run(target('unknown-host'))).resolves.toMatchObject({
      ok: false,
      exitCode: 0,
      message: 'purge_caches.php: VMoodle found no registry row for this wwwroot (its vhostname must match exactly)',
    });
    await expect(run(target('wrongsite-x'))).resolves.toMatchObject({
      ok: false,
      message: expect.stringContaining(
        'ran for https://master.example.org, not https://wrongsite-x.campus.example.org: VMoodle did not switch',
      ),
    });
    await expect(run(target('badopt-y'))).resolves.toMatchObject({
      ok: false,
      exitCode: 2,
      message: 'purge_caches.php: Moodle rejected the options --bogus',
    });
    await expect(run(target('fails-z'))).resolves.toMatchObject({
      ok: false,
      exitCode: 255,
      message: 'purge_caches.php exited 255: PHP Fatal error:  Allowed memory size exhausted',
    });
  });

  it('keeps a bounded output with secrets cut out', async () => {
    const result = await run(target('noisy-n'));
    expect(result.ok).toBe(true);
    expect(result.stdout.length).toBeLessThan(40_000);
    expect(result.stdout).toMatch(/… \d+ characters cut …/);
    expect(result.stdout).toContain('dbpass=[redacted]');
    expect(result.stdout).not.toContain(DB_PASSWORD);
  });

  it('refuses a target outside every node, and a node without the wrapper, naming why', async () => {
    await expect(run(target('delta', '/elsewhere/delta'))).rejects.toThrow(
      'delta: its dataroot /elsewhere/delta is under no configured node (web1: /srv/moodledata)',
    );
    const bare = [{ ...(nodes[0] as NodeConfig), codeRoot: '/nonexistent/moodle' }];
    await expect(
      runVmoodleScript(bare, target('eps'), 'purge_caches', {}, { allowed, timeoutMs: 1000, redact: (t) => t }),
    ).rejects.toThrow(
      new PhpError(
        "VMoodle's purge_caches.php is not in node web1's code root (/nonexistent/moodle/local/vmoodle/cli/purge_caches.php): is local/vmoodle installed there?",
      ),
    );
  });
});
