import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { FINAL_STATES, type TargetRow } from '../../src/ops/executor/run-model.ts';
import { createDatabase, serverConnection, thinInstances } from '../support/databases.ts';
import { fakePhp, type FakePhp } from '../support/fake-php.ts';
import { opsFixture, registerInstances, type OpsFixture } from '../support/fleet.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { testServices } from '../support/services.ts';

/** Sites named for how the stand-in upgrade.php answers them (see fake-php.ts); newerdb_1's database is newer than the code. */
const SITES = ['pending_1', 'hashonly_1', 'uptodate_1', 'upfails_1', 'badopt_1', 'older_1', 'downgrade_1', 'newerdb_1'];

describe.runIf(testServices().moodleDump)("upgrade check and upgrade through Moodle's upgrade.php", () => {
  let fx: OpsFixture;
  let fake: FakePhp;
  let base: string;
  const plugin: Record<string, number> = {};

  const writeCode = (files: Record<string, string>) => {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(fake.codeRoot, path)), { recursive: true });
      writeFileSync(join(fake.codeRoot, path), content);
    }
  };
  const run = async (command: string, tohosts: string[]) => {
    const planned = await createPlan(fx.rt, {
      command,
      params: {},
      selector: { tohosts },
      requestedBy: 'alice',
      via: 'cli',
      maxFailures: '100%',
    });
    await startRun(fx.rt, planned.run.id, 'alice', planned.run.plan_hash);
    await fx.rt.progress.follow(
      planned.run.id,
      () => undefined,
      (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
    );
    const targets = await fx.rt.store.getTargets(planned.run.id);
    return { planned, by: Object.fromEntries(targets.map((t) => [t.shortname, t])) as Record<string, TargetRow> };
  };
  const phpRuns = (site: string, flag: string) =>
    fake.records().filter((r) => r.argv.some((a) => a.includes(site.replace('_', '-'))) && r.argv.includes(flag));

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'vmops-upgrade-'));
    fake = fakePhp({ wrappers: ['upgrade'], maintenanceUnder: base });
    writeFileSync(
      join(base, 'nodes.yml'),
      `web1:\n  code_root: ${fake.codeRoot}\n  dataroots: [${join(base, 'web1')}]\n  php: ${fake.php}\n  max_php: 4\n`,
    );
    fx = await opsFixture('upgrade', undefined, { VMOODLE_NODES: join(base, 'nodes.yml') });
    const db = await createDatabase('upgrade');
    const prefixes = await thinInstances(db.name, SITES.length, {
      tables: ['config', 'config_plugins', 'course'],
      rowsOf: ['config', 'config_plugins', 'course'],
    });
    await registerInstances(
      fx,
      SITES.map((shortname, i) => ({
        shortname,
        database: db.name,
        prefix: prefixes[i] as string,
        dataroot: join(base, 'web1', shortname),
      })),
    );
    const conn = await serverConnection();
    const [rows] = await conn.query(
      `SELECT plugin, value FROM \`${db.name}\`.\`${prefixes[0]}config_plugins\` WHERE name = 'version' AND plugin IN ('mod_forum', 'mod_assign', 'assignsubmission_file', 'block_html')`,
    );
    for (const r of rows as Array<{ plugin: string; value: string }>) plugin[r.plugin] = Number(r.value);
    await conn.query(
      `UPDATE \`${db.name}\`.\`${prefixes[SITES.indexOf('newerdb_1')]}config\` SET value = '2024100800' WHERE name = 'version'`,
    );
    await conn.end();
    // Moodle 4.5.7's code as the node serves it: core and two plugins newer than the databases, two the same.
    writeCode({
      'version.php':
        "<?php\ndefined('MOODLE_INTERNAL') || die();\n$version  = 2024100707.00;\n$release  = '4.5.7 (Build: 20251006)';\n$branch   = '405';\n",
      'lib/components.json': JSON.stringify({
        plugintypes: { mod: 'mod', block: 'blocks' },
        subsystems: { admin: 'admin' },
      }),
      'mod/forum/version.php': `<?php\n$plugin->version = ${(plugin.mod_forum as number) + 1};\n$plugin->component = 'mod_forum';\n`,
      'mod/assign/version.php': `<?php\n$plugin->component = 'mod_assign';\n$plugin->version = ${plugin.mod_assign};\n`,
      'mod/assign/db/subplugins.json': JSON.stringify({ subplugintypes: { assignsubmission: 'submission' } }),
      'mod/assign/submission/file/version.php': `<?php\n$plugin->version = ${(plugin.assignsubmission_file as number) + 5};\n`,
      'blocks/html/version.php': `<?php\n$plugin->version = ${plugin.block_html};\n`,
    });
    const worker = new ExecutorWorker(fx.rt, { node: 'web1' });
    afterAll(() => worker.close());
    await worker.waitUntilReady();
  });

  it('says where database and code differ, and what upgrade.php says of each site', async () => {
    const { by } = await run('upgrade/checkstatus', ['pending_1', 'hashonly_1', 'uptodate_1', 'newerdb_1', 'badopt_1']);
    expect(by.pending_1?.message).toBe(
      [
        'core 4.5.6 (Build: 20250811) (2024100706) → 4.5.7 (Build: 20251006) (2024100707.00)',
        `2 plugins newer: assignsubmission_file ${plugin.assignsubmission_file} → ${(plugin.assignsubmission_file as number) + 5}, mod_forum ${plugin.mod_forum} → ${(plugin.mod_forum as number) + 1}`,
        '444 installed plugins missing from the code',
        'upgrade.php: an upgrade is pending; users will be put in maintenance',
      ].join('; '),
    );
    expect(JSON.parse(by.pending_1?.returned_value as string)).toMatchObject({
      database: { version: '2024100706', release: '4.5.6 (Build: 20250811)' },
      code: { version: '2024100707.00' },
      pending: true,
    });
    expect(by.hashonly_1?.message).toMatch(
      /upgrade\.php: an upgrade is pending; users will not be put in maintenance$/,
    );
    expect(by.uptodate_1?.message).toMatch(/upgrade\.php: no upgrade pending$/);
    expect(by.newerdb_1?.message).toMatch(
      /^core 4\.5\.6 \(Build: 20250811\) \(2024100800\) → 4\.5\.7 \(Build: 20251006\) \(2024100707\.00\) \(older code\);.*; an upgrade would be refused: the code is older$/,
    );
    expect([by.badopt_1?.status, by.badopt_1?.message]).toEqual([
      'failed',
      'upgrade.php: Moodle rejected the options --bogus',
    ]);
  });

  it("upgrades under CLI maintenance and reports old → new, refuses a downgrade before running anything, and maps each of upgrade.php's answers", async () => {
    const since = Date.now();
    const { planned, by } = await run('upgrade/upgrade', SITES);
    expect(planned.targets.find((t) => t.shortname === 'newerdb_1')?.preview_note).toMatch(
      /^refused: the code in .* is older than the database \(core 2024100800 → 2024100707\.00\); Moodle cannot downgrade/,
    );
    const result = (site: string) => [by[site]?.status, by[site]?.old_value, by[site]?.new_value, by[site]?.message];
    expect(result('pending_1')).toEqual([
      'applied',
      '4.5.6 (Build: 20250811)',
      '4.5.7 (Build: 20251006)',
      'Command line upgrade from 4.5.6 (Build: 20250811) to 4.5.7 (Build: 20251006) completed successfully.; caches purged',
    ]);
    expect(result('hashonly_1')?.[0]).toBe('applied');
    expect(result('uptodate_1')).toEqual([
      'already_applied',
      '4.5.6 (Build: 20250811) (2024100706)',
      '4.5.6 (Build: 20250811) (2024100706)',
      'no upgrade pending; caches purged',
    ]);
    expect(result('upfails_1').slice(0, 1).concat(result('upfails_1').slice(3))).toEqual([
      'failed',
      'upgrade.php exited 1: Default exception handler: Error writing to database Debug: Duplicate entry; CLI maintenance is as it was before',
    ]);
    expect(by.older_1?.message).toBe(
      "upgrade.php: the code on this node is older than the instance's database; CLI maintenance is as it was before",
    );
    expect(by.downgrade_1?.message).toBe(
      "upgrade.php: Moodle cannot downgrade mod_forum from 2024100701 to 2024100700: this node's code of it is older than the database; CLI maintenance is as it was before",
    );
    // Exit 2 without "An upgrade is pending" is core's refusal of an option, not a pending upgrade.
    expect(by.badopt_1?.message).toBe('upgrade.php: Moodle rejected the options --bogus');
    expect(phpRuns('badopt_1', '--non-interactive')).toEqual([]);
    expect(by.newerdb_1?.status).toBe('failed');
    expect(by.newerdb_1?.message).toMatch(
      /^refused: the code in .* is older than the database \(core 2024100800 → 2024100707\.00\); Moodle cannot downgrade, so deliver the newer code first\. Nothing was run$/,
    );
    expect(fake.records().filter((r) => r.start >= since && r.argv.some((a) => a.includes('newerdb-1')))).toEqual([]);
    // The upgrade ran with Moodle's CLI maintenance page in place, which is gone again.
    for (const site of ['pending_1', 'hashonly_1', 'upfails_1'])
      expect(phpRuns(site, '--non-interactive').at(-1)?.maintenance).toContain(`web1/${site}`);
    for (const site of SITES) expect(existsSync(join(base, 'web1', site, 'climaintenance.html'))).toBe(false);
  });
});
