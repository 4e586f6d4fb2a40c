import { commandContext } from '../ops/executor/command-contexts.ts';
import { describeError } from '../core/db/db-errors.ts';
import { findCommand } from '../ops/commands/index.ts';
import type { Params } from '../ops/commands/command.ts';
import type { RunServices } from '../ops/executor/run-services.ts';
import type { Fleet } from '../registry/fleet.ts';
import { resolveParams } from '../ops/commands/params.ts';
import { serverKey, type MoodleTarget } from '../ops/moodle/target.ts';
import { dbHostKey } from '../registry/instance.ts';
import { settingColumn, type LineProblem, type Nodelist, type NodelistRow } from '../registry/nodelist.ts';
import { normaliseWwwroot, resolveDataPath } from '../registry/validation.ts';
import { siteSettingProblem, type SiteSetting } from '../ops/lifecycle/site-settings.ts';
import { PlanError } from '../ops/executor/placement.ts';

export interface CreateLine {
  line: number;
  params: Params;
}

/** The database logins a nodelist line may name: the master's and each registered instance's, by the `dbserver` that means it. */
interface KnownLogin {
  dbserver: string;
  server: string;
  user: string;
  password: string;
}

function knownLogins(rt: RunServices, fleet: Fleet): KnownLogin[] {
  const login = (dbserver: string, t: MoodleTarget) => ({
    dbserver,
    server: serverKey(t.db),
    user: t.db.user,
    password: t.db.password ?? '',
  });
  return [
    login('master', rt.moodleTarget(fleet, fleet.masterHost)),
    ...fleet.hosts.map((h) => login(h.shortname, rt.moodleTarget(fleet, h))),
  ];
}

/**
 * A line's database server and login as a `dbserver`: empty cells are the master's; otherwise the three must be those
 * of the master or of a registered instance. A login the registry does not hold is refused, so that no password
 * from a file rests in a run's parameters.
 */
function dbserverOf(cells: Record<string, string>, logins: readonly KnownLogin[]): string {
  const [host, user, password] = [cells.vdbhost ?? '', cells.vdblogin ?? '', cells.vdbpass ?? ''];
  if (!host && !user && !password) return 'master';
  const server = host ? dbHostKey(host) : undefined;
  const found = logins.find(
    (l) => (server === undefined || l.server === server) && (!user || l.user === user) && l.password === password,
  );
  if (!found)
    throw new PlanError(
      `the database login (vdbhost ${host || "(the master's)"}, vdblogin ${user || "(the master's)"}) is neither the master's nor a registered instance's: leave vdbhost, vdblogin and vdbpass empty for the master's, or give those of an instance on that server`,
    );
  return found.dbserver;
}

/** A nodelist row as lifecycle/create's parameters (VMoodle's defaults: mnet 1, prefix mdl_). */
function createParams(row: NodelistRow, logins: readonly KnownLogin[]): Record<string, string> {
  const c = row.cells;
  if (c.vdbtype && !['mariadb', 'mysqli', 'mysql'].includes(c.vdbtype))
    throw new PlanError(`vdbtype '${c.vdbtype}': only MariaDB and MySQL instances are made`);
  if (c.services && !['default', 'subnetwork'].includes(c.services))
    throw new PlanError(`services '${c.services}' must be default or subnetwork`);
  const settings: SiteSetting[] = [];
  for (const [column, value] of Object.entries(c)) {
    const ref = settingColumn(column);
    if (!ref || value === '') continue;
    const setting = {
      plugin: ref.plugin === 'core' || ref.plugin === 'moodle' ? null : ref.plugin,
      name: ref.name,
      value,
    };
    const problem = siteSettingProblem(setting);
    if (problem) throw new PlanError(problem);
    settings.push(setting);
  }
  const given = (name: string) => (c[name] ? { [name]: c[name] as string } : {});
  return {
    template: c.vtemplate ?? '',
    ...given('shortname'),
    ...given('name'),
    ...given('vhostname'),
    ...given('vdbname'),
    ...given('vdatapath'),
    vdbprefix: c.vdbprefix || 'mdl_',
    mnet: c.mnet || '1',
    description: c.description ?? '',
    dbserver: dbserverOf(c, logins),
    settings: settings.length ? JSON.stringify(settings) : '',
  };
}

