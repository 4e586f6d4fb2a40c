import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { afterAll } from 'vitest';
import { quoteId } from '../../src/core/db/identifiers.ts';
import { parseMysqlUrl, withDatabase } from '../../src/core/db/mysql-url.ts';
import { loadDump, restoreSql, runSqlIn, type RestoreOptions } from '../../src/ops/moodle/dump.ts';
import { buildThinInstances } from '../../src/ops/lifecycle/sandbox-thin.ts';
import { testServices } from './services.ts';

export interface TestDatabase {
  name: string;
  /** mysql://… naming this database. */
  url: string;
}

const uniqueName = (label: string) => `${testServices().runId}_${label}_${randomBytes(3).toString('hex')}`;

export const serverConnection = () =>
  mysql.createConnection({ ...parseMysqlUrl(testServices().mysqlServer), multipleStatements: true });

/** An empty database of this suite's own, dropped after the suite. */
export async function createDatabase(label: string): Promise<TestDatabase> {
  const name = uniqueName(label);
  const conn = await serverConnection();
  await conn.query(`CREATE DATABASE ${quoteId(name)} DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await conn.end();
  afterAll(() => dropDatabase(name));
  return { name, url: withDatabase(testServices().mysqlServer, name) };
}

export async function dropDatabase(name: string): Promise<void> {
  const conn = await serverConnection();
  await conn.query(`DROP DATABASE IF EXISTS ${quoteId(name)}`);
  await conn.end();
}

/**
 * A database restored from the real Moodle dump, leased from the pool the global setup restored (or restored
 * now when the pool is empty). It is the suite's to change and is dropped after it.
 */
export async function leaseMoodleDatabase(): Promise<TestDatabase> {
  const { redisUrl, poolKey, moodleDump, mysqlServer } = testServices();
  if (!moodleDump) throw new Error('no Moodle dump: set VMOODLE_MOODLE_DUMP');
  const redis = new Redis(redisUrl);
  let name = await redis.lpop(poolKey);
  redis.disconnect();
  if (!name) {
    name = uniqueName('moodle');
    await runSqlIn(parseMysqlUrl(mysqlServer), name, restoreSql(await loadDump(moodleDump)));
  }
  const leased = name;
  afterAll(() => dropDatabase(leased));
  return { name: leased, url: withDatabase(mysqlServer, leased) };
}

/** Thin instances (see src/sandbox/thin.ts) from the real dump, in a database of this suite's. */
export async function thinInstances(
  database: string,
  count: number,
  opts: Omit<RestoreOptions, 'prefix'>,
): Promise<string[]> {
  const { moodleDump, mysqlServer } = testServices();
  if (!moodleDump) throw new Error('no Moodle dump: set VMOODLE_MOODLE_DUMP');
  return buildThinInstances(parseMysqlUrl(mysqlServer), database, await loadDump(moodleDump), count, opts);
}
