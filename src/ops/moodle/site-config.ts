import { cfgProperty, parsePhp, phpNodes, type PhpNode } from './php-values.ts';

/** What a standalone Moodle's config.php says of where the site and its database are. */
export interface SiteConfig {
  wwwroot: string;
  dataroot: string;
  dbtype: string;
  dbhost: string;
  dbname: string;
  dbuser: string;
  dbpass: string;
  prefix: string;
  /** `$CFG->dboptions`' entries that place the database: dbport, dbpersist, dbsocket. */
  dbport?: number;
  dbpersist: boolean;
  dbsocket?: string;
  /** The file includes VMoodle's boot (`local/vmoodle/vconfig.php` or `bootlib.php`): it is the master of a fleet. */
  vmoodleBoot: boolean;
}

/** The settings a site is registered from; each must be set at the top level of the file, to a value read as text. */
const REQUIRED = ['wwwroot', 'dataroot', 'dbtype', 'dbhost', 'dbname', 'dbuser', 'prefix'] as const;

const line = (node: PhpNode) => node.loc?.start.line ?? 0;

/**
 * The text a value is, when it can be known without running PHP: a string (quoted, heredoc, nowdoc), a number, a
 * boolean, and `.` of those and of settings assigned above it in the file. Undefined for anything else (a call, a
 * constant, a variable).
 */
function textOf(node: PhpNode | undefined, known: ReadonlyMap<string, unknown>): string | number | boolean | undefined {
  if (!node) return undefined;
  switch (node.kind) {
    case 'string':
    case 'nowdoc':
      return node.value as string;
    case 'number':
      return Number(String(node.value).replace(/_/g, ''));
    case 'boolean':
      return node.value as boolean;
    case 'encapsed': {
      // Backticks run a shell command: its output, not its text, would be the value.
      if (node.type === 'shell') return undefined;
      const parts = (node.value as Array<{ expression: PhpNode }>).map((p) => textOf(p.expression, known));
      return parts.every((p) => p !== undefined) ? parts.join('') : undefined;
    }
    case 'bin': {
      if (node.type !== '.') return undefined;
      const [left, right] = [textOf(node.left, known), textOf(node.right, known)];
      return left !== undefined && right !== undefined ? `${left}${right}` : undefined;
    }
    case 'propertylookup': {
      const name = cfgProperty(node);
      const value = name === undefined ? undefined : known.get(name);
      return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? value : undefined;
    }
    default:
      return undefined;
  }
}

/** `array(...)` or `[...]` of named entries whose values are text; undefined entries are left out. */
function optionsOf(
  node: PhpNode | undefined,
  known: ReadonlyMap<string, unknown>,
): Record<string, string | number | boolean> | undefined {
  if (node?.kind !== 'array') return undefined;
  const out: Record<string, string | number | boolean> = {};
  for (const item of node.items ?? []) {
    const key = textOf(item.key ?? undefined, known);
    const value = textOf(item.value, known);
    if (key !== undefined && value !== undefined) out[String(key)] = value;
  }
  return out;
}

const VMOODLE_BOOT = /local\/vmoodle\/(vconfig|bootlib)\.php/;

/**
 * Reads a config.php as text, never running it. Only top-level assignments count: one inside a condition or a
 * function may or may not run, and only PHP could tell. Each missing or unreadable setting is named with its line.
 */
export function readSiteConfig(code: string, file: string): { config?: SiteConfig; problems: string[] } {
  let program: PhpNode;
  try {
    program = parsePhp(code, file, true);
  } catch (err) {
    return { problems: [`not PHP that can be read: ${(err as Error).message}`] };
  }
  const known = new Map<string, unknown>();
  const unreadable = new Map<string, string>();
  // VMoodle's hook may sit in a branch (the CLI precheck); an include of its boot anywhere says what the file is.
  const vmoodleBoot = [...phpNodes(program)].some(
    (n) =>
      n.kind === 'include' && [...phpNodes(n)].some((s) => s.kind === 'string' && VMOODLE_BOOT.test(String(s.value))),
  );
  for (const statement of program.children ?? []) {
    const expression = statement.kind === 'expressionstatement' ? statement.expression : undefined;
    if (expression?.kind !== 'assign') continue;
    const name = cfgProperty(expression.left);
    if (!name) continue;
    const assigned = name === 'dboptions' ? optionsOf(expression.right, known) : textOf(expression.right, known);
    const before = known.get(name);
    const value =
      expression.operator === '='
        ? assigned
        : expression.operator === '.=' &&
            assigned !== undefined &&
            (typeof before === 'string' || typeof before === 'number')
          ? `${before}${assigned}`
          : undefined;
    if (value === undefined) {
      known.delete(name);
      const shell = [...phpNodes(expression.right)].some((n) => n.kind === 'encapsed' && n.type === 'shell');
      unreadable.set(
        name,
        shell
          ? `$CFG->${name} (line ${line(statement)}) is built with backticks, a shell command: only PHP could work this out, and it is never run here`
          : `$CFG->${name} (line ${line(statement)}) is not a value that can be read without running PHP`,
      );
    } else {
      known.set(name, value);
      unreadable.delete(name);
    }
  }
  const problems = REQUIRED.filter((k) => !known.has(k)).map(
    (k) => unreadable.get(k) ?? `$CFG->${k} is not set at the top level of the file`,
  );
  if (unreadable.has('dbpass')) problems.push(unreadable.get('dbpass') as string);
  if (problems.length) return { problems };
  const text = (k: string) => String(known.get(k) ?? '');
  const options = (known.get('dboptions') ?? {}) as Record<string, string | number | boolean>;
  const port = options.dbport === undefined || options.dbport === '' ? undefined : Number(options.dbport);
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
    problems.push(`$CFG->dboptions['dbport'] '${options.dbport}' is not a port number`);
  if (problems.length) return { problems };
  return {
    problems,
    config: {
      wwwroot: text('wwwroot'),
      dataroot: text('dataroot'),
      dbtype: text('dbtype'),
      dbhost: text('dbhost'),
      dbname: text('dbname'),
      dbuser: text('dbuser'),
      dbpass: text('dbpass'),
      prefix: text('prefix'),
      dbport: port,
      dbpersist: Boolean(options.dbpersist) && options.dbpersist !== '0',
      dbsocket: options.dbsocket === undefined || options.dbsocket === '' ? undefined : String(options.dbsocket),
      vmoodleBoot,
    },
  };
}
