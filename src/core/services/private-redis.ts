import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { redisProblem } from './probe.ts';
import {
  findBinary,
  freePort,
  MissingBinaryError,
  spawnLogged,
  stopChild,
  waitUntil,
  type PrivateServer,
} from './private-server.ts';

export const REDIS_INSTALL = 'apt-get install -y redis-server';

/** Starts a redis-server on a free loopback port, keeping nothing on disk, with BullMQ's eviction policy. */
export async function startPrivateRedis(dir: string): Promise<PrivateServer> {
  const binary = findBinary(['redis-server']);
  if (!binary) throw new MissingBinaryError('redis-server', REDIS_INSTALL);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const child = spawnLogged(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
    ],
    logFile,
  );
  const url = `redis://127.0.0.1:${port}`;
  await waitUntil('redis-server', () => redisProblem(url, 500), child, 10_000, logFile);
  return { name: 'Redis', url, stop: () => stopChild(child) };
}
