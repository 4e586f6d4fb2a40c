import Table from 'cli-table3';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  /** Asks a yes/no question on a terminal; undefined when there is no terminal to ask on. */
  confirm?(question: string): Promise<boolean>;
  /** A terminal to draw progress on. */
  tty?: boolean;
}

export const processIO = (): CliIO => ({
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  tty: process.stderr.isTTY === true,
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
});

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

  line(text = ''): void {
    if (!this.json) this.io.stdout(`${text}\n`);
  }

  data(value: unknown): void {
    if (this.json) this.io.stdout(`${JSON.stringify(value, null, 2)}\n`);
  }

  table(head: string[], rows: Array<Array<string | number>>): void {
    if (this.json) return;
    const table = new Table({ head, chars: PLAIN, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });
    table.push(...rows.map((r) => r.map(String)));
    const text = table.toString().split('\n').map((l) => l.trimEnd()).join('\n');
    this.io.stdout(`${text}\n`);
  }
}
