import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorKind } from '../../core/errors.ts';
import type { MoodleAccess } from './access.ts';
import { parsePhp, phpNodes, type PhpNode } from './php-values.ts';
import type { Statements } from './statements.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';

export class CodeVersionError extends errorKind('target') {}

/** A version as Moodle keeps it: a number compared as one, and its text as written. */
export interface Version {
  value: number;
  text: string;
}

/** What a site runs, by its database or by a code tree's version.php files. */
export interface SiteVersions {
  core: Version | undefined;
  release: string | undefined;
  /** Plugin (frankenstyle) → its version. */
  plugins: Map<string, Version>;
}

const version = (text: string): Version | undefined => {
  const value = Number(text.trim());
  return text.trim() !== '' && Number.isFinite(value) ? { value, text: text.trim() } : undefined;
};

/** What a version.php sets, read as text, never run: `$version`/`$release`, or `$plugin->version`/`component`. */
function versionFile(code: string, name: string): Record<string, string> {
  const found: Record<string, string> = {};
  const literal = (n: PhpNode | undefined) =>
    n?.kind === 'number' || n?.kind === 'string' ? String(n.value) : undefined;
  for (const node of phpNodes(parsePhp(code, name))) {
    if (node.kind !== 'assign' || node.operator !== '=') continue;
    const left = node.left;
    const key =
      left?.kind === 'variable'
        ? (left.name as string)
        : left?.kind === 'propertylookup' &&
            left.what?.kind === 'variable' &&
            left.what.name === 'plugin' &&
            left.offset?.kind === 'identifier'
          ? `plugin.${left.offset.name as string}`
          : undefined;
    const value = literal(node.right);
    if (key && value !== undefined && !(key in found)) found[key] = value;
  }
  return found;
}

async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR')
      return undefined;
    throw err;
  }
}

async function subfolders(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && /^[a-z][a-z0-9_]*$/.test(d.name))
      .map((d) => d.name)
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Plugin types and their folders (relative to the tree), from a components.json or a db/subplugins.json. */
function pluginTypes(json: string, name: string, base: string): Array<[string, string]> {
  let doc: { plugintypes?: Record<string, string>; subplugintypes?: Record<string, string> };
  try {
    doc = JSON.parse(json) as typeof doc;
  } catch {
    throw new CodeVersionError(`${name} is not valid JSON`);
  }
  // Moodle 4.3 and later name subplugin folders relative to their plugin; before, relative to the tree.
  if (doc.subplugintypes) return Object.entries(doc.subplugintypes).map(([type, dir]) => [type, join(base, dir)]);
  return Object.entries(doc.plugintypes ?? {});
}

/**
 * What a code tree would install, as core_component finds it: core's version.php, then every plugin type of
 * lib/components.json (and the subplugin types plugins declare) with the version.php of each plugin folder.
 */
export async function codeVersions(codeRoot: string): Promise<SiteVersions> {
  const core = await readIfThere(join(codeRoot, 'version.php'));
  if (core === undefined) throw new CodeVersionError(`${codeRoot} has no version.php: it is not a Moodle code tree`);
  const top = versionFile(core, join(codeRoot, 'version.php'));
  const components = await readIfThere(join(codeRoot, 'lib', 'components.json'));
  if (components === undefined)
    throw new CodeVersionError(`${codeRoot} has no lib/components.json: it is not a Moodle code tree`);
  const plugins = new Map<string, Version>();
  const scan = async (types: Array<[string, string]>): Promise<void> => {
    for (const [type, dir] of types) {
      if (!/^[a-z][a-z0-9]*$/.test(type) || dir.split('/').includes('..')) continue;
      for (const name of await subfolders(join(codeRoot, dir))) {
        const file = join(codeRoot, dir, name, 'version.php');
        const text = await readIfThere(file);
        if (text === undefined) continue;
        const v = version(versionFile(text, file)['plugin.version'] ?? '');
        if (v) plugins.set(`${type}_${name}`, v);
        const sub = await readIfThere(join(codeRoot, dir, name, 'db', 'subplugins.json'));
        if (sub !== undefined) await scan(pluginTypes(sub, join(dir, name, 'db', 'subplugins.json'), join(dir, name)));
      }
    }
  };
  await scan(pluginTypes(components, 'lib/components.json', ''));
  return { core: version(top.version ?? ''), release: top.release, plugins };
}

/** What a site's database says it runs: `config.version` and `release`, and each plugin's `config_plugins` version. */
export async function databaseVersions(
  access: MoodleAccess,
  sql: Statements,
  site: MoodleTarget,
): Promise<SiteVersions> {
  const [core, plugins] = await sql.readAll<[{ name: string; value: string }, { plugin: string; value: string }]>([
    [`SELECT name, value FROM ${access.table(site, MOODLE_TABLES.config)} WHERE name IN ('version', 'release')`, []],
    [`SELECT plugin, value FROM ${access.table(site, MOODLE_TABLES.configPlugins)} WHERE name = 'version'`, []],
  ]);
  const setting = (name: string) => core.find((c) => c.name === name)?.value;
  return {
    core: version(setting('version') ?? ''),
    release: setting('release'),
    plugins: new Map(
      plugins.flatMap((p) => {
        const v = version(p.value);
        return v ? [[p.plugin, v] as const] : [];
      }),
    ),
  };
}

/** How a database and a code tree differ, as Moodle's upgrade sees them. */
export interface VersionGaps {
  /** The code is newer (an upgrade) or older (a downgrade Moodle refuses) than the database, or the same. */
  core: 'same' | 'newer' | 'older';
  newer: Array<{ plugin: string; from: string; to: string }>;
  older: Array<{ plugin: string; from: string; to: string }>;
  /** In the code, not installed yet. */
  added: string[];
  /** Installed, no longer in the code (Moodle's "missing from disk"). */
  missing: string[];
}

export function versionGaps(db: SiteVersions, code: SiteVersions): VersionGaps {
  const compare = (a: Version | undefined, b: Version | undefined) =>
    !a || !b || a.value === b.value ? 'same' : b.value > a.value ? 'newer' : 'older';
  const gaps: VersionGaps = { core: compare(db.core, code.core), newer: [], older: [], added: [], missing: [] };
  for (const [plugin, to] of code.plugins) {
    const from = db.plugins.get(plugin);
    if (!from) gaps.added.push(plugin);
    else if (to.value > from.value) gaps.newer.push({ plugin, from: from.text, to: to.text });
    else if (to.value < from.value) gaps.older.push({ plugin, from: from.text, to: to.text });
  }
  gaps.missing = [...db.plugins.keys()].filter((p) => !code.plugins.has(p));
  return gaps;
}

/** A site's version as the operator reads it: its release and version number. */
export const versionText = (v: SiteVersions) =>
  `${v.release ?? 'release unknown'} (${v.core?.text ?? 'version unknown'})`;
