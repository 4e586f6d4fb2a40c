import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { parseMysqlUrl } from '../db/mysql-url.ts';

/** Why a server did not answer, in a few words, or undefined when it did. */
export async function redisProblem(url: string, timeoutMs = 1500): Promise<string | undefined> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // ioredis rejects with "Connection is closed"; the socket's own error says why.
  let cause: Error | undefined;
  client.on('error', (err: Error) => {
    cause ??= err;
  });
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (err) {
    return (cause ?? (err as Error)).message;
  } finally {
    client.disconnect();
  }
}

export async function mysqlProblem(url: string, timeoutMs = 1500): Promise<string | undefined> {
  const { database: _ignored, ...server } = parseMysqlUrl(url);
  try {
    const conn = await mysql.createConnection({ ...server, connectTimeout: timeoutMs });
    await conn.query('SELECT 1');
    await conn.end();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Redis must never evict BullMQ's keys; returns a warning when it might. */
export async function redisEvictionWarning(url: string): Promise<string | undefined> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    const reply = (await client.config('GET', 'maxmemory-policy')) as string[];
    const policy = reply[1];
    return policy && policy !== 'noeviction'
      ? `Redis runs with maxmemory-policy ${policy}; set it to noeviction or queued jobs may be lost`
      : undefined;
  } catch (err) {
    // Managed Redis services often refuse CONFIG; the operator is told what could not be checked.
    return `could not read Redis's maxmemory-policy (${(err as Error).message.split('\n')[0]}); make sure it is noeviction, or queued jobs may be lost`;
  } finally {
    client.disconnect();
  }
}
