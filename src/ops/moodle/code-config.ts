import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SettingRef } from './config.ts';
import { cfgProperty, parsePhp, phpLiteral, phpNodes, type PhpNode } from './php-values.ts';

/** Settings a code tree's PHP sets, which then win over the database: core ones by name, plugins' by plugin. */
export interface ForcedSettings {
  core: Set<string>;
  plugins: Map<string, Set<string>>;
  /** `$CFG->vmoodlehardchildsdefaults` / `vmoodlehardmasterdefaults`: the defaults file VMoodle includes. */
  childDefaults?: string;
  masterDefaults?: string;
  /** `$CFG->vmoodlehardchildsdefaultsexclude`: a pattern of the instances' wwwroots that do not include it. */
  childDefaultsExclude?: string;
  /** Where the caches and their configuration are, as written (a literal, or `$CFG->dataroot . '…'`). */
  paths: Partial<Record<SitePathName, PhpNode>>;
  /** `$CFG->filepermissions` and `$CFG->directorypermissions`, when literals. */
  filePermissions?: number;
  directoryPermissions?: number;
}

export type CacheDirName = 'cachedir' | 'localcachedir';
/** The folders of a site's files that config.php may move out of its dataroot. */
export type FileDirName = 'filedir' | 'trashdir' | 'langlocalroot';
type SitePathName = CacheDirName | FileDirName | 'altcacheconfigpath';
const SITE_PATHS: ReadonlySet<string> = new Set<SitePathName>([
  'cachedir',
  'localcachedir',
  'filedir',
  'trashdir',
  'langlocalroot',
  'altcacheconfigpath',
]);

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

/**
 * Reads what a configuration file forces, as text, never running it: every `$CFG->x = …` anywhere in it (a branch
 * may run), and `$CFG->forced_plugin_settings`, whole or entry by entry.
 */