/** Two lines of one file that would make the same instance, database or folder. */
function duplicates(lines: readonly CreateLine[]): LineProblem[] {
  const problems: LineProblem[] = [];
  const seen = new Map<string, number>();
  for (const { line, params } of lines) {
    for (const [what, key] of [
      ['shortname', params.shortname?.toLowerCase()],
      ['vhostname', normaliseWwwroot(params.vhostname ?? '').toLowerCase()],
      ['database and prefix', `${params.dbserver}/${params.vdbname}/${params.vdbprefix}`],
      ['vdatapath', resolveDataPath(params.vdatapath ?? '')],
    ] as const) {
      const first = seen.get(`${what}:${key}`);
      if (first !== undefined) problems.push({ line, message: `the same ${what} as line ${first}` });
      else seen.set(`${what}:${key}`, line);
    }
  }
  return problems;
}

/**
 * Every line of a nodelist as a creation, each checked as lifecycle/create checks one (fields against the
 * registry, template, dataroot folder, settings) and against the file's other lines. Nothing is made here.
 */
export async function readCreateLines(
  rt: RunServices,
  nodelist: Nodelist,
): Promise<{ lines: CreateLine[]; problems: LineProblem[] }> {
  const command = findCommand('lifecycle/create');
  const problems: LineProblem[] = [...nodelist.problems];
  const fleet = await rt.registry.loadFleet();
  const logins = knownLogins(rt, fleet);
  const ctx = commandContext(rt, rt.moodleTarget(fleet, fleet.masterHost), command, false, fleet);
  const lines: CreateLine[] = [];
  for (const row of nodelist.rows) {
    try {
      const params = resolveParams(command, createParams(row, logins));
      await command.check?.(ctx, params);
      lines.push({ line: row.line, params });
    } catch (err) {
      problems.push({ line: row.line, message: describeError(err) });
    }
  }
  problems.push(...duplicates(lines));
  const bad = new Set(problems.map((p) => p.line));
  return { lines: lines.filter((l) => !bad.has(l.line)), problems: problems.sort((a, b) => a.line - b.line) };
}

/** The registry fields a destroy line may name, each compared with what the registry holds. */
const COMPARED = ['vdbhost', 'vdblogin', 'vdbpass', 'vdbname', 'vdbprefix', 'vdatapath'] as const;

/**
 * The instances a nodelist names for destruction. The file's values are never used: each line's wwwroot names a
 * registry row, and any database, login or path the line gives must be the row's, or the line is refused.
 */
export async function readDestroyLines(
  rt: RunServices,
  nodelist: Nodelist,
): Promise<{ shortnames: string[]; problems: LineProblem[] }> {
  const problems: LineProblem[] = [...nodelist.problems];
  const all = await rt.registry.loadAll();
  const shortnames: string[] = [];
  for (const row of nodelist.rows) {
    const wwwroot = normaliseWwwroot(row.cells.vhostname ?? '').toLowerCase();
    const instance = all.find((i) => normaliseWwwroot(i.vhostname).toLowerCase() === wwwroot);
    if (!instance) {
      problems.push({
        line: row.line,
        message: `no registered instance has the wwwroot '${row.cells.vhostname ?? ''}'`,
      });
      continue;
    }
    const differing = COMPARED.filter((field) => {
      const given = row.cells[field];
      if (!given) return false;
      if (field === 'vdbhost') return dbHostKey(given) !== dbHostKey(instance.vdbhost);
      if (field === 'vdatapath') return resolveDataPath(given) !== resolveDataPath(instance.vdatapath);
      return given !== instance[field];
    });
    if (differing.length)
      problems.push({
        line: row.line,
        message: `${differing.join(', ')} not as the registry holds them for ${instance.shortname}: nothing of it is destroyed`,
      });
    else shortnames.push(instance.shortname);
  }
  return { shortnames, problems: problems.sort((a, b) => a.line - b.line) };
}
