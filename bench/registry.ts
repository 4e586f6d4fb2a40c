import { openDatabase } from '../src/core/db/knex.ts';
import { Registry } from '../src/registry/registry.ts';
import { resolveTargets, type Selector } from '../src/registry/selector.ts';
import { sandboxInstance } from '../src/ops/lifecycle/sandbox-fleet.ts';
import { printTable, time, withScratchDatabase, type Row } from './support.ts';

const FLEET_SIZE = 10_000;
const MASTER = { shortname: 'master', wwwroot: 'https://master.example.org', dataroot: undefined };

/** Loading and resolving targets on a 10,000-instance registry. */
export async function benchRegistry(): Promise<void> {
  await withScratchDatabase('registry', async (url) => {
    const db = openDatabase(url);
    const registry = new Registry(db, 'mdl_', MASTER);
    await registry.ensureTable();
    const rows = Array.from({ length: FLEET_SIZE }, (_, k) => {
      const plan = sandboxInstance(k + 1);
      return {
        name: plan.name,
        shortname: plan.shortname,
        vhostname: plan.vhostname,
        enabled: plan.enabled ? 1 : 0,
        vdbname: `moodle_${plan.shortname}`,
        vdatapath: `/var/moodledata/${plan.shortname}`,
        mnet: -1,
        vdbtype: 'mariadb',
      };
    });
    await db.batchInsert(registry.table, rows, 1000);

    const load = await time(7, () => registry.loadFleet());
    const fleet = await registry.loadFleet();
    const named = fleet.hosts.filter((_, i) => i % 100 === 0).map((h) => h.shortname);
    const selectors: Array<[string, Selector]> = [
      ["--tohostsmatch '*.example.org' --exclude '*test*'", { tohostsmatch: '*.example.org', exclude: '*test*' }],
      ["--tohosts '*'", { tohosts: '*' }],
      [`--tohosts (${named.length} names)`, { tohosts: named }],
      ["--tohostsmatch '*physics*,*law*' --regex '/test/in'", { tohostsmatch: '*physics*,*law*', regex: '/test/in' }],
    ];
    const rowsOut: Row[] = [
      { what: `load ${FLEET_SIZE.toLocaleString('en')} instances (query + index)`, timing: load, goalMs: 500 },
    ];
    for (const [label, selector] of selectors) {
      const count = resolveTargets(fleet, selector).targets.length;
      rowsOut.push({
        what: `showtargets ${label}`,
        timing: await time(50, () => resolveTargets(fleet, selector)),
        goalMs: 50,
        note: `${count} targets`,
      });
    }
    printTable(`Registry: ${FLEET_SIZE.toLocaleString('en')} instances`, rowsOut);
    await db.destroy();
  });
}
