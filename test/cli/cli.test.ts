import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { COMPACT_SCHEMA_PATH } from '../../src/ops/moodle/moodle-source.ts';
import { runCli } from '../support/cli.ts';
import { createDatabase } from '../support/databases.ts';
import { testServices } from '../support/services.ts';
import { main } from '../../src/app/program.ts';
import { knownSecret } from '../support/secrets.ts';

let env: Record<string, string | undefined>;
const cli = (...args: string[]) => runCli(args, env);

interface ListedInstance {
  shortname: string;
  vhostname: string;
  enabled: boolean;
  vdbpass: string;
}

beforeAll(async () => {
  const master = await createDatabase('cli');
  env = {
    MYSQL_URL: master.url,
    VMOODLE_DATA_DIR: mkdtempSync(join(tmpdir(), 'vmops-cli-')),
    VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
    VMOODLE_MOODLE_DUMP: COMPACT_SCHEMA_PATH,
    REDIS_URL: testServices().redisUrl,
    VMOODLE_QUEUE_PREFIX: `${testServices().runId}-cli`,
    VMOODLE_SECRET_KEYS: `k1:${knownSecret(randomBytes(32).toString('base64'))}`,
  };
  const created = await cli('sandbox', 'create', '--count', '12');
  expect(created.stderr).toBe('');
  expect(created.code).toBe(0);
});

async function listAll(): Promise<ListedInstance[]> {
  const listed = await cli('--json', 'instances', 'list', '--per-page', '1000');
  return JSON.parse(listed.stdout).items;
}

describe('vmoodle showtargets', () => {
  it('lists exactly the enabled instances that match and are not excluded', async () => {
    const all = await listAll();
    const expected = all
      .filter(
        (i) =>
          i.enabled &&
          i.vhostname.toLowerCase().endsWith('.example.org') &&
          !i.vhostname.toLowerCase().includes('test'),
      )
      .map((i) => i.vhostname)
      .sort();
    expect(expected.length).toBeGreaterThan(3);
    expect(all.some((i) => !i.enabled && i.vhostname.endsWith('.example.org'))).toBe(true);

    const result = await cli('showtargets', '--tohostsmatch=*.example.org', '--exclude=*test*');
    expect(result.code).toBe(0);
    const shown = result.stdout
      .split('\n')
      .slice(2)
      .filter(Boolean)
      .map((line) => line.split(/\s{2,}/)[2]);
    expect(shown.sort()).toEqual(expected);
    expect(result.stdout.split('\n')[0]).toMatch(
      new RegExp(`^${expected.length} targets \\(matched \\d+, excluded \\d+, disabled left out \\d+; 12 instances`),
    );

    const json = JSON.parse(
      (await cli('--json', 'showtargets', '--match', '*.example.org', '--exclude', '*test*')).stdout,
    );
    expect(json.targets.map((t: { wwwroot: string }) => t.wwwroot).sort()).toEqual(expected);
    expect(json.source).toMatchObject({ kind: 'master', wwwroot: 'https://master.example.org' });
  });

  it('fails on an unknown host with one clear line and a non-zero exit code', async () => {
    const result = await cli('showtargets', '--tohosts=nosuch');
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^vmoodle: unknown host in --tohosts: 'nosuch' \(did you mean '[^']+'\?\) \[bad_selection\]\n$/,
    );
  });

  it("does not let '.' in a glob stand for any character", async () => {
    const added = await cli(
      'instances',
      'add',
      '--vhostname=https://axb.example.org',
      '--shortname=axb',
      '--name=AXB',
      '--vdbname=moodle_axb',
      '--vdatapath=/srv/axb',
    );
    expect(added.code).toBe(0);
    const dotted = await cli('showtargets', '--tohostsmatch=https://a.b.example.org');
    expect(dotted.code).toBe(2);
    expect(dotted.stderr).toContain("--tohostsmatch 'https://a.b.example.org' matched no instance");
    expect((await cli('showtargets', '--tohostsmatch=https://a?b.example.org')).stdout).toContain(
      'https://axb.example.org',
    );
  });

  it('refuses a malformed glob and changes nothing', async () => {
    const result = await cli('showtargets', '--match', '*.example.org,,*.net');
    expect(result).toMatchObject({ code: 2, stdout: '' });
    expect(result.stderr).toBe(
      'vmoodle: --tohostsmatch: an empty pattern matches nothing; remove the extra comma [bad_selection]\n',
    );
  });
});

