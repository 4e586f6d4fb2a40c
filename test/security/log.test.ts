import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { createLogger, SecretValues } from '../../src/core/log.ts';
import { redisConnection } from '../../src/core/redis.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, registerInstances, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { knownSecret } from '../support/secrets.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

const logLines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the log', () => {
  it('cuts secret keys and every known secret value out of each line, wherever it appears', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'vmops-log-')), 'vmoodle.log');
    const dbPassword = knownSecret('Master-Db-Pa55word');
    const config = loadConfig({
      MYSQL_URL: `mysql://ops:${dbPassword}@db.example.org:3306/moodle`,
      VMOODLE_LOG_FILE: file,
      LOG_LEVEL: 'info',
    });
    const secrets = new SecretValues();
    const log = createLogger(config, secrets, 'info');
    const opened = knownSecret('Sealed-Param-Value "quoted"');
    secrets.add(opened);
    log.info({ password: 'by-key-only', nested: { token: 'xoxb-by-key' } }, `connecting with ${dbPassword}`);
    log.warn({ detail: { note: `the value was ${opened}` } }, 'a value in a nested field');
    log.debug({ password: dbPassword }, 'below the level: not written');
    const text = readFileSync(file, 'utf8');
    expect(logLines(file).map((l) => l.msg)).toEqual(['connecting with [redacted]', 'a value in a nested field']);
    expect(logLines(file)[0]).toMatchObject({ level: 30, password: '[redacted]', nested: { token: '[redacted]' } });
    for (const secret of [dbPassword, opened, JSON.stringify(opened).slice(1, -1), 'by-key-only', 'xoxb-by-key'])
      expect(text).not.toContain(secret);
  });
});

describe('an expected failure in the log', () => {
  it('is one line naming the service that failed, with no stack trace', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'vmops-log-')), 'vmoodle.log');
    const config = loadConfig({ VMOODLE_LOG_FILE: file, LOG_LEVEL: 'info' });
    const log = createLogger(config, new SecretValues(), 'info');
    // A port nothing listens on: Redis refuses, as a Redis restarting does.
    const redis = redisConnection('redis://127.0.0.1:1/0', 'worker', log, 1_000);
    try {
      const line = await waitFor('the log line', () =>
        logLines(file).find((l) => l.msg === 'Redis cannot be reached; retrying'),
      );
      expect(line).toMatchObject({ level: 40, error: { code: 'ECONNREFUSED' } });
      const error = line.error as Record<string, unknown>;
      expect(error.message).toMatch(/^Redis server refused the connection/);
      expect(error).not.toHaveProperty('stack');
    } finally {
      redis.disconnect();
    }
  });
});

describe.runIf(testServices().moodleDump)('the worker’s log', () => {
  let fx: OpsFixture;
  let file: string;

  beforeAll(async () => {
    file = join(mkdtempSync(join(tmpdir(), 'vmops-worklog-')), 'vmoodle.log');
    fx = await opsFixture('worklog', undefined, { VMOODLE_LOG_FILE: file, LOG_LEVEL: 'info' });
    await thinFleet(fx, 2);
    await registerInstances(fx, [{ shortname: 'locked', database: 'moodle_locked' }]);
    await fx.app
      .masterDb(fx.rt.registry.table)
      .where({ shortname: 'locked' })
      .update({ vdblogin: 'nobody', vdbpass: knownSecret('Locked-Db-Pa55') });
    startWorker(fx);
  });

  it('records each run and every target that failed, with neither the secret it wrote nor a database password', async () => {
    const value = knownSecret('Smtp-Value-For-The-Log');
    const result = await runCli(
      [
        '--json',
        'run',
        'generic/setconfig',
        '--hosts',
        't1,t2,locked',
        'key=smtppass',
        `value=${value}`,
        '--max-failures=1',
        '--yes',
      ],
      fx.env,
    );
    const runId = JSON.parse(result.stdout).run as number;
    const lines = logLines(file);
    expect(lines.find((l) => l.msg === 'run picked up')).toMatchObject({
      run: runId,
      command: 'generic/setconfig',
      targets: 3,
    });
    expect(lines.find((l) => l.msg === 'target did not succeed')).toMatchObject({
      run: runId,
      target: 'locked',
      status: 'failed',
    });
    expect(lines.find((l) => l.msg === 'run ended')).toMatchObject({
      run: runId,
      state: 'partly_failed',
      counts: { applied: 2, failed: 1 },
    });
    const text = readFileSync(file, 'utf8');
    for (const secret of [value, 'Locked-Db-Pa55']) expect(text).not.toContain(secret);
  });

  it('leaves out a target where --by-value cannot be read, saying why in the plan and the log', async () => {
    const result = await runCli(
      ['run', 'generic/purgecaches', '--hosts', 't1,locked', '--by-value', 'SELECT 1', '--yes'],
      fx.env,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /Warning: left out locked \(https:\/\/locked\.campus\.example\.org\): --by-value could not be read: database login refused/,
    );
    expect(result.stdout).toMatch(/Run \d+ succeeded: 1 applied/);
    expect(logLines(file).find((l) => l.msg === '--by-value could not be read on a target')).toMatchObject({
      target: 'locked',
      level: 40,
    });
  });
});
