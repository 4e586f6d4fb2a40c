import { OpsError } from '../errors.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';

/** A server this product started for itself under its data folder, and stops on exit. */
export interface PrivateServer {
  readonly name: string;
  readonly url: string;
  stop(): Promise<void>;
}

export class MissingBinaryError extends OpsError {
  constructor(
    readonly binary: string,
    readonly installCommand: string,
  ) {
    super('unavailable', `${binary} is not installed`, { hint: `install it with: ${installCommand}` });
  }
}

/** The first executable of that name on PATH or in the sbin folders, where Debian puts server daemons. */
export function findBinary(names: readonly string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const name of names) {
    for (const dir of dirs) {
      const path = join(dir, name);
      try {
        accessSync(path, constants.X_OK);
        return path;
      } catch {
        // Not there, or not executable: the next folder of the PATH may have it.
      }
    }
  }
  return undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export function spawnLogged(binary: string, args: string[], logFile: string): ChildProcess {
  const log = openSync(logFile, 'a');
  return spawn(binary, args, { stdio: ['ignore', log, log] });
}

export async function waitUntil(
  what: string,
  check: () => Promise<string | undefined>,
  child: ChildProcess,
  timeoutMs: number,
  logFile: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let problem: string | undefined = 'not started';
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} on start; see ${logFile}`);
    problem = await check();
    if (problem === undefined) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`${what} did not answer within ${timeoutMs / 1000} s (${problem}); see ${logFile}`);
}

export function stopChild(child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