describe('vmoodle run', () => {
  it("runs a command from run_command.php's flags, URL-decoding --attributes", async () => {
    const result = await cli(
      'run',
      '--command=generic/setconfig',
      '--tohostsmatch=*.campus.example.org',
      '--exclude=*test*',
      '--attributes=key=maintenance_message&value=Back+at+6%3A00%20UTC',
      '--yes',
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Run 1: generic/setconfig');
    expect(result.stdout).toContain('value = Back at 6:00 UTC');
    expect(result.stdout).toMatch(/Run 1 succeeded: \d+ applied/);
    const check = JSON.parse(
      (
        await cli(
          '--json',
          'run',
          'sql/sql',
          '--hosts',
          'physics',
          'sql=SELECT value FROM {config} WHERE name = :n',
          'n=maintenance_message',
          '--yes',
        )
      ).stdout,
    );
    expect(check.targets[0].value).toBe('{"value":"Back at 6:00 UTC"}');
  });

  it('takes the short form with name=value words, and answers in JSON', async () => {
    const json = JSON.parse(
      (await cli('--json', 'run', 'generic/setconfig', '--match', '*music*', 'key=theme', 'value=boost', '-y')).stdout,
    );
    expect(json).toMatchObject({ state: 'succeeded', counts: { already_applied: 1 } });
    expect(json.targets.map((t: { shortname: string }) => t.shortname)).toEqual(['music']);
  });

  it('asks before running, and without a terminal runs nothing unless --yes is given', async () => {
    const result = await cli('run', 'generic/setconfig', '--hosts', 'physics', 'key=theme', 'value=classic');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /^vmoodle: run \d+ needs confirmation: add --yes to run it without a prompt; nothing was run \[usage\]\n$/,
    );
    const asked: string[] = [];
    const declined = await main(['run', 'generic/setconfig', '--hosts', 'physics', 'key=theme', 'value=classic'], {
      stdout: () => undefined,
      stderr: () => undefined,
      env,
      confirm: async (q) => {
        asked.push(q);
        return false;
      },
    });
    expect(declined).toBe(2);
    expect(asked).toEqual(['Run generic/setconfig on 1 target?']);
    const runs = JSON.parse((await cli('--json', 'runs', 'list')).stdout);
    expect(runs.slice(0, 2).map((r: { state: string }) => r.state)).toEqual(['cancelled', 'cancelled']);
  });

  it('refuses an empty attribute name, a missing or unknown command, with exit code 2', async () => {
    const empty = await cli('run', '-c', 'generic/setconfig', '-t', '*', '-a', 'key=x&=1');
    expect(empty).toMatchObject({ code: 2, stdout: '' });
    expect(empty.stderr).toBe(
      "vmoodle: --attributes: pair 2 ('=1') has an empty name; expected name=value&name=value [usage]\n",
    );
    expect((await cli('run', '-t', '*')).stderr).toMatch(/^vmoodle: missing command/);
    expect((await cli('run', 'setconfig', '-t', '*')).stderr).toBe(
      "vmoodle: unknown command 'setconfig' (did you mean 'generic/setconfig'?) [unknown_command]; vmoodle help lists the commands\n",
    );
    expect((await cli('run', 'generic/setconfig', '-t', '*', 'key')).stderr).toMatch(
      /'key' is not a parameter: write name=value/,
    );
  });

  it('prints only the targets with --test or the showtargets command', async () => {
    for (const args of [
      ['run', '-c', 'generic/purgecaches', '-t', 'chemistry,physics', '-T'],
      ['run', '--command=showtargets', '--tohosts=chemistry,physics'],
    ]) {
      const result = await cli(...args);
      expect(result.code).toBe(0);
      expect(result.stdout).not.toContain('Run ');
      expect(result.stdout).toMatch(/^2 targets/);
    }
  });
});

describe('vmoodle instances', () => {
  it('never prints the database password, in text or JSON', async () => {
    const secret = knownSecret('Pa55-w0rd-never-shown');
    env.LAW2_PASS = secret;
    const added = await cli(
      'instances',
      'add',
      '--vhostname=https://law2.example.org',
      '--shortname=law2',
      '--name=Law 2',
      '--vdbname=moodle_law2',
      '--vdatapath=/srv/law2',
      '--vdbpass-env=LAW2_PASS',
      '--mnet=NEW',
      '--disabled',
    );
    expect(added.code).toBe(0);
    const shown = await cli('instances', 'show', 'law2');
    const json = await cli('--json', 'instances', 'show', 'https://law2.example.org/');
    const listed = await cli('--json', 'instances', 'list', '--filter', 'law2');
    for (const out of [added, shown, json, listed]) expect(out.stdout + out.stderr).not.toContain(secret);
    expect(JSON.parse(json.stdout)).toMatchObject({ vdbpass: 'set', mnet: 1, enabled: false, state: 'broken' });
  });

  it('edits, disables and enables by name', async () => {
    expect((await cli('instances', 'edit', 'law2', '--vdbhost=db9.example.org:3307')).stdout).toBe(
      'updated law2: vdbhost\n',
    );
    expect((await cli('instances', 'disable', 'law2')).stdout).toBe('disabled 0 (1 already disabled)\n');
    expect((await cli('instances', 'enable', 'law2')).stdout).toBe('enabled 1: law2\n');
    const edit = await cli('instances', 'edit', 'law2');
    expect(edit).toMatchObject({
      code: 2,
      stderr: 'vmoodle: nothing to change: give at least one field option (see --help) [usage]\n',
    });
  });

  it('refuses invalid fields and names each problem', async () => {
    const result = await cli(
      'instances',
      'add',
      '--vhostname=law3.example.org',
      '--shortname=law 3',
      '--name=Law',
      '--vdbname=moodle-law3',
      '--vdatapath=/srv/law3',
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "vmoodle: shortname: 'law 3' must not contain spaces; vhostname: 'law3.example.org' must start with http:// or https://; vdbname: 'moodle-law3' must not contain '-' [invalid_instance]\n",
    );
  });

  it('pages the list', async () => {
    const page = await cli('instances', 'list', '--per-page', '5', '--page', '2');
    expect(page.stdout.trim().split('\n')).toHaveLength(7);
    expect(page.stdout).toMatch(/page 2 of 3, 14 instances\n$/);
  });
});

