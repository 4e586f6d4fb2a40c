import { errorKind } from '../../core/errors.ts';
import mariadb from 'node-sql-parser/build/mariadb.js';

/**
 * Operator SQL read with a real parser for MariaDB's dialect: a copytable condition is checked node by node and
 * rebuilt from its syntax tree (never run as typed), and a statement is called read-only only when its tree says so.
 */
const parser = new mariadb.Parser();
const DIALECT = { database: 'MariaDB' };

export class SqlRefusal extends errorKind('refused_sql') {}

/** The text with every quoted string, identifier and literal blanked, so that what is left is SQL itself. */
function unquoted(sql: string): string {
  let out = '';
  let quote: string | undefined;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i] as string;
    if (quote) {
      if (c === '\\' && quote !== '`') {
        out += '  ';
        i++;
      } else if (c === quote) {
        if (sql[i + 1] === quote) {
          out += '  ';
          i++;
        } else {
          quote = undefined;
          out += c;
        }
      } else out += ' ';
    } else {
      if (c === "'" || c === '"' || c === '`') quote = c;
      out += c;
    }
  }
  return out;
}

/** Any comment: `/* … *\/` (MariaDB runs the text of `/*! … *\/` and `/*M! … *\/`), `-- ` and `#`. */
export const hasComment = (sql: string) => /\/\*|--|#/.test(unquoted(sql));

/** A comment MariaDB executes: what it holds runs, though a parser sees a comment. */
export const hasExecutableComment = (sql: string) => /\/\*M?!/.test(unquoted(sql));

export type Node = Record<string, unknown> & { type?: string };

/** Functions a condition may call: pure ones over strings, numbers and times. */
const CONDITION_FUNCTIONS = new Set([
  'ABS',
  'CEIL',
  'CEILING',
  'CHAR_LENGTH',
  'COALESCE',
  'CONCAT',
  'FLOOR',
  'FROM_UNIXTIME',
  'IFNULL',
  'INSTR',
  'LEFT',
  'LENGTH',
  'LOCATE',
  'LOWER',
  'LTRIM',
  'MOD',
  'NULLIF',
  'REPLACE',
  'RIGHT',
  'ROUND',
  'RTRIM',
  'SUBSTR',
  'SUBSTRING',
  'TRIM',
  'UNIX_TIMESTAMP',
  'UPPER',
]);

/** Operators a condition may use, as the parser names them. */
const BINARY = new Set([
  'AND',
  'OR',
  'XOR',
  '&&',
  '||',
  '=',
  '<>',
  '!=',
  '<',
  '>',
  '<=',
  '>=',
  '<=>',
  'LIKE',
  'NOT LIKE',
  'IN',
  'NOT IN',
  'IS',
  'IS NOT',
  'BETWEEN',
  'NOT BETWEEN',
  'REGEXP',
  'NOT REGEXP',
  'RLIKE',
  '+',
  '-',
  '*',
  '/',
  '%',
  'DIV',
  'MOD',
]);
const UNARY = new Set(['NOT', '!', '-', '+']);

/** Functions that change state or reach outside the database: a SELECT calling one is not a read. */
const STATEFUL_FUNCTIONS = new Set([
  'NEXTVAL',
  'SETVAL',
  'LASTVAL',
  'GET_LOCK',
  'RELEASE_LOCK',
  'RELEASE_ALL_LOCKS',
  'SLEEP',
  'BENCHMARK',
  'LOAD_FILE',
  'MASTER_POS_WAIT',
  'MASTER_GTID_WAIT',
  'SYS_EXEC',
  'SYS_EVAL',
]);

const functionName = (node: Node): string => {
  const name = node.name as string | { name?: Array<{ value: string }> };
  return (typeof name === 'string' ? name : (name?.name?.map((p) => p.value).join('.') ?? '')).toUpperCase();
};

const columnName = (node: Node): string => {
  const column = node.column as string | { expr?: { value?: string } };
  return typeof column === 'string' ? column : String(column?.expr?.value ?? '');
};

