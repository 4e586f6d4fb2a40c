import { parse } from 'csv-parse/sync';

/** VMoodle's nodelist.csv columns (vmoodle-spec §5.5), in its order. */
export const NODELIST_COLUMNS = [
  'vhostname',
  'vtemplate',
  'name',
  'shortname',
  'description',
  'vdbtype',
  'vdbhost',
  'vdblogin',
  'vdbpass',
  'vdbname',
  'vdbpersist',
  'vdbprefix',
  'vdatapath',
  'mnet',
  'services',
] as const;

/** Lines VMoodle's reader skips: empty, or starting with one of these (a comment). */
const COMMENT_START = /^[([\-#/ ]/;

/** VMoodle refuses longer lines. */
export const MAX_LINE_BYTES = 1024;

export interface LineProblem {
  /** 1-based line of the file. */
  line: number;
  message: string;
}

export interface NodelistRow {
  line: number;
  /** Every column of the header with its cell, `&#44` turned back into a comma. */
  cells: Record<string, string>;
}

export interface Nodelist {
  header: string[];
  /** Lines read after the header (comments and empty lines not counted). */
  count: number;
  rows: NodelistRow[];
  problems: LineProblem[];
}

/** An extra column: `config_<name>` for core, `<component>|<name>` for a plugin's setting. */
export function settingColumn(column: string): { plugin: string | null; name: string } | undefined {
  if (column.startsWith('config_') && column.length > 'config_'.length)
    return { plugin: null, name: column.slice('config_'.length) };
  const bar = column.indexOf('|');
  if (bar > 0 && bar < column.length - 1) return { plugin: column.slice(0, bar), name: column.slice(bar + 1) };
  return undefined;
}

/**
 * Reads a nodelist.csv as VMoodle's cli/clilib.php does: `;` between cells, the first line that is not a comment is the
 * header, comment and empty lines skipped, a byte order mark dropped, UTF-8 or ISO-8859-1, lines of at most 1 KB.
 * Every problem is reported with its line; a row with one is left out of `rows`.
 */
export function parseNodelist(bytes: Buffer | string, encoding: 'utf-8' | 'iso-8859-1' = 'utf-8'): Nodelist {
  const text = (typeof bytes === 'string' ? bytes : bytes.toString(encoding === 'utf-8' ? 'utf8' : 'latin1')).replace(
    /^\uFEFF/,
    '',
  );
  const problems: LineProblem[] = [];
  // Skipped lines stay as empty ones, so that the parser's line numbers are the file's.
  const kept = text.split(/\r?\n/).map((line, i) => {
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
      problems.push({ line: i + 1, message: `longer than ${MAX_LINE_BYTES} bytes` });
      return '';
    }
    return line.trim() === '' || COMMENT_START.test(line) ? '' : line;
  });
  let records: Array<{ record: string[]; info: { lines: number } }>;
  try {
    records = (parse as (input: string, options: object) => typeof records)(kept.join('\n'), {
      delimiter: ';',
      skip_empty_lines: true,
      relax_column_count: true,
      relax_quotes: true,
      info: true,
      trim: true,
    });
  } catch (err) {
    return {
      header: [],
      count: 0,
      rows: [],
      problems: [
        ...problems,
        { line: Number((err as { lines?: number }).lines ?? 0), message: (err as Error).message },
      ],
    };
  }
  const [head, ...body] = records;
  if (!head)
    return {
      header: [],
      count: 0,
      rows: [],
      problems: [...problems, { line: 0, message: 'no header line: the file holds only comments' }],
    };
  const header = head.record;
  const headLine = head.info.lines;
  const unknown = header.filter((c) => !(NODELIST_COLUMNS as readonly string[]).includes(c) && !settingColumn(c));
  if (unknown.length)
    problems.push({
      line: headLine,
      message: `unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((c) => `'${c}'`).join(', ')} (known: ${NODELIST_COLUMNS.join(';')}, config_<name>, <component>|<name>)`,
    });
  const twice = header.filter((c, i) => header.indexOf(c) !== i);
  if (twice.length)
    problems.push({
      line: headLine,
      message: `column${twice.length > 1 ? 's' : ''} given twice: ${[...new Set(twice)].join(', ')}`,
    });
  const rows: NodelistRow[] = [];
  for (const { record, info } of body) {
    if (record.length !== header.length) {
      problems.push({ line: info.lines, message: `${record.length} cells, the header has ${header.length}` });
      continue;
    }
    rows.push({
      line: info.lines,
      cells: Object.fromEntries(header.map((c, i) => [c, (record[i] as string).replaceAll('&#44', ',')])),
    });
  }
  return { header, count: body.length, rows, problems };
}
