/** The process's terminal as the command line and the terminal chat use it: its streams, environment, prompt and Ctrl-C. */
export interface TerminalIO {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  /** Asks a yes/no question on a terminal; undefined when there is no terminal to ask on. */
  confirm?(question: string): Promise<boolean>;
  /** A terminal to draw progress on. */
  tty?: boolean;
  /** The terminal's width; lines to a pipe or a file are cut at DEFAULT_WIDTH. */
  columns?: number;
  /** Calls `stop` on Ctrl-C (or SIGTERM) until the returned function is called. */
  onInterrupt?(stop: () => void): () => void;
}

/**
 * Output to a reader that went away (`vmoodle runs show 42 | head`) ends the process quietly, as other command-line
 * tools do, instead of with a stack trace; a run it started goes on.
 */
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  });
}

export function processIO(): TerminalIO {
  quietOnClosedPipe(process.stdout);
  quietOnClosedPipe(process.stderr);
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    tty: process.stderr.isTTY === true,
    columns: process.stdout.isTTY ? process.stdout.columns : undefined,
    onInterrupt: (stop) => {
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      return () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      };
    },
    confirm: process.stdin.isTTY
      ? async (question) => {
          const { createInterface } = await import('node:readline/promises');
          const rl = createInterface({ input: process.stdin, output: process.stderr });
          try {
            return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
          } finally {
            rl.close();
          }
        }
      : undefined,
  };
}
