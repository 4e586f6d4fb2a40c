import { spawn } from 'node:child_process';
import { errorKind } from '../../core/errors.ts';
import { lastLine } from '../moodle/php.ts';

/** A delivery command failed, or could not start; its message says which and why, in words an operator acts on. */
export class ToolError extends errorKind('target') {
  constructor(
    message: string,
    readonly output = '',
  ) {
    super(message);
  }
}

/** Output kept of a command: enough to show what changed, never a whole tree listing. */
const OUTPUT_LIMIT = 64 * 1024;

/** The commands' whole environment: nothing of the product's (database, Redis, Slack) reaches them; git asks for nothing. */
const TOOL_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', GIT_TERMINAL_PROMPT: '0' } as const;

export interface ToolRun {
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  /** The system user to run as, through `sudo -n -u`. */
  user?: string | undefined;
  cwd?: string;
  /** The node named in messages. */
  node: string;
  timeoutMs?: number;
}

/**
 * Why a command failed, as tool_delivery's runner tells its exit codes apart (126 permission, 127 not found), and
 * sudo's refusal when its rule asks for a password.
 */
export function failureText(command: string, node: string, code: number | null, stderr: string, user?: string): string {
  if (user && /a (terminal|password) is required/.test(stderr))
    return `sudo on node ${node} asks for a password to run ${command} as ${user}: give the worker's user a NOPASSWD rule for it`;
  if (code === 126)
    return `permission problem on node ${node}: ${command} could not be run${user ? ` as ${user}` : ''} (exit 126)`;
  if (code === 127)
    return `command not found on node ${node}: ${command} is not installed${user ? ` for ${user}` : ''} (exit 127)`;
  const why = lastLine(stderr);
  return `${command} failed on node ${node} (exit ${code ?? 'on a signal'})${why ? `: ${why}` : ''}`;
}

/**
 * Runs one command as argv (no shell), as the node's delivery user when one is set. Resolves with its output when
 * it exits 0; otherwise throws a ToolError naming the cause.
 */
export function runTool(argv: readonly string[], opts: ToolOptions): Promise<ToolRun> {
  const [command, ...args] = argv as [string, ...string[]];
  const [file, words] = opts.user ? ['sudo', ['-n', '-u', opts.user, '--', command, ...args]] : [command, args];
  return new Promise((resolve, reject) => {
    const child = spawn(file, words, { cwd: opts.cwd, env: TOOL_ENV, stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    let stdout = '';
    let stderr = '';
    const keep = (text: string, chunk: string) =>
      text.length < OUTPUT_LIMIT ? text + chunk.slice(0, OUTPUT_LIMIT - text.length) : text;
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout = keep(stdout, c)));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = keep(stderr, c)));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new ToolError(
          err.code === 'ENOENT'
            ? `command not found on node ${opts.node}: ${file} is not installed`
            : err.code === 'EACCES'
              ? `permission problem on node ${opts.node}: ${file} could not be run (EACCES)`
              : `${file} could not be started on node ${opts.node}: ${err.code ?? err.message}`,
        ),
      );
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ stdout, stderr });
      const text =
        signal === 'SIGKILL' && opts.timeoutMs
          ? `${command} was stopped on node ${opts.node} after ${opts.timeoutMs / 1000} s`
          : failureText(command, opts.node, code, stderr, opts.user);
      reject(new ToolError(text, `${stdout}${stderr}`));
    });
  });
}