/** A quoted literal as MariaDB reads it: doubled quotes and backslash escapes resolved. */
function unescapeLiteral(raw: string): string {
  const escapes: Record<string, string> = { n: '\n', r: '\r', t: '\t', '0': '\0', Z: '\x1a', b: '\b' };
  return raw.replace(/''|""|\\(.)/gs, (m, c: string | undefined) => {
    if (c === undefined) return m[0] as string;
    if (c === '%' || c === '_') return m;
    return escapes[c] ?? c;
  });
}

function parse(sql: string): Node[] {
  try {
    const ast = parser.astify(sql, DIALECT) as unknown as Node | Node[];
    return Array.isArray(ast) ? ast : [ast];
  } catch (err) {
    const column = (err as { location?: { start?: { column?: number } } }).location?.start?.column;
    throw Object.assign(new SqlRefusal('not valid SQL'), { column });
  }
}

/** A statement's tree with the tables and columns it names (`kind::db::table`, `kind::table::column`), as the parser lists them. */
export function parseStatement(sql: string): { ast: Node; tables: string[]; columns: string[] } {
  let result: { ast: Node | Node[]; tableList: string[]; columnList: string[] };
  try {
    result = parser.parse(sql, DIALECT) as unknown as typeof result;
  } catch (err) {
    const column = (err as { location?: { start?: { column?: number } } }).location?.start?.column;
    throw Object.assign(new SqlRefusal('not valid SQL'), { column });
  }
  const asts = Array.isArray(result.ast) ? result.ast : [result.ast];
  if (asts.length !== 1) throw new SqlRefusal('one statement at a time');
  return { ast: asts[0] as Node, tables: result.tableList, columns: result.columnList };
}

export interface CompiledCondition {
  /** The condition as this product writes it: columns quoted, every value a `?`. */
  sql: string;
  binds: unknown[];
}

export interface ConditionScope {
  /** The table the condition is about, as the operator names it (without prefix). */
  table: string;
  /** Its columns, when known; a condition naming another is refused. */
  columns?: ReadonlySet<string>;
  /** The `:name` values; one the condition uses and that is not here is refused. */
  params: Readonly<Record<string, string | undefined>>;
}

const HEAD = 'SELECT * FROM t WHERE ';

/**
 * An operator's WHERE clause as a boolean expression over one table's own columns, literals and `:name`
 * parameters, with functions from a short allow-list; rebuilt from its syntax tree. Anything else (a UNION, a
 * subquery, a comment, another table, a function off the list, a second statement) is refused, saying what.
 */
