import { readFile, stat } from 'node:fs/promises';
import mysql from 'mysql2/promise';
import { assertDatabaseName, assertTablePrefix } from '../../core/db/identifiers.ts';
import { INSTANCE_DEFAULTS, splitDbHost, type Instance, type InstanceFields } from '../../registry/instance.ts';
import type { NewInstance } from '../../registry/registry.ts';
import { normaliseWwwroot, validateInstance } from '../../registry/validation.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { readSiteConfig, type SiteConfig } from '../moodle/site-config.ts';
import { MOODLE_TABLES } from '../moodle/tables.ts';
import { TargetError } from '../moodle/target.ts';

/** A config.php bigger than this is not a Moodle configuration file. */
const MAX_CONFIG_BYTES = 1024 * 1024;
const CONNECT_TIMEOUT_MS = 5_000;

export interface Registration {
  file: string;
  fields: NewInstance;
  /** The file includes VMoodle's boot: the site is the master of a fleet of its own. */
  vmoodleBoot: boolean;
}

export interface FileProblem {
  file: string;
  message: string;
}

/** Moodle's dbtype as VMoodle's vdbtype; only MariaDB and MySQL sites are worked on. */
const DBTYPES: Record<string, string> = { mariadb: 'mariadb', mysqli: 'mysqli', auroramysql: 'mysqli' };

/** A short name from the wwwroot: the host's first label, and a subpath's segments (`campus.example.org/law` → `campus_law`). */
export function shortnameOf(wwwroot: string): string {
  const url = new URL(wwwroot);
  return [url.hostname.split('.')[0] as string, ...url.pathname.split('/').filter(Boolean)]
    .join('_')
    .replace(/[^A-Za-z0-9_.]/g, '_')
    .slice(0, 80);
}

/** The site's full name, read with the file's own login: it shows the database is the site's and can be reached. */
async function siteName(fields: InstanceFields): Promise<string> {
  const database = assertDatabaseName(fields.vdbname);
  const prefix = assertTablePrefix(fields.vdbprefix);
  const { host, port } = splitDbHost(fields.vdbhost);
  const conn = await mysql.createConnection({
    host,
    port,
    user: fields.vdblogin,
    password: fields.vdbpass || undefined,
    database,
    connectTimeout: CONNECT_TIMEOUT_MS,
  });
  try {
    const [rows] = await conn.query('SELECT fullname FROM ?? WHERE id = 1', [`${prefix}${MOODLE_TABLES.course}`]);
    const site = (rows as Array<{ fullname: string }>)[0];
    if (!site)
      throw new TargetError(
        `${database} has no site course (${prefix}${MOODLE_TABLES.course} id 1): Moodle is not installed there`,
      );
    return site.fullname;
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}

async function readOne(file: string): Promise<{ config?: SiteConfig; problems: string[] }> {
  try {
    const size = (await stat(file)).size;
    if (size > MAX_CONFIG_BYTES) return { problems: [`${size} bytes: too big for a config.php`] };
    return readSiteConfig(await readFile(file, 'utf8'), file);
  } catch (err) {
    return { problems: [`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`] };
  }
}

/** One config.php as registry fields, or every reason it cannot be registered. */
async function registrationOf(
  file: string,
  taken: readonly Instance[],
  master: string | undefined,
): Promise<Registration | { problems: string[] }> {
  const { config, problems } = await readOne(file);
  if (!config) return { problems };
  const vdbtype = DBTYPES[config.dbtype];
  if (!vdbtype) return { problems: [`dbtype '${config.dbtype}': only MariaDB and MySQL sites are registered`] };
  if (config.dbsocket)
    return {
      problems: [
        "the database is reached through a socket ($CFG->dboptions['dbsocket']): register it with instances add and a host",
      ],
    };
  let vhostname: string;
  try {
    vhostname = normaliseWwwroot(config.wwwroot);
  } catch (err) {
    return { problems: [`$CFG->wwwroot: ${(err as Error).message}`] };
  }
  if (master && vhostname.toLowerCase() === normaliseWwwroot(master).toLowerCase())
    return { problems: [`${vhostname} is the master: it has no registry row`] };
  const fields: InstanceFields = {
    ...INSTANCE_DEFAULTS,
    name: '',
    shortname: /^https?:\/\//.test(vhostname) ? shortnameOf(vhostname) : '',
    vhostname,
    vdbtype,
    vdbhost: config.dbport ? `${config.dbhost}:${config.dbport}` : config.dbhost,
    vdblogin: config.dbuser,
    vdbpass: config.dbpass,
    vdbname: config.dbname,
    vdbprefix: config.prefix,
    vdbpersist: config.dbpersist,
    vdatapath: config.dataroot,
  };
  const invalid = validateInstance({ ...fields, name: 'x' }, taken).map((e) => `${e.field} ${e.message}`);
  if (invalid.length) return { problems: invalid };
  try {
    fields.name = (await siteName(fields)).slice(0, 255) || fields.shortname;
  } catch (err) {
    return { problems: [`its database cannot be read with the file's login: ${describeError(err)}`] };
  }
  return { file, fields, vmoodleBoot: config.vmoodleBoot };
}

/**
 * The sites of existing Moodles' config.php files, read as text, as registry rows: each checked against the
 * registry and the files before it, its database reached with the file's own login. Every problem is named.
 */
export async function readRegistrations(
  files: readonly string[],
  registered: readonly Instance[],
  master: string | undefined,
): Promise<{ registrations: Registration[]; problems: FileProblem[] }> {
  const registrations: Registration[] = [];
  const problems: FileProblem[] = [];
  const taken: Instance[] = [...registered];
  for (const file of files) {
    const found = await registrationOf(file, taken, master);
    if ('problems' in found) {
      problems.push(...found.problems.map((message) => ({ file, message })));
      continue;
    }
    registrations.push(found);
    taken.push({
      ...found.fields,
      id: -registrations.length,
      timecreated: 0,
      lastcron: 0,
      lastcrongap: 0,
      croncount: 0,
      metadata: '',
    } as Instance);
  }
  return { registrations, problems };
}
