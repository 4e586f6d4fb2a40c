import Table from 'cli-table3';
import type { TerminalIO } from '../core/terminal.ts';

const DEFAULT_WIDTH = 160;
/** The narrowest a cell is cut to, however many columns share the line. */
const MIN_CELL = 12;

const PLAIN = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

/** Human text or, with --json, one JSON document per command. */
export class Output {
  constructor(
    private readonly io: TerminalIO,
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
    const table = new Table({
      head,
      chars: PLAIN,
      style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
    });
    // Each cell gets an even share of the line; the text a cell cannot show is cut, never wrapped.
    const share = Math.max(MIN_CELL, Math.floor((this.io.columns ?? DEFAULT_WIDTH) / Math.max(1, head.length)) - 2);
    table.push(...rows.map((r) => r.map((cell) => this.cut(String(cell), share))));
    const text = table
      .toString()
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n');
    this.io.stdout(`${text}\n`);
  }
}