export function compileCondition(text: string, scope: ConditionScope): CompiledCondition {
  if (hasComment(text)) throw new SqlRefusal('comments are not allowed in a condition');
  let statements: Node[];
  try {
    statements = parse(HEAD + text);
  } catch (err) {
    const column = (err as { column?: number }).column;
    throw new SqlRefusal(
      `not a valid SQL condition${column ? ` (at character ${Math.max(1, column - HEAD.length)})` : ''}`,
    );
  }
  if (statements.length !== 1) throw new SqlRefusal('one condition only, without ;');
  const select = statements[0] as Node;
  if (select._next)
    throw new SqlRefusal(
      `${String(select.set_op ?? 'union').toUpperCase()} is not allowed; give one condition on ${scope.table}`,
    );
  const into = select.into as Node | null;
  if (
    select.groupby ||
    select.having ||
    select.orderby ||
    select.limit ||
    select.locking_read ||
    select.with ||
    into?.type ||
    select.window
  ) {
    throw new SqlRefusal('only a condition is allowed (no GROUP BY, ORDER BY, LIMIT, INTO or locking clause)');
  }
  const binds: unknown[] = [];
  const build = (node: Node): string => {
    switch (node.type) {
      case 'binary_expr': {
        const op = String(node.operator).toUpperCase();
        if (!BINARY.has(op)) throw new SqlRefusal(`the operator ${op} is not allowed`);
        return `(${build(node.left as Node)} ${op} ${build(node.right as Node)})`;
      }
      case 'unary_expr': {
        const op = String(node.operator).toUpperCase();
        if (!UNARY.has(op)) throw new SqlRefusal(`the operator ${op} is not allowed`);
        return `(${op === 'NOT' ? 'NOT ' : op}${build(node.expr as Node)})`;
      }
      case 'expr_list': {
        const items = node.value as Node[];
        if (items.some((i) => 'ast' in i))
          throw new SqlRefusal('a subquery is not allowed; give one condition on the table');
        return `(${items.map(build).join(', ')})`;
      }
      case 'column_ref': {
        const column = columnName(node);
        if (node.table || node.db || node.schema)
          throw new SqlRefusal(
            `only the columns of ${scope.table} may be named, not ${[node.db, node.table, column].filter(Boolean).join('.')}`,
          );
        if (!/^[A-Za-z0-9_]{1,64}$/.test(column)) throw new SqlRefusal(`'${column}' is not a column name`);
        if (scope.columns && !scope.columns.has(column.toLowerCase()))
          throw new SqlRefusal(`${scope.table} has no column ${column}`);
        return `\`${column}\``;
      }
      case 'function': {
        const name = functionName(node);
        if (!CONDITION_FUNCTIONS.has(name) || node.over)
          throw new SqlRefusal(`the function ${name} is not allowed (allowed: ${[...CONDITION_FUNCTIONS].join(', ')})`);
        const args = (node.args as Node | null)?.value as Node[] | undefined;
        return `${name}(${(args ?? []).map(build).join(', ')})`;
      }
      case 'number': {
        const raw = String(node.value);
        if (!/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw)) throw new SqlRefusal(`'${raw}' is not a number`);
        binds.push(raw);
        return '?';
      }
      case 'single_quote_string':
      case 'double_quote_string':
      case 'string':
        binds.push(unescapeLiteral(String(node.value)));
        return '?';
      case 'bool':
        return node.value ? 'TRUE' : 'FALSE';
      case 'null':
        return 'NULL';
      case 'param': {
        const name = String(node.value);
        const value = scope.params[name];
        if (value === undefined) throw new SqlRefusal(`no value for :${name}`);
        binds.push(value);
        return '?';
      }
      case 'select':
        throw new SqlRefusal('a subquery is not allowed; give one condition on the table');
      default:
        throw new SqlRefusal(`${String(node.type ?? 'this').replaceAll('_', ' ')} is not allowed in a condition`);
    }
  };
  return { sql: build(select.where as Node), binds };
}

/** Whether a tree holds a function call from a set (a deep walk: subqueries and unions included). */
function callsAny(node: unknown, names: ReadonlySet<string>): boolean {
  if (!node || typeof node !== 'object') return false;
  if ((node as Node).type === 'function' && names.has(functionName(node as Node))) return true;
  return Object.values(node).some((child) => callsAny(child, names));
}

/**
 * A statement that only reads: one SELECT (unions included) with no INTO, no locking clause and no call that
 * changes state, and no comment MariaDB would execute. What the parser cannot read is not called read-only.
 */
export function isReadOnlyStatement(statement: string): boolean {
  if (hasExecutableComment(statement)) return false;
  let statements: Node[];
  try {
    statements = parse(statement.replace(/\{([a-z][a-z0-9_]*)\}/g, '$1'));
  } catch {
    // biome-ignore lint/plugin: what the parser cannot read is refused by the caller
    return false;
  }
  if (statements.length !== 1) return false;
  for (let select: Node | undefined = statements[0]; select; select = select._next as Node | undefined) {
    if (select.type !== 'select') return false;
    if ((select.into as Node | null)?.type || select.locking_read) return false;
  }
  return !callsAny(statements[0], STATEFUL_FUNCTIONS);
}
