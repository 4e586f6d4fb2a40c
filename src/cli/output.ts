import Table from 'cli-table3';

export interface CliIO {
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

const DEFAULT_WIDTH = 160;
/** The narrowest a cell is cut to, however many columns share the line. */
const MIN_CELL = 12;

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

export function processIO(): CliIO {
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

const PLAIN = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '',
  'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ',
};

/** Human text or, with --json, one JSON document per command. */
export class Output {
  constructor(
    private readonly io: CliIO,
    readonly json: boolean,
  ) {}

  /** One line of a value at most as wide as the terminal: a 60 KB setting is not printed whole. */
  cut(text: string, width = this.io.columns ?? DEFAULT_WIDTH): string {
    const flat = text.replace(/\s*\n\s*/g, ' ⏎ ');
    return flat.length <= width ? flat : `${flat.slice(0, Math.max(1, width - 1))}…`;
  }

  line(text = ''): void {
    if (!this.json) this.io.stdout(`${text}\n`);
  }

  data(value: unknown): void {
    if (this.json) this.io.stdout(`${JSON.stringify(value, null, 2)}\n`);
  }

  table(head: string[], rows: Array<Array<string | number>>): void {
    if (this.json) return;
    const table = new Table({ head, chars: PLAIN, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });
    // Each cell gets an even share of the line; the text a cell cannot show is cut, never wrapped.
    const share = Math.max(MIN_CELL, Math.floor((this.io.columns ?? DEFAULT_WIDTH) / Math.max(1, head.length)) - 2);
    table.push(...rows.map((r) => r.map((cell) => this.cut(String(cell), share))));
    const text = table.toString().split('\n').map((l) => l.trimEnd()).join('\n');
    this.io.stdout(`${text}\n`);
  }
}
