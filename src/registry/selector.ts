import { errorKind, OpsError } from '../core/errors.ts';
import { compileGlobList, type HostGlob } from './glob.ts';
import type { Fleet, Host, LeftOutHost } from './fleet.ts';
import { containsFilter, notContainsFilter, regexFilter, type LabelFilter } from './label-filter.ts';

/** Which hosts a command acts on, in VMoodle's `run_command.php` terms. */
export interface Selector {
  /** Hosts by wwwroot or short name, or `*` for every instance. */
  tohosts?: readonly string[] | '*';
  /** Comma-separated globs over the whole wwwroot. */
  tohostsmatch?: string;
  /** Comma-separated globs; matching hosts are left out. */
  exclude?: string;
  /** The source host of copy and sync commands; never a target. Defaults to the master. */
  fromhost?: string;
  includeDisabled?: boolean;
  contains?: string;
  notContains?: string;
  /** `/pattern/flags`; the extra flag `n` negates. */
  regex?: string;
  /** The master alone, which has no registry row (a snapshot of it, an instance created beside it). */
  master?: boolean;
}

export interface SelectionCounts {
  /** Instances in the registry. */
  registry: number;
  /** Hosts named or matched by --tohosts / --tohostsmatch. */
  matched: number;
  excluded: number;
  sourceLeftOut: number;
  disabledLeftOut: number;
  filteredOut: number;
  targets: number;
}

export interface Selection {
  targets: Host[];
  source: Host;
  counts: SelectionCounts;
  /** Rows the selector would have picked but that break a registry rule, each with why. */
  leftOut: LeftOutHost[];
}

/** One line an operator reads about a left-out row. */
export const leftOutLine = (l: LeftOutHost) => `left out ${l.host.shortname} (${l.host.wwwroot}): ${l.reason}`;

export class SelectionError extends errorKind('bad_selection') {}

interface CompiledSelector {
  pick: (fleet: Fleet) => Host[];
  /** Whether a host not in the fleet's targets would have been picked (names never pick a left-out row). */
  wouldPick: (host: Host) => boolean;
  pickedBy: string;
  exclude: HostGlob[];
  filters: LabelFilter[];
}

function compile(selector: Selector): CompiledSelector {
  const { tohosts, tohostsmatch } = selector;
  const hasHosts = tohosts === '*' || (tohosts !== undefined && tohosts.length > 0);
  const hasMatch = tohostsmatch !== undefined && tohostsmatch !== '';
  if (hasHosts && hasMatch) {
    throw new SelectionError('give either --tohosts (names) or --tohostsmatch (globs), not both');
  }
  if (!hasHosts && !hasMatch) {
    throw new SelectionError(
      "no targets given: use --tohosts with names or '*', or --tohostsmatch with globs such as '*.example.org'",
    );
  }
  const exclude = selector.exclude ? compileGlobList(selector.exclude, '--exclude') : [];
  const filters: LabelFilter[] = [];
  if (selector.contains !== undefined) filters.push(containsFilter(selector.contains));
  if (selector.notContains !== undefined) filters.push(notContainsFilter(selector.notContains));
  if (selector.regex !== undefined) filters.push(regexFilter(selector.regex));

  if (tohosts === '*')
    return { pick: (fleet) => [...fleet.hosts], wouldPick: () => true, pickedBy: "--tohosts '*'", exclude, filters };
  if (hasHosts) {
    const names = [...new Set((tohosts as readonly string[]).map((n) => n.trim()))];
    if (names.includes('')) throw new SelectionError('--tohosts: an empty host name; remove the extra comma');
    if (names.includes('*')) throw new SelectionError("--tohosts: '*' stands alone; it cannot be mixed with names");
    return {
      pick: (fleet) => namedHosts(fleet, names),
      wouldPick: () => false,
      pickedBy: `--tohosts '${names.join(',')}'`,
      exclude,
      filters,
    };
  }
  const globs = compileGlobList(tohostsmatch as string, '--tohostsmatch');
  return {
    pick: (fleet) => fleet.hosts.filter((h) => globs.some((g) => g.test(h.wwwroot))),
    wouldPick: (h) => globs.some((g) => g.test(h.wwwroot)),
    pickedBy: `--tohostsmatch '${tohostsmatch}'`,
    exclude,
    filters,
  };
}

