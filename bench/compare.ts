import Table from 'cli-table3';
import mysql from 'mysql2/promise';
import { comparisonCsv, comparisonOf, comparisonSummary, differences } from '../src/verbs/compare.ts';
import { createPlan } from '../src/ops/executor/planner.ts';
import { startRun } from '../src/ops/executor/run-actions.ts';
import { FINAL_STATES } from '../src/ops/executor/run-model.ts';
import { ExecutorWorker } from '../src/ops/executor/worker.ts';
import { withBenchFleet } from './executor.ts';

const TARGETS = 200;
const GOAL_MS = 5000;

/** What a compare reads: plugin states and role definitions, with a fresh install's rows. */
const TABLES = [
  'config',
  'config_plugins',
  'modules',
  'block',
  'role',
  'role_capabilities',
  'role_context_levels',
  'capabilities',
];

/**
 * plugins/compare and roles/compare on 200 instances, from the plan to the summary of differences and the CSV matrix
 * the chat gets; one instance has a capability changed and another a plugin enabled, so there is something to find.
 */
export async function benchCompare(): Promise<void> {
  await withBenchFleet(
    'cmp',
    async ({ rt, server, instance }) => {
      const conn = await mysql.createConnection(server);
      const t = (i: number, table: string) => `\`${instance(i).db}\`.\`${instance(i).prefix}${table}\``;
      await conn.query(
        `UPDATE ${t(17, 'role_capabilities')} SET permission = -1000 WHERE roleid = 3 AND capability = 'moodle/course:changefullname'`,
      );
      await conn.query(`UPDATE ${t(42, 'modules')} SET visible = 1 WHERE name = 'chat'`);
      await conn.end();
      const worker = new ExecutorWorker(rt);
      await worker.waitUntilReady();
      const table = new Table({ head: ['measure', 'value', 'goal', 'met'], style: { head: [], border: [] } });
      for (const [command, params] of [
        ['plugins/compare', { plugintype: 'mod' }],
        ['roles/compare', { role: 'editingteacher' }],
      ] as const) {
        const start = performance.now();
        const plan = await createPlan(rt, {
          command,
          params,
          selector: { tohosts: '*' },
          requestedBy: 'bench',
          via: 'cli',
        });
        await startRun(rt, plan.run.id, 'bench', plan.run.plan_hash);
        await rt.progress.follow(
          plan.run.id,
          () => undefined,
          (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
        );
        const run = await rt.store.getRun(plan.run.id);
        const targets = await rt.store.getTargets(plan.run.id);
        const cmp = comparisonOf(run, targets);
        if (!cmp) throw new Error(`${command} made no comparison`);
        const summary = comparisonSummary(cmp);
        const csv = comparisonCsv(cmp);
        const ms = performance.now() - start;
        const found = differences(cmp)
          .map((d) => `${d.item}: ${d.odd.map((o) => `${o.host} ${o.value}`).join(', ')}`)
          .join('; ');
        table.push(
          [
            `${command} on ${TARGETS} instances: plan → summary and CSV`,
            `${ms.toFixed(0)} ms`,
            `< ${GOAL_MS} ms`,
            ms < GOAL_MS && run.state === 'succeeded' ? 'yes' : 'NO',
          ],
          [
            `  ${cmp.items.length} × ${cmp.hosts.length} hosts (${(csv.length / 1024).toFixed(0)} KB of CSV)`,
            summary[0] ?? '',
            '',
            '',
          ],
          [
            '  found',
            found || (targets.find((x) => x.status !== 'applied')?.message ?? ''),
            'one host',
            differences(cmp).length === 1 ? 'yes' : 'NO',
          ],
        );
      }
      await worker.close();
      console.log(`\nCompare: plugin × host and capability × host on ${TARGETS} instances\n${table.toString()}`);
    },
    { targets: TARGETS, tables: TABLES, rowsOf: TABLES, seed: () => '' },
  );
}
