import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/core/config.ts';
import { parseMysqlUrl } from '../src/core/db/mysql-url.ts';
import { readWwwroot } from '../src/ops/moodle/site-identity.ts';
import { runCli } from './support/cli.ts';
import { createDatabase } from './support/databases.ts';
import { testServices } from './support/services.ts';

interface Created {
  created: Array<{ id: number; shortname: string; wwwroot: string; enabled: boolean }>;
}

describe.runIf(testServices().moodleDump)('sandbox fleet from the real Moodle dump', () => {
  let env: Record<string, string | undefined>;
  let first: Created;

  beforeAll(async () => {
    const master = await createDatabase('sandbox');
    env = {
      MYSQL_URL: master.url,
      REDIS_URL: testServices().redisUrl,
      VMOODLE_DATA_DIR: mkdtempSync(join(tmpdir(), 'vmops-sandbox-')),
      VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
      VMOODLE_MOODLE_DUMP: testServices().moodleDump,
      VMOODLE_QUEUE_PREFIX: `${testServices().runId}-sandbox`,
    };
    const result = await runCli(['--json', 'sandbox', 'create', '--count', '3'], env);
    expect(result.stderr).toBe('');
    first = JSON.parse(result.stdout);
  });

  it('makes working, distinct Moodle sites with their own database, dataroot and registry row', async () => {
    expect(first.created.map((i) => i.shortname)).toEqual(['physics', 'chemistry', 'biology']);
    const conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    const identifiers = new Set<string>();
    for (const created of first.created) {
      const shown = JSON.parse((await runCli(['--json', 'instances', 'show', created.shortname], env)).stdout);
      expect(shown.state).toBe('enabled');
      expect(existsSync(shown.vdatapath)).toBe(true);
      const [[tables]] = (await conn.query(
        'SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
        [shown.vdbname],
      )) as unknown as [[{ n: number }]];
      expect(tables.n).toBe(494);
      expect(await readWwwroot(conn, shown.vdbname, shown.vdbprefix)).toBe(created.wwwroot);
      const [[id]] = (await conn.query(
        `SELECT value FROM \`${shown.vdbname}\`.mdl_config WHERE name = 'siteidentifier'`,
      )) as unknown as [[{ value: string }]];
      identifiers.add(id.value);
    }
    expect(identifiers.size).toBe(3);
    await conn.end();
  });

  it('continues the numbering when run again', async () => {
    const again: Created = JSON.parse((await runCli(['--json', 'sandbox', 'create', '--count', '2'], env)).stdout);
    expect(again.created.map((i) => [i.shortname, i.wwwroot, i.enabled])).toEqual([
      ['history_test', 'https://history-test.campus.example.org', true],
      ['law', 'https://law.campus.example.org', false],
    ]);
  });

  it('serves the same commands in the terminal chat that `start` opens', async () => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/vmoodle.js'), 'start'], {
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.write(`${["showtargets --match '*.campus.example.org' --exclude '*test*'", 'quit'].join('\n')}\n`);
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('5 instances in the registry, 4 enabled.');
    expect(stdout).toMatch(/2 targets \(matched 4, excluded 1, disabled left out 1\)/);
  });
});
