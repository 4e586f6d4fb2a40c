import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { assertConfined, writeFileSafely } from '../../core/paths.ts';
import { PROJECT_ROOT } from '../../core/config.ts';
import { errorKind } from '../../core/errors.ts';
import { assertDatabaseName, assertTablePrefix, escapeLike } from '../../core/db/identifiers.ts';
import { serverKey, type MoodleTarget } from '../moodle/target.ts';

/** The pack's bash, kept as real scripts so that they can be read, linted and changed as such. */
const SCRIPTS_DIR = join(PROJECT_ROOT, 'shell', 'migration');

type Env = Readonly<Record<string, string>>;

interface MigrationStep {
  file: string;
  summary(env: Env): string;
}

/** Seed 003's "N+1 beside the live N", in VMoodle's generatecopyscripts order, each step a script per site (the master's step 5 differs inside). */
export const MIGRATION_STEPS: readonly MigrationStep[] = [
  {
    file: 'step1-backup-databases.sh',
    summary: (e) =>
      `dump the tables of ${e.OLD_DB} starting ${e.PREFIX} on ${e.OLD_DBHOST} into ${e.BACKUP_DIR} (gzip, mode 0600)`,
  },
  {
    file: 'step2-create-new-databases.sh',
    summary: (e) =>
      `create ${e.NEW_DB} on ${e.NEW_DBHOST} (utf8mb4), refusing if it holds tables starting ${e.PREFIX} already`,
  },
  {
    file: 'step3-copy-transform-database.sh',
    summary: (e) =>
      `copy those tables into ${e.NEW_DB}, then point the settings that hold ${e.OLD_DATAROOT} at ${e.NEW_DATAROOT}`,
  },
  {
    file: 'step4-sync-dataroot.sh',
    summary: (e) =>
      `rsync ${e.OLD_DATAROOT}/ to ${e.NEW_DATAROOT}/ with deletions, without caches, locks, sessions and temp (repeatable)`,
  },
  {
    file: 'step5-adjust-config.sh',
    summary: (e) =>
      e.KIND === 'master'
        ? `set $CFG->dbhost, dbname and dataroot in ${e.NEW_DIRROOT}/config.php to ${e.NEW_DBHOST_NAME}, ${e.NEW_DB} and ${e.NEW_DATAROOT}`
        : `point ${e.WWWROOT}'s row in ${e.NEW_MASTER_DB}.${e.NEW_MASTER_PREFIX}local_vmoodle at ${e.NEW_DBHOST}, ${e.NEW_DB} and ${e.NEW_DATAROOT}`,
  },
  {
    file: 'step6-upgrade.sh',
    summary: (e) =>
      `run mysql_compressed_rows --fix, then upgrade.php --non-interactive${e.KIND === 'master' ? '' : ` --host=${e.WWWROOT}`} from ${e.NEW_DIRROOT}${e.WEB_USER ? ` as ${e.WEB_USER}` : ''}`,
  },
  { file: 'step7-post-upgrade.sh', summary: () => 'purge the caches and update the language packs' },
];

export class MigrationPackError extends errorKind('usage') {}

/** One site of the fleet as the pack moves it: where it is now and where its next version will be. */
export interface PackSite {
  kind: 'master' | 'instance';
  shortname: string;
  wwwroot: string;
  target: MoodleTarget;
}

export interface PackOptions {
  /** Version words (`45`, `50`): names holding the first get the second, as VMoodle's str_replace(from, to). */
  from: string;
  to: string;
  /** The next version's Moodle code tree, with local/vmoodle, on the new node. */
  newDirroot: string;
  /** The new database server, `host:port`; the current one when unset. */
  newDbHost?: string;
  /** Where the new dataroots go (each keeps its folder name); beside the old ones, renamed, when unset. */
  newDatarootRoot?: string;
  /** Where step 1 keeps its dumps. */
  backupDir: string;
  /** The system user Moodle's PHP runs as; none runs it as the caller. */
  webUser: string;
  php: string;
}

export interface PackEntry {
  site: PackSite;
  env: Record<string, string>;
}