describe('vmoodle as a command line', () => {
  const verbs = [
    ['instances'],
    ['instances', 'list'],
    ['instances', 'show'],
    ['instances', 'add'],
    ['instances', 'edit'],
    ['instances', 'enable'],
    ['instances', 'disable'],
    ['showtargets'],
    ['run'],
    ['sandbox'],
    ['sandbox', 'create'],
    ['start'],
    ['runs'],
    ['runs', 'list'],
    ['runs', 'show'],
    ['runs', 'cancel'],
    ['runs', 'go'],
    ['runs', 'retry'],
    ['runs', 'revert'],
    ['worker'],
    ['help'],
  ];
  it.each(verbs.map((v) => v.join(' ')))('answers --help for %s', async (verb) => {
    const result = await cli(...verb.split(' '), '--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: vmoodle ${verb}`);
  });

  it('refuses an unknown command or option with a suggestion', async () => {
    expect(await cli('showtarget')).toMatchObject({
      code: 2,
      stderr: "vmoodle: unknown command 'showtarget'\n(Did you mean showtargets?)\n",
    });
    expect((await cli('showtargets', '--tohost=x')).stderr).toContain("unknown option '--tohost=x'");
  });

  it('names a bad configuration variable and what it expects, never the password', async () => {
    const bad = await runCli(['instances', 'list'], { ...env, MYSQL_URL: 'postgres://u:hunter2@db/x' });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toBe(
      "vmoodle: MYSQL_URL: expected mysql://user:password@host:port/database (the master database), got 'postgres://u:***@db/x': scheme postgres: is not mysql: [config]; the README's configuration table lists every setting\n",
    );
    const prefix = await runCli(['instances', 'list'], { ...env, VMOODLE_PREFIX: 'mdl;' });
    expect(prefix.stderr).toMatch(
      /^vmoodle: VMOODLE_PREFIX: expected the master's Moodle table prefix, e.g. mdl_, got 'mdl;'/,
    );
  });

  it('reports an unreachable master database in one line without its password', async () => {
    const result = await runCli(['showtargets', '-t', '*'], {
      ...env,
      MYSQL_URL: 'mysql://ops:hunter2@127.0.0.1:1/master',
    });
    expect(result).toMatchObject({ code: 3, stdout: '' });
    expect(result.stderr).toBe(
      'vmoodle: cannot use the master database at mysql://ops:***@127.0.0.1:1/master: connection refused (MYSQL_URL) [unavailable]\n',
    );
  });

  it('reads an optional YAML configuration file, the environment winning', async () => {
    const file = join(env.VMOODLE_DATA_DIR as string, 'vmoodle.yml');
    writeFileSync(file, `mysql_url: ${env.MYSQL_URL}\nmaster:\n  shortname: hub\n  wwwroot: https://hub.example.org\n`);
    const result = await runCli(['--json', 'showtargets', '-t', 'music'], {
      VMOODLE_CONFIG: file,
      VMOODLE_MASTER_WWWROOT: 'https://env.example.org',
    });
    expect(JSON.parse(result.stdout).source).toMatchObject({ shortname: 'hub', wwwroot: 'https://env.example.org' });
    writeFileSync(file, 'mysql_url: x\nmastr: 1\n');
    expect((await runCli(['instances', 'list'], { VMOODLE_CONFIG: file })).stderr).toMatch(
      /^vmoodle: VMOODLE_CONFIG: .* has unknown keys: mastr/,
    );
  });

  it('runs as a real process with its exit code', () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, [join(PROJECT_ROOT, 'bin/vmoodle.js'), ...args], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
      });
    const ok = run(['showtargets', '--tohosts=chemistry,physics']);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^2 targets/);
    const bad = run(['showtargets', '--tohosts=nosuch']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});
