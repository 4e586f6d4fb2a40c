import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import {
  freePort,
  findBinary,
  MissingBinaryError,
  spawnLogged,
  stopChild,
  waitUntil,
  type PrivateServer,
} from './private-server.ts';

export const MARIADB_INSTALL = 'apt-get install -y mariadb-server';

async function socketProblem(socketPath: string): Promise<string | undefined> {
  try {
    const conn = await mysql.createConnection({ socketPath, user: 'root', connectTimeout: 500 });
    await conn.end();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Starts a MariaDB server with its own data folder, socket and loopback port. The port is kept in the data
 * folder and reused, because sandbox registry rows name it in vdbhost.
 */
export async function startPrivateMariadb(dir: string): Promise<PrivateServer> {
  const server = findBinary(['mariadbd', 'mysqld']);
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db']);
  if (!server || !installDb) throw new MissingBinaryError('mariadbd', MARIADB_INSTALL);
  const datadir = join(dir, 'data');
  const logFile = join(dir, 'mariadb.log');
  const socket = join(dir, 'mariadb.sock');
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(datadir, 'mysql'))) {
    const init = spawnSync(
      installDb,
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...asRoot,
      ],
      { encoding: 'utf8' },
    );
    if (init.status !== 0)
      throw new Error(`mariadb-install-db failed: ${(init.stderr || init.stdout).trim().split('\n').pop()}`);
  }
  const portFile = join(dir, 'port');
  const port = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8')) : await freePort();
  writeFileSync(portFile, String(port));
  const child = spawnLogged(
    server,
    [
      '--no-defaults',
      `--datadir=${datadir}`,
      `--socket=${socket}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${join(dir, 'mariadb.pid')}`,
      '--innodb-buffer-pool-size=256M',
      ...asRoot,
    ],
    logFile,
  );
  await waitUntil('mariadbd', () => socketProblem(socket), child, 60_000, logFile);
  // install-db creates root@localhost only; loopback TCP is what instance rows and the executor use.
  const conn = await mysql.createConnection({ socketPath: socket, user: 'root' });
  await conn.query("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'");
  await conn.query("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION");
  await conn.end();
  return { name: 'MariaDB', url: `mysql://root@127.0.0.1:${port}`, stop: () => stopChild(child) };
}