const VERSION_WORD = /^[A-Za-z0-9]{1,8}$/;
/** Paths the scripts and their SQL hold between quotes: nothing a shell or SQL would read as more than a path. */
const SAFE_PATH = /^\/[A-Za-z0-9._/-]*$/;

function safePath(path: string, what: string): string {
  if (!SAFE_PATH.test(path) || path.split('/').includes('..'))
    throw new MigrationPackError(
      `${what} '${path}': the pack takes absolute paths of letters, digits, . _ - and / only`,
    );
  return posix.normalize(path).replace(/(.)\/+$/, '$1');
}

/** VMoodle's renaming: the version word swapped where a name holds it, else added, so the two never meet. */
const renamed = (name: string, from: string, to: string, sep: string) =>
  name.includes(from) ? name.replaceAll(from, to) : `${name}${sep}${to}`;

/** The next version's database: renamed on the same server; on another server, renamed only where it holds the version word. */
function newDatabase(t: MoodleTarget, opts: PackOptions): string {
  const sameServer = (opts.newDbHost ?? serverKey(t.db)) === serverKey(t.db);
  return sameServer || t.db.database.includes(opts.from)
    ? renamed(t.db.database, opts.from, opts.to, '_')
    : t.db.database;
}

function entryOf(site: PackSite, master: PackSite, opts: PackOptions): PackEntry {
  const t = site.target;
  if (!t.dataroot)
    throw new MigrationPackError(
      `${site.shortname}: no dataroot is known (set VMOODLE_MASTER_DATAROOT for the master)`,
    );
  const oldDataroot = safePath(t.dataroot, `${site.shortname}: dataroot`);
  const newDataroot = opts.newDatarootRoot
    ? join(safePath(opts.newDatarootRoot, '--new-dataroot-root'), basename(oldDataroot))
    : renamed(oldDataroot, opts.from, opts.to, '-');
  const newHost = opts.newDbHost ?? serverKey(t.db);
  const [host, port] = newHost.split(':') as [string, string];
  return {
    site,
    env: {
      SITE: site.shortname,
      KIND: site.kind,
      WWWROOT: site.wwwroot,
      OLD_DB: assertDatabaseName(t.db.database),
      NEW_DB: assertDatabaseName(newDatabase(t, opts)),
      PREFIX: assertTablePrefix(t.db.prefix),
      PREFIX_LIKE: `${escapeLike(t.db.prefix)}%`,
      OLD_DBHOST: serverKey(t.db),
      NEW_DBHOST: newHost,
      NEW_DBHOST_NAME: host,
      NEW_DBPORT: port,
      DBUSER: t.db.user,
      OLD_DATAROOT: oldDataroot,
      NEW_DATAROOT: safePath(newDataroot, `${site.shortname}: new dataroot`),
      NEW_MASTER_DB: assertDatabaseName(newDatabase(master.target, opts)),
      MASTER_SITE: master.shortname,
      NEW_MASTER_PREFIX: assertTablePrefix(master.target.db.prefix),
      NEW_DIRROOT: safePath(opts.newDirroot, '--new-dirroot'),
      BACKUP_DIR: safePath(opts.backupDir, '--backup-dir'),
      WEB_USER: opts.webUser,
      PHP: safePath(opts.php, '--php'),
    },
  };
}

