import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { quoteId } from '../../core/db/identifiers.ts';
import { errorKind } from '../../core/errors.ts';
import type { Instance } from '../../registry/instance.ts';
import type { NewInstance } from '../../registry/registry.ts';
import type { TemplateManifest, TemplateStore } from '../../registry/templates.ts';
import type { MoodleAccess } from '../moodle/access.ts';
import { readDump, runSqlIn } from '../moodle/dump.ts';
import { storeSetting } from '../moodle/config.ts';
import { generateKeyPair, readMnet, writeKeyPair } from '../moodle/mnet-keys.ts';
import { copySql, finishCopy } from '../moodle/site-copy.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import {
  copyTree,
  datarootProblem,
  exists,
  IDENTITY_FOLDERS,
  removeTree,
  type DatarootGuard,
} from '../moodle/dataroot.ts';
import { siteTables } from '../moodle/site-tables.ts';
import { writeSiteSettings, type SiteSetting } from './site-settings.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { confinementProblem } from '../../core/paths.ts';
import { dropLogin, grantLogin } from '../moodle/db-logins.ts';

export class LifecycleError extends errorKind('bad_plan') {}

/** The steps of a creation, in order: each is told before it starts, and any of them failing undoes those before. */
export const CREATE_STEPS = [
  'check',
  'database',
  'load',
  'identity',
  'settings',
  'mnet',
  'dataroot',
  'register',
] as const;
export type CreateStep = (typeof CREATE_STEPS)[number];

const STEP_TEXT: Record<CreateStep, string> = {
  check: 'checking that the database, tables and dataroot are free',
  database: 'creating the database',
  load: 'loading the template',
  identity: 'making it a site of its own',
  settings: 'writing its own settings',
  mnet: 'giving it an MNET key pair',
  dataroot: 'copying the dataroot',
  register: 'registering it',
};

export const stepText = (step: CreateStep) => STEP_TEXT[step];

/** The new instance: its registry fields, and the database server and login it is reached with. */
export interface NewSite {
  target: MoodleTarget;
  fields: NewInstance & { mnet: number };
  /** The login of its own its registry row names, made with its database by the target's provisioning account. */
  login: { user: string; password: string };
  /** Settings it starts with (a nodelist's `config_<name>` and `<component>|<name>` columns). */
  settings?: readonly SiteSetting[];
}

export interface CreateDeps {
  access: MoodleAccess;
  templates: TemplateStore;
  guard: DatarootGuard;
  register(fields: NewInstance): Promise<Instance>;
  /** Days a new MNET key lasts where the template sets none. */
  keyDays: number;
  onStep?(step: CreateStep): void | Promise<void>;
}

export interface Created {
  instance: Instance;
  manifest: TemplateManifest;
  blocks: number;
  unreadableBlocks: number[];
  /** Settings of its own written. */
  settings: number;
}

/**
 * A template whose source has no wwwroot (a snapshot taken by a process that was not told the master's) cannot be
 * made a site of its own: its addresses could not be found to rewrite.
 */
export function assertRewritable(manifest: TemplateManifest): TemplateManifest {
  if (!manifest.source.wwwroot)
    throw new LifecycleError(
      `template ${manifest.name} records no wwwroot for its source, so its addresses cannot be rewritten: take the snapshot again (the master's is VMOODLE_MASTER_WWWROOT)`,
    );
  return manifest;
}

/** A session cookie suffix of Moodle's own alphabet, so that sites on one host never share a login. */
const sessionCookie = () => randomBytes(6).toString('hex');

/**
 * Creates an instance from a template as one step: a database of its own (or its prefix's tables in a shared one),
 * the template loaded and made a distinct site, a key pair when its MNET is on, its dataroot, and only then its
 * registry row. Whatever fails, what was made is removed again: the database only when this made it, the tables
 * otherwise, the dataroot folder, and nothing is registered.
 */
