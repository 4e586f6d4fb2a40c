import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { mysqlProblem, redisProblem } from '../../src/core/services/probe.ts';
import { ensureServices } from '../../src/core/services/index.ts';
import { startPrivateMariadb } from '../../src/core/services/private-mariadb.ts';
import { startPrivateRedis } from '../../src/core/services/private-redis.ts';
import { findBinary } from '../../src/core/services/private-server.ts';

const scratch = () => mkdtempSync(join(tmpdir(), 'vmops-services-'));

describe('private servers', () => {
  it('starts a redis-server on a free port that serves, never evicts, and stops', async () => {
    const server = await startPrivateRedis(scratch());
    expect(server.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    expect(server.url).not.toBe('redis://127.0.0.1:6379');
    const client = new Redis(server.url);
    await client.set('greeting', 'hello');
    expect(await client.get('greeting')).toBe('hello');
    expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    client.disconnect();
    await server.stop();
    expect(await redisProblem(server.url, 300)).toMatch(/ECONNREFUSED/);
  });

  it.runIf(findBinary(['mariadbd']))(
    'starts a MariaDB with its own data folder and port, reachable as root over loopback, and stops',
    async () => {
      const dir = scratch();
      const server = await startPrivateMariadb(dir);
      const conn = await mysql.createConnection(parseMysqlUrl(server.url));
      const [[row]] = (await conn.query('SELECT @@datadir AS datadir')) as unknown as [[{ datadir: string }]];
      expect(row.datadir).toBe(`${join(dir, 'data')}/`);
      await conn.end();
      await server.stop();
      expect(await mysqlProblem(server.url, 300)).toMatch(/ECONNREFUSED/);
    },
    120_000,
  );
});

describe('service checks', () => {
  it('never starts a server in place of a configured one that does not answer', async () => {
    const config = loadConfig({ MYSQL_URL: 'mysql://root@127.0.0.1:1/master', VMOODLE_DATA_DIR: scratch() });
    await expect(ensureServices(config)).rejects.toThrow(
      /^the master database does not answer at mysql:\/\/root@127\.0\.0\.1:1\/master \(MYSQL_URL\): .*ECONNREFUSED/,
    );
  });

  it('refuses a configured Redis that does not answer, even in sandbox mode', async () => {
    const config = loadConfig({ REDIS_URL: 'redis://127.0.0.1:1', VMOODLE_DATA_DIR: scratch() });
    await expect(ensureServices(config)).rejects.toThrow(
      /^Redis does not answer at redis:\/\/127\.0\.0\.1:1 \(REDIS_URL\)/,
    );
  });
});
