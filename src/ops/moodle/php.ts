import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { errorKind } from '../../core/errors.ts';
import { nodeOfDataroot, noNodeReason, type NodeConfig } from '../../core/nodes.ts';
import { workSignal } from './work-signal.ts';
import type { MoodleTarget } from './target.ts';

/** How an option of a VMoodle CLI wrapper is given: a bare flag, or `--name=value` with a value matching the pattern. */
export type PhpOption = 'flag' | RegExp;

/**
 * The VMoodle CLI wrappers (vmoodle-spec §2) a command may run, each with the options it may pass: the command's own
 * allow-list, declared in its definition. On a VMoodle code tree a core script (admin/cli/…) run alone acts on the
 * master, and core scripts reject --host, so nothing but a declared wrapper is ever run.
 */
export type PhpScripts = Readonly<Record<string, Readonly<Record<string, PhpOption>>>>;

const SCRIPT_NAME = /^[a-z][a-z_]{0,63}$/;

/** The process's whole environment: no secret of this product's (database, Redis, Slack, keys) reaches PHP. */
const PHP_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' } as const;

/** Output kept of each stream: its start and its end, where Moodle's errors and summaries are. */
const OUTPUT_LIMIT = 32 * 1024;

/** How long a stopped process group has between SIGTERM (Moodle's cron ends gracefully on it) and SIGKILL. */
const KILL_GRACE_MS = 5_000;

export class PhpError extends errorKind('target') {}

/** A run stopped before it ended (its time ran out, or its target's): what it did is not known. */
export class PhpStopped extends errorKind('target') {}

export interface PhpResult {
  /** What Moodle's run came to, as the operator should read it. */
  ok: boolean;
  message: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** One stream's output, bounded: the first quarter of the limit and the last three quarters, the middle cut. */
class BoundedText {
  private head = '';
  private tail = '';
  private cut = 0;

  constructor(private readonly limit: number) {}

  push(chunk: string): void {
    const room = this.limit / 4 - this.head.length;
    if (room > 0) {
      this.head += chunk.slice(0, room);
      chunk = chunk.slice(room);
    }
    this.tail += chunk;
    const excess = this.tail.length - (this.limit * 3) / 4;
    if (excess > 0) {
      this.tail = this.tail.slice(excess);
      this.cut += excess;
    }
  }

  toString(): string {
    return this.cut > 0 ? `${this.head}\n… ${this.cut} characters cut …\n${this.tail}` : this.head + this.tail;
  }
}

interface MoodleMessage {
  pattern: RegExp;
  /** Whether the run failed, whatever its exit code (PHP's die() exits 0). */
  failed: boolean;
  says(match: RegExpExecArray): string;
}

/**
 * What Moodle and VMoodle print when they refuse or fail (moodle-facts §3.7–3.8, VMoodle's bootlib and wrappers),
 * the first match in a run's output naming its result.
 */
const MOODLE_MESSAGES: readonly MoodleMessage[] = [
  {
    pattern: /VMoodling : No configuration for this host/,
    failed: true,
    says: () => 'VMoodle found no registry row for this wwwroot (its vhostname must match exactly)',
  },
  {
    pattern: /VMoodle master server unreachable|VMoodle_make_connection : \S+/,
    failed: true,
    says: () => "VMoodle could not reach the master database from this node (vconfig.php's vmaster settings)",
  },
  {
    pattern: /VMoodling : (Could not fetch virtual moodle configuration|Unsupported Database for VMoodleMaster)/,
    failed: true,
    says: (m) => `VMoodle could not load the instance's configuration: ${m[1]}`,
  },
  {
    pattern: /real moodle instance cannot be used in this VMoodle implementation/,
    failed: true,
    says: () => 'VMoodle refuses to run for the master on this code tree (vmoodledefault is off)',
  },
  {
    pattern: /Not recognized options\s+(.+)/,
    failed: true,
    says: (m) => `the VMoodle wrapper rejected the option ${m[1]?.trim()}`,
  },
  {
    pattern: /Unrecognised options:\s*([\s\S]*?)\s*Please use --help option\./,
    failed: true,
    says: (m) => `Moodle rejected the options ${m[1]?.trim().split(/\s+/).join(' ')}`,
  },
  {
    pattern: /CLI maintenance mode active, cron execution suspended\./,
    failed: true,
    says: () => 'cron suspended: CLI maintenance mode is on',
  },
  {
    pattern: /Moodle upgrade pending, cron execution suspended\./,
    failed: true,
    says: () => 'cron suspended: an upgrade is pending',
  },
  {
    pattern: /Cron is disabled\. Use --force to override\./,
    failed: true,
    says: () => 'cron is disabled on this site (cron_enabled = 0)',
  },
  {
    pattern: /Error: The code you are using is older than the version recorded in the database\./,
    failed: true,
    says: () => "the code on this node is older than the instance's database",
  },
  {
    pattern: /Cannot downgrade (\S+) from (\S+) to (\S+?)\.?$/m,
    failed: true,
    says: (m) =>
      `Moodle cannot downgrade ${m[1]} from ${m[2]} to ${m[3]}: this node's code of it is older than the database`,
  },
];

/** VMoodle's wrappers print the wwwroot they switched to; any other one means the run acted on the wrong site. */
const PLAYING_FOR = /Config check : playing for (\S+)/;

/** A command's last non-empty line of output, where its error usually is. */
export function lastLine(text: string): string | undefined {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1);
}

