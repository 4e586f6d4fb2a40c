import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { waitFor } from './wait.ts';

/** A redis-server of the test's own on a fixed port, stopped and started again like a restarted server. */
export class OwnRedis {
  private child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    private readonly dir: string,
    /** Keeps its data across a restart, every write synced (as production runs Redis: with AOF). */
    private readonly persistent = false,
  ) {}
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        this.persistent ? 'yes' : 'no',
        ...(this.persistent ? ['--appendfsync', 'always'] : []),
        '--maxmemory-policy',
        'noeviction',
      ],
      { stdio: 'ignore' },
    );
    await waitFor(
      'redis-server to answer',
      () => spawnSync('redis-cli', ['-p', String(this.port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG',
      { timeoutMs: 5_000 },
    );
  }
  /** Empties it, as a Redis restarted without AOF comes back. */
  async empty(): Promise<void> {
    const admin = new Redis(this.url);
    try {
      await admin.flushall();
    } finally {
      admin.disconnect();
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}