export async function createFromTemplate(deps: CreateDeps, templateName: string, site: NewSite): Promise<Created> {
  const { access } = deps;
  const { target } = site;
  const dataroot = target.dataroot as string;
  const made = { database: false, tables: false, dataroot: false, login: false };
  const step = async (name: CreateStep) => deps.onStep?.(name);
  try {
    await step('check');
    const manifest = assertRewritable(await deps.templates.get(templateName));
    const paths = deps.templates.paths(templateName);
    // A template's parts are read where they really are: one that leads out of the templates folder is not copied.
    for (const part of [paths.dump, paths.dataroot]) {
      const outside = await confinementProblem(part, {
        root: { path: deps.templates.dir, what: 'the templates folder' },
        keep: [],
      });
      if (outside) throw new LifecycleError(`template ${templateName}: ${outside}`);
    }
    const problem = await datarootProblem(dataroot, deps.guard);
    if (problem) throw new LifecycleError(`vdatapath: ${problem}`);
    if (await exists(dataroot))
      throw new LifecycleError(
        `the dataroot ${dataroot} exists already: a new instance starts with a folder of its own`,
      );
    const databaseExists = await access.withConnection(target, async (conn) => {
      const [rows] = await conn.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [
        target.db.database,
      ]);
      return (rows as unknown[]).length > 0;
    });
    if (
      databaseExists &&
      (await access.withConnection(target, (conn) => siteTables(conn, target.db.database, target.db.prefix))).length > 0
    ) {
      throw new LifecycleError(
        `${target.db.database} already holds tables with the prefix ${target.db.prefix}: choose another vdbname or vdbprefix`,
      );
    }

    await step('database');
    if (!databaseExists) {
      await access.withConnection(target, (conn) =>
        conn.query(
          `CREATE DATABASE ${quoteId(target.db.database)} DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
        ),
      );
      made.database = true;
    }
    await access.withConnection(target, (conn) =>
      grantLogin(conn, site.login.user, site.login.password, { name: target.db.database }),
    );
    made.login = true;

    await step('load');
    const dump = await readDump(paths.dump, manifest.prefix);
    made.tables = true;
    await runSqlIn(
      await access.connectionOptions(target),
      target.db.database,
      copySql(dump, { prefix: target.db.prefix, from: manifest.source.wwwroot, to: target.host.wwwroot }),
    );

    await step('identity');
    const copied = await access.withConnection(target, (conn) =>
      finishCopy(conn, {
        database: target.db.database,
        prefix: target.db.prefix,
        oldWwwroot: manifest.source.wwwroot,
        wwwroot: target.host.wwwroot,
        oldDataroot: manifest.source.dataroot,
        dataroot,
        fullname: site.fields.name,
        shortname: site.fields.shortname,
        sessioncookie: sessionCookie(),
      }),
    );

    await step('settings');
    const settings = await writeSiteSettings(access, target, site.settings ?? []);

    await step('mnet');
    if (site.fields.mnet > -1) await giveKeyPair(access, target, deps.keyDays);

    await step('dataroot');
    await mkdir(join(dataroot, '..'), { recursive: true });
    made.dataroot = true;
    await copyTree(paths.dataroot, dataroot);
    for (const folder of IDENTITY_FOLDERS) {
      await removeTree(join(dataroot, folder));
      await mkdir(join(dataroot, folder), { mode: 0o2777 });
    }

    await step('register');
    const instance = await deps.register(site.fields);
    return { instance, manifest, blocks: copied.blocks, unreadableBlocks: copied.unreadableBlocks, settings };
  } catch (err) {
    const left = await undo(access, target, made, site.login.user);
    if (left.length)
      throw new LifecycleError(
        `${describeError(err)}; then ${left.join(' and ')} could not be removed: remove ${left.length === 1 ? 'it' : 'them'} by hand`,
      );
    throw err;
  }
}

/** MNET on (strict) with a key pair of the new site's own, made as mnet/init makes one. */
async function giveKeyPair(access: MoodleAccess, target: MoodleTarget, keyDays: number): Promise<void> {
  const before = await access.withStatements(target, (sql) => readMnet(access, sql, target, false), false);
  const pair = await generateKeyPair(
    { wwwroot: target.host.wwwroot, ...before.subject },
    before.lifetimeDays || keyDays,
  );
  await access.withStatements(target, async (sql) => {
    const site = await readMnet(access, sql, target, true);
    writeKeyPair(access, sql, target, site, pair);
    if (site.mode !== 'strict')
      storeSetting(access, sql, target, { name: 'mnet_dispatcher_mode' }, 'strict', site.modeSetting, {
        enabledStores: null,
        jsonformat: null,
      });
  });
}

/**
 * Removes what a failed creation made; says what could not be removed. Each part is tried even when another fails,
 * and one that stays is named in the error the caller gets, beside the failure itself.
 */
async function undo(
  access: MoodleAccess,
  target: MoodleTarget,
  made: { database: boolean; tables: boolean; dataroot: boolean; login: boolean },
  login: string,
): Promise<string[]> {
  const left: string[] = [];
  if (made.login)
    await access
      .withConnection(target, (conn) => dropLogin(conn, login))
      .catch((err: Error) => left.push(`the login ${login} (${err.message})`));
  if (made.dataroot)
    await removeTree(target.dataroot as string).catch((err: Error) =>
      left.push(`the folder ${target.dataroot} (${err.message})`),
    );
  if (made.database) {
    await access
      .withConnection(target, (conn) => conn.query(`DROP DATABASE IF EXISTS ${quoteId(target.db.database)}`))
      .catch((err: Error) => left.push(`the database ${target.db.database} (${err.message})`));
  } else if (made.tables) {
    await dropTables(access, target).catch((err: Error) =>
      left.push(`the ${target.db.prefix} tables of ${target.db.database} (${err.message})`),
    );
  }
  return left;
}

/** Drops every table of the target's prefix in its database, as an instance in a shared database is removed. */
export async function dropTables(access: MoodleAccess, target: MoodleTarget): Promise<number> {
  return access.withConnection(target, async (conn) => {
    const names = await siteTables(conn, target.db.database, target.db.prefix);
    if (names.length)
      await conn.query(
        `DROP TABLE IF EXISTS ${names.map((n) => `${quoteId(target.db.database)}.${quoteId(n)}`).join(', ')}`,
      );
    return names.length;
  });
}
