import { safeCsv } from '../core/csv.ts';
import { CATALOG } from '../ops/commands/index.ts';
import type { RunRow, TargetRow } from '../ops/executor/run-model.ts';

/** What a host without an item shows in a comparison (a plugin not installed, a capability the role does not set). */
const ABSENT = '(none)';

/** Items × hosts: each compared host's value of each item, from the targets a compare run read. */
export interface Comparison {
  /** What an item is: plugin, capability, allowed role. */
  item: string;
  hosts: string[];
  items: string[];
  /** item → host → value; a host missing here has no such item. */
  cells: Map<string, Map<string, string>>;
  /** Hosts whose values could not be read, with why. */
  unread: Array<{ host: string; why: string }>;
}

/** One item whose hosts do not agree: the value most of them have, and the hosts that have another. */
interface Difference {
  item: string;
  majority: string;
  odd: Array<{ host: string; value: string }>;
}

/**
 * The comparison a compare run's results make: each target that was read returned its values as a JSON object of
 * item → value. Items are sorted; hosts keep the run's order.
 */
export function buildComparison(item: string, targets: readonly TargetRow[]): Comparison {
  const cells = new Map<string, Map<string, string>>();
  const hosts: string[] = [];
  const unread: Comparison['unread'] = [];
  for (const t of [...targets].sort((a, b) => a.position - b.position)) {
    if (t.returned_value === null) {
      unread.push({ host: t.shortname, why: t.message ?? t.status });
      continue;
    }
    hosts.push(t.shortname);
    for (const [key, value] of Object.entries(JSON.parse(t.returned_value) as Record<string, string>)) {
      let row = cells.get(key);
      if (!row) cells.set(key, (row = new Map()));
      row.set(t.shortname, value);
    }
  }
  return { item, hosts, items: [...cells.keys()].sort(), cells, unread };
}

/** The comparison a compare run's results make; undefined for a run of any other command. */
export function comparisonOf(run: Pick<RunRow, 'command'>, targets: readonly TargetRow[]): Comparison | undefined {
  const item = CATALOG.get(run.command)?.compares;
  return item ? buildComparison(item, targets) : undefined;
}

export const cellOf = (cmp: Comparison, item: string, host: string) => cmp.cells.get(item)?.get(host) ?? ABSENT;

/** The items on which the hosts differ. A majority tie goes to the value the earlier host has. */
export function differences(cmp: Comparison): Difference[] {
  const found: Difference[] = [];
  for (const item of cmp.items) {
    const counts = new Map<string, number>();
    for (const host of cmp.hosts) counts.set(cellOf(cmp, item, host), (counts.get(cellOf(cmp, item, host)) ?? 0) + 1);
    if (counts.size < 2) continue;
    const majority = [...counts].reduce((best, next) => (next[1] > best[1] ? next : best))[0];
    found.push({
      item,
      majority,
      odd: cmp.hosts
        .filter((h) => cellOf(cmp, item, h) !== majority)
        .map((host) => ({ host, value: cellOf(cmp, item, host) })),
    });
  }
  return found;
}

const plural = (n: number, word: string) => `${n} ${n === 1 ? word : word.replace(/y$/, 'ie')}${n === 1 ? '' : 's'}`;
const HOST_LINES = 15;
const ITEMS_PER_HOST = 8;

/**
 * The differences only, by host: which hosts differ from the majority, and on what. Long lists are cut and say how
 * many more there are; the full matrix is the CSV.
 */
export function comparisonSummary(cmp: Comparison): string[] {
  const diffs = differences(cmp);
  const lines = [
    diffs.length === 0
      ? `All ${plural(cmp.hosts.length, 'host')} agree on ${plural(cmp.items.length, cmp.item)}.`
      : `${diffs.length} of ${plural(cmp.items.length, cmp.item)} ${diffs.length === 1 ? 'differs' : 'differ'} across ${plural(cmp.hosts.length, 'host')}:`,
  ];
  const byHost = new Map<string, string[]>();
  for (const d of diffs)
    for (const o of d.odd)
      byHost.set(o.host, [...(byHost.get(o.host) ?? []), `${d.item} ${o.value} (most: ${d.majority})`]);
  const ranked = [...byHost].sort((a, b) => b[1].length - a[1].length);
  for (const [host, items] of ranked.slice(0, HOST_LINES)) {
    lines.push(
      `• ${host} differs on ${items.length}: ${items.slice(0, ITEMS_PER_HOST).join('; ')}${items.length > ITEMS_PER_HOST ? `; and ${items.length - ITEMS_PER_HOST} more` : ''}`,
    );
  }
  if (ranked.length > HOST_LINES) lines.push(`• and ${ranked.length - HOST_LINES} more hosts that differ`);
  for (const u of cmp.unread) lines.push(`• ${u.host} could not be read: ${u.why}`);
  return lines;
}

/** The full matrix: a row per item, a column per host. */
export function comparisonCsv(cmp: Comparison): string {
  return safeCsv([
    [cmp.item, ...cmp.hosts],
    ...cmp.items.map((item) => [item, ...cmp.hosts.map((h) => cellOf(cmp, item, h))]),
  ]);
}
