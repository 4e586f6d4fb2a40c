import { mysqlSplitterOptions, splitQuery } from 'dbgate-query-splitter';

/**
 * An operator's SQL as statements: split at `;` outside quotes and comments (and DELIMITER blocks), comments
 * kept inside each statement, empty statements dropped.
 */
export function splitStatements(sql: string): string[] {
  return (splitQuery(sql, { ...mysqlSplitterOptions, ignoreComments: false }) as string[])
    .map((s) => s.trim())
    .filter((s) => s.replace(/--[^\n]*|\/\*[\s\S]*?\*\/|#[^\n]*/g, '').trim() !== '');
}

const strip = (s: string) => s.replace(/--[^\n]*|\/\*[\s\S]*?\*\/|#[^\n]*/g, ' ').trim();

/** Statements MySQL commits implicitly, which no transaction can hold back. */
export function commitsImplicitly(statement: string): boolean {
  return /^(CREATE|ALTER|DROP|RENAME|TRUNCATE|GRANT|REVOKE|LOCK|UNLOCK|START|BEGIN|COMMIT|ROLLBACK|SET\s+AUTOCOMMIT)\b/i.test(
    strip(statement),
  );
}

/** Named parameters a statement uses (`:name`), outside quotes. */
export function namedParameters(sql: string): string[] {
  const names = new Set<string>();
  const unquoted = sql.replace(/'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*"|`[^`]*`/g, '');
  for (const m of strip(unquoted).matchAll(/(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(m[1] as string);
  return [...names];
}