export function forcedIn(code: string, name: string): ForcedSettings {
  const found: ForcedSettings = { core: new Set(), plugins: new Map(), paths: {} };
  const plugin = (p: string, setting: string) => found.plugins.set(p, (found.plugins.get(p) ?? new Set()).add(setting));
  for (const node of phpNodes(parsePhp(code, name))) {
    if (node.kind !== 'assign') continue;
    const direct = cfgProperty(node.left);
    if (direct === 'forced_plugin_settings' && node.right?.kind === 'array') {
      const value = phpLiteral(node.right) as Record<string, Record<string, unknown>>;
      for (const [p, settings] of Object.entries(value)) for (const s of Object.keys(settings ?? {})) plugin(p, s);
    } else if (direct === 'vmoodlehardchildsdefaults' || direct === 'vmoodlehardmasterdefaults') {
      if (node.right?.kind === 'string')
        found[direct === 'vmoodlehardchildsdefaults' ? 'childDefaults' : 'masterDefaults'] = node.right.value as string;
    } else if (direct === 'vmoodlehardchildsdefaultsexclude') {
      if (node.right?.kind === 'string') found.childDefaultsExclude = node.right.value as string;
    } else if (direct && SITE_PATHS.has(direct) && node.right) {
      found.paths[direct as SitePathName] = node.right;
    } else if (direct === 'filepermissions' || direct === 'directorypermissions') {
      if (node.right?.kind === 'number')
        found[direct === 'filepermissions' ? 'filePermissions' : 'directoryPermissions'] = Number(
          phpLiteral(node.right),
        );
    } else if (direct) {
      found.core.add(direct);
    } else if (
      node.left?.kind === 'offsetlookup' &&
      node.left.what?.kind === 'offsetlookup' &&
      cfgProperty(node.left.what.what) === 'forced_plugin_settings'
    ) {
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
    // biome-ignore lint/plugin: no config.php there: nothing is forced
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
 * Whether VMoodle's boot includes the instances' defaults file for this wwwroot: it does unless
 * `vmoodlehardchildsdefaultsexclude` matches it. A pattern JavaScript cannot read is taken as not matching, so that
 * a setting the file may force is still reported.
 */
function includesChildDefaults(config: ForcedSettings, wwwroot: string): boolean {
  if (!config.childDefaultsExclude) return true;
  try {
    return !new RegExp(config.childDefaultsExclude).test(wwwroot);
  } catch {
    // biome-ignore lint/plugin: an exclusion that is not a valid regular expression excludes nothing, as PHP's preg_match would
    return true;
  }
}

/** The site a setting is read for: the master, or an instance by its wwwroot. */
export interface SiteOfCode {
  kind: 'instance' | 'master';
  wwwroot: string;
}

/**
 * Whether a setting is forced for a site on this code tree: by its config.php, or by the `local/defaults_<name>.php`
 * VMoodle includes for instances (or for the master), which then makes the database value of no effect.
 */
export async function isForced(codeRoot: string, site: SiteOfCode, ref: SettingRef): Promise<boolean> {
  const config = await forcedByFile(join(codeRoot, 'config.php'));
  if (!config) return false;
  const defaultsName =
    site.kind === 'instance'
      ? includesChildDefaults(config, site.wwwroot)
        ? config.childDefaults
        : undefined
      : config.masterDefaults;
  const defaults =
    defaultsName && DEFAULTS_NAME.test(defaultsName)
      ? await forcedByFile(join(codeRoot, 'local', `defaults_${defaultsName}.php`))
      : undefined;
  return [config, defaults].some(
    (f) => f && (ref.plugin ? f.plugins.get(ref.plugin)?.has(ref.name) : f.core.has(ref.name)),
  );
}

/**
 * Where a site keeps its caches, their configuration, its file pool, trash and local language packs, and the modes
 * Moodle gives the files and folders it makes.
 */
export interface SitePaths extends Record<CacheDirName | FileDirName, string> {
  /** The MUC configuration file. */
  mucConfig: string;
  filePermissions: number;
  directoryPermissions: number;
}

/** Moodle's default `$CFG->filepermissions` and `$CFG->directorypermissions` (lib/setup.php). */
const DEFAULT_FILE_PERMISSIONS = 0o666;
const DEFAULT_DIRECTORY_PERMISSIONS = 0o2777;

/**
 * Where a site keeps its caches and files: `$CFG->cachedir`, `localcachedir`, `filedir`, `trashdir`, `langlocalroot`
 * and `altcacheconfigpath` from the code tree's config.php (read as text; a value other than a literal or
 * `$CFG->dataroot . '…'` cannot be known and counts as unset), else in its dataroot; and the permissions it sets.
 */
export async function sitePaths(codeRoot: string | undefined, dataroot: string): Promise<SitePaths> {
  const config = codeRoot ? await forcedByFile(join(codeRoot, 'config.php')) : undefined;
  const path = (name: SitePathName) => {
    const node = config?.paths[name];
    return (node && pathFor(node, dataroot)) || undefined;
  };
  return {
    cachedir: path('cachedir') ?? join(dataroot, 'cache'),
    localcachedir: path('localcachedir') ?? join(dataroot, 'localcache'),
    filedir: path('filedir') ?? join(dataroot, 'filedir'),
    trashdir: path('trashdir') ?? join(dataroot, 'trashdir'),
    langlocalroot: path('langlocalroot') ?? join(dataroot, 'lang'),
    mucConfig: await mucConfigPath(path('altcacheconfigpath'), dataroot),
    filePermissions: config?.filePermissions ?? DEFAULT_FILE_PERMISSIONS,
    directoryPermissions: config?.directoryPermissions ?? DEFAULT_DIRECTORY_PERMISSIONS,
  };
}

/** As cache_config::get_config_file_path(): an alternative folder holds `cacheconfig.php`, an alternative file is used as it is. */
async function mucConfigPath(alternative: string | undefined, dataroot: string): Promise<string> {
  if (!alternative) return join(dataroot, 'muc', 'config.php');
  const isDir = await stat(alternative).then(
    (s) => s.isDirectory(),
    () => false,
  );
  return isDir ? join(alternative, 'cacheconfig.php') : alternative;
}
