import { stringify } from 'csv-stringify/sync';

/**
 * A cell a spreadsheet would read as a formula (OWASP's list: = + - @, tab and carriage return first) gets a leading
 * quote, so that a value taken from a site or typed by an operator cannot run when an admin opens the file.
 */
const neutralised = (s: string) => (/^[=+\-@\t\r]/.test(s) ? `'${s}` : s);

/** Rows as a CSV file every cell of which is safe to open in a spreadsheet. */
export const safeCsv = (rows: ReadonlyArray<ReadonlyArray<unknown>>): string =>
  stringify(rows as unknown[][], { cast: { string: neutralised } });