/** Every site's names in the next version, checked: a name no database or folder may hold is refused before anything is written. */
export function planPack(sites: readonly PackSite[], master: PackSite, opts: PackOptions): PackEntry[] {
  for (const [flag, word] of [
    ['--from', opts.from],
    ['--to', opts.to],
  ] as const) {
    if (!VERSION_WORD.test(word))
      throw new MigrationPackError(`${flag} '${word}': a version word of letters and digits, e.g. 45 or 500`);
  }
  if (opts.from === opts.to) throw new MigrationPackError('--from and --to are the same version');
  if (opts.newDbHost !== undefined && !/^[A-Za-z0-9.-]{1,74}:\d{1,5}$/.test(opts.newDbHost))
    throw new MigrationPackError(`--new-dbhost '${opts.newDbHost}': host:port`);
  if (opts.webUser && !/^[a-z_][a-z0-9_-]{0,31}$/.test(opts.webUser))
    throw new MigrationPackError(`--web-user '${opts.webUser}' is not a system user name`);
  const entries = sites.map((s) => entryOf(s, master, opts));
  for (const e of entries) {
    if (!/^https?:\/\/[A-Za-z0-9.:/_~-]+$/.test(e.env.WWWROOT as string))
      throw new MigrationPackError(
        `${e.site.shortname}: wwwroot '${e.env.WWWROOT}' holds characters the scripts' SQL would have to quote`,
      );
  }
  const datarootOwner = new Map<string, string>();
  for (const e of entries) {
    const other = datarootOwner.get(e.env.NEW_DATAROOT as string);
    if (other)
      throw new MigrationPackError(
        `${e.site.shortname} and ${other} would share the new dataroot ${e.env.NEW_DATAROOT}`,
      );
    datarootOwner.set(e.env.NEW_DATAROOT as string, e.site.shortname);
  }
  return entries;
}

/** A bash single-quoted word. */
export const shellWord = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/** What each script of a site will do, in words: the pack's dry run. */
export const stepSummaries = (entry: PackEntry): Array<{ file: string; summary: string }> =>
  MIGRATION_STEPS.map((s) => ({ file: s.file, summary: s.summary(entry.env) }));

/** A MySQL option file's value, in double quotes with its escapes. */
const optionValue = (value: string) => `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;

function optionFile(host: string, port: string, user: string, password: string | undefined): string {
  return `[client]\nhost=${host}\nport=${port}\nuser=${optionValue(user)}\n${password ? `password=${optionValue(password)}\n` : ''}`;
}

/**
 * Writes the pack: lib.sh, per site its env.sh (names and paths, never a password) and its step scripts, the
 * checklist, and, only when asked, the MySQL option files the scripts read their logins from (mode 0600 in a 0700
 * folder). Without them, the checklist says which option files to make.
 */
export async function writePack(
  out: string,
  entries: readonly PackEntry[],
  opts: PackOptions,
  checklist: string,
  withCredentials: boolean,
): Promise<string[]> {
  await mkdir(out, { recursive: true, mode: 0o750 });
  const written: string[] = [];
  // Every file is written without following a link planted in the output folder, and every folder stays inside it.
  const put = async (path: string, text: string, mode: number) => {
    await assertConfined(dirname(path), { root: { path: out, what: 'the output folder' }, keep: [], rootItself: true });
    await writeFileSafely(path, text, mode, true);
    written.push(path);
  };
  const script = (file: string) => readFile(join(SCRIPTS_DIR, file), 'utf8');
  const bodies = await Promise.all(MIGRATION_STEPS.map((step) => script(step.file)));
  await put(join(out, 'lib.sh'), await script('lib.sh'), 0o640);
  await put(join(out, 'CHECKLIST.md'), checklist, 0o640);
  if (withCredentials) await mkdir(join(out, 'credentials'), { recursive: true, mode: 0o700 });
  for (const entry of entries) {
    const dir = join(out, entry.site.shortname);
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await put(
      join(dir, 'env.sh'),
      `# ${entry.site.shortname}: ${opts.from} → ${opts.to}. Names and paths only; the logins are in the option files.\n${Object.entries(
        entry.env,
      )
        .map(([k, v]) => `${k}=${shellWord(v)}`)
        .join('\n')}\n`,
      0o640,
    );
    for (const [i, step] of MIGRATION_STEPS.entries())
      await put(join(dir, step.file), scriptText(step, entry, bodies[i] as string), 0o750);
    if (withCredentials) {
      const { db } = entry.site.target;
      await put(
        join(out, 'credentials', `${entry.site.shortname}-old.cnf`),
        optionFile(db.host, String(db.port), db.user, db.password),
        0o600,
      );
      await put(
        join(out, 'credentials', `${entry.site.shortname}-new.cnf`),
        optionFile(entry.env.NEW_DBHOST_NAME as string, entry.env.NEW_DBPORT as string, db.user, db.password),
        0o600,
      );
    }
  }
  return written;
}

function scriptText(step: MigrationStep, entry: PackEntry, body: string): string {
  return `#!/usr/bin/env bash