/** Reads a finished run's exit code and output as Moodle means them. */
export function interpretRun(
  script: string,
  wwwroot: string,
  run: { exitCode: number | null; stdout: string; stderr: string },
): { ok: boolean; message: string } {
  const label = `${script}.php`;
  const output = `${run.stdout}\n${run.stderr}`;
  for (const known of MOODLE_MESSAGES) {
    const match = known.pattern.exec(output);
    if (match && known.failed) return { ok: false, message: `${label}: ${known.says(match)}` };
  }
  const playing = PLAYING_FOR.exec(output);
  if (playing && playing[1] !== wwwroot) {
    return {
      ok: false,
      message: `${label} ran for ${playing[1]}, not ${wwwroot}: VMoodle did not switch to the instance (is local/vmoodle/vconfig.php hooked into config.php?)`,
    };
  }
  if (run.exitCode !== 0) {
    const why = lastLine(run.stderr) ?? lastLine(run.stdout);
    return { ok: false, message: `${label} exited ${run.exitCode ?? 'on a signal'}${why ? `: ${why}` : ''}` };
  }
  return { ok: true, message: `${label} ran for ${wwwroot}` };
}

/** `--name` or `--name=value` words for a script, from its allowed options only. */
function optionWords(
  script: string,
  allowed: Readonly<Record<string, PhpOption>>,
  options: Readonly<Record<string, string | true>>,
): string[] {
  return Object.entries(options).map(([name, value]) => {
    const rule = Object.hasOwn(allowed, name) ? allowed[name] : undefined;
    if (!rule) throw new PhpError(`${script}.php takes no --${name} option`);
    if (rule === 'flag') {
      if (value !== true) throw new PhpError(`--${name} of ${script}.php takes no value`);
      return `--${name}`;
    }
    if (value === true || !rule.test(value))
      throw new PhpError(`--${name} of ${script}.php does not accept that value`);
    return `--${name}=${value}`;
  });
}

/** A wwwroot goes into argv as `--host=…`: an http(s) address with nothing a CLI parser could read otherwise. */
function hostWord(wwwroot: string): string {
  let url: URL | undefined;
  try {
    url = new URL(wwwroot);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password || /[\s'"\\]/.test(wwwroot)) {
    throw new PhpError(`the wwwroot ${JSON.stringify(wwwroot)} cannot be given to VMoodle's --host`);
  }
  return `--host=${wwwroot}`;
}

export interface PhpRunOptions {
  /** The wrappers the command declared, with their options. */
  allowed: PhpScripts;
  timeoutMs: number;
  /** Cuts known secrets out of what the run printed. */
  redact(text: string): string;
}

/**
 * Runs a VMoodle CLI wrapper for one target on its node: `php <code root>/local/vmoodle/cli/<script>.php
 * --host=<wwwroot>`, spawned as execFile does (argv as a list, no shell) in a process group of its own, so that a
 * timeout, or the target's deadline, stops it with every process it started.
 */
export async function runVmoodleScript(
  nodes: readonly NodeConfig[],
  target: MoodleTarget,
  script: string,
  options: Readonly<Record<string, string | true>>,
  opts: PhpRunOptions,
): Promise<PhpResult> {
  if (!SCRIPT_NAME.test(script) || !Object.hasOwn(opts.allowed, script))
    throw new PhpError(`${JSON.stringify(script)} is not a VMoodle CLI wrapper this command declares`);
  const node = nodeOfDataroot(nodes, target.dataroot);
  if (!node) throw new PhpError(`${target.host.shortname}: ${noNodeReason(nodes, target.dataroot)}`);
  const path = join(node.codeRoot, 'local', 'vmoodle', 'cli', `${script}.php`);
  try {
    await access(path, constants.R_OK);
  } catch {
    throw new PhpError(
      `VMoodle's ${script}.php is not in node ${node.name}'s code root (${path}): is local/vmoodle installed there?`,
    );
  }
  const argv = [
    path,
    hostWord(target.host.wwwroot),
    ...optionWords(script, opts.allowed[script] as Readonly<Record<string, PhpOption>>, options),
  ];
  const signal = workSignal();
  signal?.throwIfAborted();

  const started = Date.now();
  const child = spawn(node.php, argv, {
    cwd: node.codeRoot,
    env: PHP_ENV,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    shell: false,
  });
  const stdout = new BoundedText(OUTPUT_LIMIT);
  const stderr = new BoundedText(OUTPUT_LIMIT);
  child.stdout.setEncoding('utf8').on('data', (c: string) => stdout.push(c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => stderr.push(c));

  let stopped = false;
  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), sig);
    } catch (err) {
      // ESRCH: the group is already gone, which is what was wanted.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  const stop = () => {
    if (stopped || child.pid === undefined) return;
    stopped = true;
    killGroup('SIGTERM');
    killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
  };
  const timer = setTimeout(stop, opts.timeoutMs);
  signal?.addEventListener('abort', stop, { once: true });

  const exit = await new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('close', (code) => resolve({ code }));
  });
  clearTimeout(timer);
  signal?.removeEventListener('abort', stop);
  if (stopped) {
    // The group's leader is gone; what it left behind gets no grace.
    killGroup('SIGKILL');
    clearTimeout(killTimer);
  }
  if (exit.error)
    throw new PhpError(
      `node ${node.name} could not start PHP (${node.php}): ${(exit.error as NodeJS.ErrnoException).code ?? exit.error.message}`,
    );
  const durationMs = Date.now() - started;
  if (stopped)
    throw new PhpStopped(
      `${script}.php was stopped after ${(durationMs / 1000).toFixed(1)} s, with every process it started; what it did is not known — verify`,
    );

  const run = { exitCode: exit.code, stdout: opts.redact(stdout.toString()), stderr: opts.redact(stderr.toString()) };
  return { ...interpretRun(script, target.host.wwwroot, run), ...run, durationMs };
}
