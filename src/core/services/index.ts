import { errorKind } from '../errors.ts';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_REDIS_URL, type Config } from '../config.ts';
import { redactUrl, withDatabase } from '../db/mysql-url.ts';
import type { PrivateServer } from './private-server.ts';

export interface ServiceUrls {
  mysqlUrl: string;
  redisUrl: string;
}

export interface RunningServices extends ServiceUrls {
  started: PrivateServer[];
  warnings: string[];
  stop(): Promise<void>;
}

export class ServiceError extends errorKind('unavailable') {}

const stateFile = (config: Config) => join(config.dataDir, 'services.json');

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // biome-ignore lint/plugin: kill(pid, 0) throws when no such process lives: that is the answer
    return false;
  }
}

/**
 * Where the servers are for this process. Configured addresses are used as they are; in sandbox mode a
 * running `npm start` that had to start private servers has written their addresses to the data folder.
 */
export function serviceUrls(config: Config): ServiceUrls {
  if (config.sandbox && existsSync(stateFile(config))) {
    const state = JSON.parse(readFileSync(stateFile(config), 'utf8')) as ServiceUrls & { pid: number };
    if (pidAlive(state.pid)) return { mysqlUrl: state.mysqlUrl, redisUrl: state.redisUrl };
  }
  return { mysqlUrl: config.mysqlUrl, redisUrl: config.redisUrl };
}

/**
 * Makes sure Redis and MariaDB answer. Only in sandbox mode, and only for the default addresses, a server that
 * does not answer is replaced by a private one under the data folder; a configured server that does not answer
 * is an error, never a reason to start an empty one.
 */
export async function ensureServices(config: Config): Promise<RunningServices> {
  // The database and Redis drivers load here, with the product's start, not with every command line.
  const [{ mysqlProblem, redisEvictionWarning, redisProblem }, { startPrivateMariadb }, { startPrivateRedis }] =
    await Promise.all([import('./probe.ts'), import('./private-mariadb.ts'), import('./private-redis.ts')]);
  const started: PrivateServer[] = [];
  const stop = async () => {
    for (const server of started.reverse()) await server.stop();
    if (started.length > 0) rmSync(stateFile(config), { force: true });
  };
  try {
    let redisUrl = config.redisUrl;
    const redisDown = await redisProblem(redisUrl);
    if (redisDown) {
      if (!config.sandbox || redisUrl !== DEFAULT_REDIS_URL) {
        throw new ServiceError(`Redis does not answer at ${redactUrl(redisUrl)} (REDIS_URL): ${redisDown}`);
      }
      const server = await startPrivateRedis(join(config.dataDir, 'redis'));
      started.push(server);
      redisUrl = server.url;
    }
    let mysqlUrl = config.mysqlUrl;
    const mysqlDown = await mysqlProblem(mysqlUrl);
    if (mysqlDown) {
      if (!config.sandbox) {
        throw new ServiceError(
          `the master database does not answer at ${redactUrl(mysqlUrl)} (MYSQL_URL): ${mysqlDown}`,
        );
      }
      const server = await startPrivateMariadb(join(config.dataDir, 'mariadb'));
      started.push(server);
      mysqlUrl = withDatabase(server.url, new URL(config.mysqlUrl).pathname.slice(1));
    }
    if (started.length > 0) {
      mkdirSync(config.dataDir, { recursive: true });
      writeFileSync(stateFile(config), JSON.stringify({ mysqlUrl, redisUrl, pid: process.pid }));
    }
    const warning = await redisEvictionWarning(redisUrl);
    return { mysqlUrl, redisUrl, started, warnings: warning ? [warning] : [], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