function namedHosts(fleet: Fleet, names: readonly string[]): Host[] {
  const found: Host[] = [];
  const unknown: string[] = [];
  for (const name of names) {
    const host = fleet.find(name);
    const leftOut = host ? undefined : fleet.findLeftOut(name);
    if (leftOut)
      throw new OpsError('registry', `${leftOut.host.shortname} is left out of selection: ${leftOut.reason}`, {
        hint: 'fix its registry row with vmoodle instances edit',
      });
    if (host) found.push(host);
    else unknown.push(name);
  }
  if (unknown.length > 0) {
    const hints = unknown.map((name) => {
      const near = fleet.closestName(name);
      return near ? `'${name}' (did you mean '${near}'?)` : `'${name}'`;
    });
    throw new SelectionError(`unknown host${unknown.length > 1 ? 's' : ''} in --tohosts: ${hints.join(', ')}`);
  }
  return [...new Map(found.map((h) => [`${h.kind}:${h.id}`, h])).values()];
}

function resolveSource(fleet: Fleet, fromhost: string | undefined): Host {
  if (fromhost === undefined || fromhost === '') return fleet.masterHost;
  const host = fleet.find(fromhost);
  if (host) return host;
  const near = fleet.closestName(fromhost);
  throw new SelectionError(`unknown host in --fromhost: '${fromhost}'${near ? ` (did you mean '${near}'?)` : ''}`);
}

/** The master as the only target, and its own source: no other target flag goes with it. */
function masterSelection(fleet: Fleet, selector: Selector): Selection {
  const others = (
    ['tohosts', 'tohostsmatch', 'exclude', 'fromhost', 'contains', 'notContains', 'regex'] as const
  ).filter((k) => selector[k] !== undefined);
  if (others.length)
    throw new SelectionError(
      `--master selects the master alone: leave out ${others.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}`,
    );
  const master = fleet.masterHost;
  if (!master.wwwroot) throw new SelectionError('the master has no wwwroot: set VMOODLE_MASTER_WWWROOT');
  return {
    targets: [master],
    source: master,
    leftOut: [],
    counts: {
      registry: fleet.hosts.length,
      matched: 1,
      excluded: 0,
      sourceLeftOut: 0,
      disabledLeftOut: 0,
      filteredOut: 0,
      targets: 1,
    },
  };
}

const sameHost = (a: Host, b: Host) => a.kind === b.kind && a.id === b.id;

/**
 * Resolves a selector against a loaded fleet. Every input is checked before anything is matched, and an empty
 * result is an error that names the filter that emptied it.
 */
export function resolveTargets(fleet: Fleet, selector: Selector): Selection {
  if (selector.master) return masterSelection(fleet, selector);
  const compiled = compile(selector);
  const source = resolveSource(fleet, selector.fromhost);

  const matched = compiled.pick(fleet);
  if (matched.length === 0)
    throw new SelectionError(`${compiled.pickedBy} matched no instance (${fleet.hosts.length} in the registry)`);

  const kept = compiled.exclude.length
    ? matched.filter((h) => !compiled.exclude.some((g) => g.test(h.wwwroot)))
    : matched;
  const excluded = matched.length - kept.length;
  if (kept.length === 0) {
    throw new SelectionError(
      `--exclude '${selector.exclude}' left out all ${matched.length} hosts that ${compiled.pickedBy} selected`,
    );
  }

  const notSource = kept.filter((h) => !sameHost(h, source));
  const sourceLeftOut = kept.length - notSource.length;
  if (notSource.length === 0) {
    throw new SelectionError(
      `the only host selected is the source host ${source.wwwroot || source.shortname} (--fromhost), which is never a target`,
    );
  }

  const live = selector.includeDisabled ? notSource : notSource.filter((h) => h.enabled);
  const disabledLeftOut = notSource.length - live.length;
  if (live.length === 0) {
    throw new SelectionError(
      `all ${notSource.length} selected instances are disabled; add --include-disabled to target them`,
    );
  }

  let targets = live;
  for (const filter of compiled.filters) {
    const before = targets.length;
    targets = targets.filter((h) => filter.test([h.name, h.shortname, h.wwwroot]));
    if (targets.length === 0) throw new SelectionError(`${filter.description} left out all ${before} remaining hosts`);
  }

  const leftOut = fleet.leftOut.filter(
    (l) => compiled.wouldPick(l.host) && !compiled.exclude.some((g) => g.test(l.host.wwwroot)),
  );
  return {
    targets,
    source,
    leftOut,
    counts: {
      registry: fleet.hosts.length,
      matched: matched.length,
      excluded,
      sourceLeftOut,
      disabledLeftOut,
      filteredOut: live.length - targets.length,
      targets: targets.length,
    },
  };
}