# ${step.file} for ${entry.site.shortname}: ${step.summary(entry.env)}
# DRY_RUN=1 prints what it would do and does nothing.
HERE="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
. "$HERE/../lib.sh"
# shellcheck source=/dev/null
. "$HERE/env.sh"
options
${body}`;
}

/**
 * The manual steps around the scripts, from seed 003's day plan: a new machine with the next version's code, the
 * logins, the scripts site by site (the master first), the files moved, the DNS switched, the old machine kept a while.
 */
export function packChecklist(entries: readonly PackEntry[], opts: PackOptions, withCredentials: boolean): string {
  const master = entries.find((e) => e.site.kind === 'master');
  const sites = [...entries].sort((a, b) => Number(b.site.kind === 'master') - Number(a.site.kind === 'master'));
  const logins = entries.flatMap((e) => [
    `- \`${e.env.SITE}-old.cnf\`: \`[client]\` host, port ${e.env.OLD_DBHOST}, user \`${e.env.DBUSER}\` and its password`,
    `- \`${e.env.SITE}-new.cnf\`: the same login on ${e.env.NEW_DBHOST}`,
  ]);
  return `# Moving the fleet from ${opts.from} to ${opts.to}

Each site is built again beside the live one, on the new machine, and switched over by DNS; the live site is not
changed until the switch. Every script prints what it would do under \`DRY_RUN=1\` and changes nothing then.

## Before the day
- [ ] Make the new machine (web node) and install the ${opts.to} Moodle code with local/vmoodle at \`${opts.newDirroot}\`,
      with the master's config.php copied from the live code.
- [ ] ${withCredentials ? 'The option files are in `credentials/` (mode 0600): keep the pack where only root reads it, and delete them once done.' : 'Make the option files in `credentials/` (or in the folder `VMOODLE_OPTIONS_DIR` names), mode 0600, folder 0700:'}
${withCredentials ? '' : `${logins.join('\n')}\n`}- [ ] Give each login the rights on its new database on the new server (\`GRANT ALL ON <new database>.* …\`).
- [ ] Make the new dataroots' parent folders, owned by ${opts.webUser || 'the web server user'}.
- [ ] Run every site's \`step4-sync-dataroot.sh\` once, so that the day's run copies only what changed.
- [ ] Rehearse: \`DRY_RUN=1\` on every script, then the whole day on a copy.

## On the day (the master first${master ? `: ${master.env.SITE}` : ''})
- [ ] Put the live sites in maintenance: \`vmoodle run generic/maintenance --hosts '*' mmode=1 climaintenance=1\` (and the master: \`--master\`).
${sites.map((e) => `- [ ] ${e.env.SITE} (${e.env.WWWROOT}): \`cd ${e.env.SITE}\` and run steps 1 to 7 in order; each stops at its first error.`).join('\n')}
- [ ] Move the files: step 4 again for every site, after the last user left.
- [ ] Switch the DNS of every wwwroot to the new machine; check each site answers from it.
- [ ] Renew the MNET keys: \`vmoodle run mnet/renewall --hosts '*'\` from the new machine's vmoodle-ops.
- [ ] Take the sites out of maintenance on the new machine; turn its cron on, and the old machine's off.

## After
- [ ] Keep the old machine and databases untouched for 30 days, then delete them and step 1's dumps in ${opts.backupDir}.
`;
}

/** The pack for these sites: planned, then written unless `out` is unset (the dry run). */
export async function migrationPack(
  sites: readonly PackSite[],
  master: PackSite,
  opts: PackOptions,
  write: { out?: string; withCredentials: boolean },
) {
  const entries = planPack(sites, master, opts);
  const written = write.out
    ? await writePack(
        write.out,
        entries,
        opts,
        packChecklist(entries, opts, write.withCredentials),
        write.withCredentials,
      )
    : [];
  return { entries: entries.map((e) => ({ ...e, steps: stepSummaries(e) })), written };
}
