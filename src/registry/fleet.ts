import { errorKind } from '../core/errors.ts';
import { closest } from 'fastest-levenshtein';
import type { MasterHost } from '../core/config.ts';
import type { Instance } from './instance.ts';
import { brokenRows, normaliseWwwroot } from './validation.ts';

/** A host a command can act on or read from: a registry instance, or the master (which has no row, id 0). */
export interface Host {
  kind: 'instance' | 'master';
  id: number;
  shortname: string;
  name: string;
  wwwroot: string;
  enabled: boolean;
}

export class HostLookupError extends errorKind('not_found') {}

/** A registry row that breaks a rule selection relies on, with why; it is never a target. */
export interface LeftOutHost {
  host: Host;
  reason: string;
}

export function instanceHost(instance: Instance): Host {
  return {
    kind: 'instance',
    id: instance.id,
    shortname: instance.shortname,
    name: instance.name,
    wwwroot: instance.vhostname,
    enabled: instance.enabled,
  };
}

/**
 * The registry as loaded at one moment, indexed for naming hosts by wwwroot or short name. Rows that break a rule
 * selection relies on (written by another tool) are kept apart in `leftOut`, unless `withBroken` asks for every
 * row, as the registry's own verbs do so that such a row can be found and fixed.
 */
export class Fleet {
  readonly hosts: readonly Host[];
  readonly leftOut: readonly LeftOutHost[];
  readonly masterHost: Host;
  private readonly byKey = new Map<string, Host[]>();
  /** Each key's spelling as registered, for hints. */
  private readonly spelling = new Map<string, string>();

  constructor(
    readonly instances: readonly Instance[],
    master: MasterHost,
    withBroken = false,
  ) {
    const broken = withBroken ? new Map<number, string>() : brokenRows(instances);
    this.hosts = instances.filter((i) => !broken.has(i.id)).map(instanceHost);
    this.leftOut = instances
      .filter((i) => broken.has(i.id))
      .map((i) => ({ host: instanceHost(i), reason: broken.get(i.id) as string }));
    this.masterHost = {
      kind: 'master',
      id: 0,
      shortname: master.shortname,
      name: 'Master',
      wwwroot: master.wwwroot ?? '',
      enabled: true,
    };
    for (const host of [this.masterHost, ...this.hosts]) {
      for (const spelt of new Set([host.shortname, normaliseWwwroot(host.wwwroot)])) {
        const key = spelt.toLowerCase();
        if (!key) continue;
        this.spelling.set(key, spelt);
        const list = this.byKey.get(key);
        if (list) list.push(host);
        else this.byKey.set(key, [host]);
      }
    }
  }

  /** The host named by a wwwroot (trailing slashes ignored) or a short name, case-insensitive. */
  find(name: string): Host | undefined {
    const matches = this.byKey.get(normaliseWwwroot(name).toLowerCase());
    if (!matches) return undefined;
    if (matches.length > 1) {
      throw new HostLookupError(
        `'${name}' names ${matches.length} hosts (${matches.map((h) => h.wwwroot).join(', ')}); use the wwwroot`,
      );
    }
    return matches[0];
  }

  /** The left-out row a name stands for, if any, to say why it cannot be a target. */
  findLeftOut(name: string): LeftOutHost | undefined {
    const key = normaliseWwwroot(name).toLowerCase();
    return this.leftOut.find(
      (l) => l.host.shortname.toLowerCase() === key || normaliseWwwroot(l.host.wwwroot).toLowerCase() === key,
    );
  }

  /** The existing name nearest to an unknown one, for "did you mean" hints. */
  closestName(name: string): string | undefined {
    if (this.byKey.size === 0) return undefined;
    return this.spelling.get(closest(normaliseWwwroot(name).toLowerCase(), [...this.byKey.keys()]));
  }

  /** A host by what a run recorded of it (kind and id), or undefined when it left the registry. */
  byKindAndId(kind: string, id: number): Host | undefined {
    // An instance being made is worked on from the master's side.
    return kind === 'master' || kind === 'new' ? this.masterHost : this.hosts.find((h) => h.id === id);
  }

  get enabledCount(): number {
    return this.hosts.filter((h) => h.enabled).length;
  }
}
