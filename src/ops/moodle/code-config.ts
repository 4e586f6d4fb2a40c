import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SettingRef } from './config.ts';
import { parsePhp, phpLiteral, type PhpNode } from './php-values.ts';

/** Settings a code tree's PHP sets, which then win over the database: core ones by name, plugins' by plugin. */
export interface ForcedSettings {
  core: Set<string>;
  plugins: Map<string, Set<string>>;
  /** `$CFG->vmoodlehardchildsdefaults` / `vmoodlehardmasterdefaults`: the defaults file VMoodle includes. */
  childDefaults?: string;
  masterDefaults?: string;
  /** `$CFG->cachedir` and `$CFG->localcachedir`, as written (a literal, or `$CFG->dataroot . '…'`). */
  cacheDirs: Partial<Record<CacheDirName, PhpNode>>;
}

export type CacheDirName = 'cachedir' | 'localcachedir';

/** A path expression of config.php for one site: literals, and `$CFG->dataroot` joined with `.`; undefined otherwise. */
function pathFor(node: PhpNode, dataroot: string): string | undefined {
  if (node.kind === 'string') return node.value as string;
  if (cfgProperty(node) === 'dataroot') return dataroot;
  if (node.kind === 'bin' && node.type === '.' && node.left && node.right) {
    const [left, right] = [pathFor(node.left, dataroot), pathFor(node.right, dataroot)];
    return left !== undefined && right !== undefined ? left + right : undefined;
  }
  return undefined;
}

/** `$CFG->name`, or undefined for any other node. */
function cfgProperty(node: PhpNode | undefined): string | undefined {
  if (node?.kind !== 'propertylookup' || node.what?.kind !== 'variable' || node.what.name !== 'CFG') return undefined;
  return node.offset?.kind === 'identifier' ? (node.offset.name as string) : undefined;
}

/** Every node of a tree, depth first. */
function* nodes(node: unknown): Generator<PhpNode> {
  if (!node || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const child of node) yield* nodes(child);
    return;
  }
  if (typeof (node as PhpNode).kind === 'string') yield node as PhpNode;
  for (const value of Object.values(node)) if (value && typeof value === 'object') yield* nodes(value);
}

/**
 * Reads what a configuration file forces, as text, never running it: every `$CFG->x = …` anywhere in it (a branch
 * may run), and `$CFG->forced_plugin_settings`, whole or entry by entry.
 */
export function forcedIn(code: string, name: string): ForcedSettings {
  const found: ForcedSettings = { core: new Set(), plugins: new Map(), cacheDirs: {} };
  const plugin = (p: string, setting: string) => found.plugins.set(p, (found.plugins.get(p) ?? new Set()).add(setting));
  for (const node of nodes(parsePhp(code, name))) {
    if (node.kind !== 'assign') continue;
    const direct = cfgProperty(node.left);
    if (direct === 'forced_plugin_settings' && node.right?.kind === 'array') {
      const value = phpLiteral(node.right) as Record<string, Record<string, unknown>>;
      for (const [p, settings] of Object.entries(value)) for (const s of Object.keys(settings ?? {})) plugin(p, s);
    } else if (direct === 'vmoodlehardchildsdefaults' || direct === 'vmoodlehardmasterdefaults') {
      if (node.right?.kind === 'string') found[direct === 'vmoodlehardchildsdefaults' ? 'childDefaults' : 'masterDefaults'] = node.right.value as string;
    } else if ((direct === 'cachedir' || direct === 'localcachedir') && node.right) {
      found.cacheDirs[direct] = node.right;
    } else if (direct) {
      found.core.add(direct);
    } else if (node.left?.kind === 'offsetlookup' && node.left.what?.kind === 'offsetlookup' && cfgProperty(node.left.what.what) === 'forced_plugin_settings') {
      const [p, s] = [node.left.what.offset, node.left.offset];
      if (p?.kind === 'string' && s?.kind === 'string') plugin(p.value as string, s.value as string);
    }
  }
  return found;
}

const cache = new Map<string, { mtimeMs: number; forced: ForcedSettings }>();

/** What one file forces, read again only when it changed; a file that is not there forces nothing. */
async function forcedByFile(path: string): Promise<ForcedSettings | undefined> {
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
  const known = cache.get(path);
  if (known?.mtimeMs === mtimeMs) return known.forced;
  const forced = forcedIn(await readFile(path, 'utf8'), path);
  cache.set(path, { mtimeMs, forced });
  return forced;
}

const DEFAULTS_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Whether a setting is forced for a site on this code tree: by its config.php, or by the `local/defaults_<name>.php`
 * VMoodle includes for instances (or for the master), which then makes the database value of no effect.
 */
export async function isForced(codeRoot: string, kind: 'instance' | 'master', ref: SettingRef): Promise<boolean> {
  const config = await forcedByFile(join(codeRoot, 'config.php'));
  if (!config) return false;
  const defaultsName = kind === 'instance' ? config.childDefaults : config.masterDefaults;
  const defaults = defaultsName && DEFAULTS_NAME.test(defaultsName) ? await forcedByFile(join(codeRoot, 'local', `defaults_${defaultsName}.php`)) : undefined;
  return [config, defaults].some((f) => f && (ref.plugin ? f.plugins.get(ref.plugin)?.has(ref.name) : f.core.has(ref.name)));
}

/**
 * Where a site keeps its caches: `$CFG->cachedir` and `$CFG->localcachedir` from the code tree's config.php (read as
 * text; a value other than a literal or `$CFG->dataroot . '…'` cannot be known and counts as unset), else in its dataroot.
 */
export async function cacheDirs(codeRoot: string | undefined, dataroot: string): Promise<Record<CacheDirName, string>> {
  const config = codeRoot ? await forcedByFile(join(codeRoot, 'config.php')) : undefined;
  const dir = (name: CacheDirName, fallback: string) => {
    const node = config?.cacheDirs[name];
    return (node && pathFor(node, dataroot)) || join(dataroot, fallback);
  };
  return { cachedir: dir('cachedir', 'cache'), localcachedir: dir('localcachedir', 'localcache') };
}
