import { defineCommand, type CommandDef } from './command.ts';
import { PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import { readSetting } from '../moodle/config.ts';
import { runHostCron } from '../moodle/host-cron.ts';
import { TargetError } from '../moodle/target.ts';

/** A host's cron on request, as a tick runs it: its counters, log and alert follow, as for the fleet's cron. */
export const runCron = defineCommand({
  name: 'cron/run',
  category: 'cron',
  summary:
    "Run each target's Moodle cron now: VMoodle's cron wrapper on its node (via=php) or its admin/cron.php (via=http)",
  params: [
    {
      name: 'via',
      type: 'enum',
      choices: ['php', 'http'],
      default: 'php',
      label: 'How',
      help: "php: local/vmoodle/cli/cron.php --host on the instance's node; http: POST the site's cron password to its admin/cron.php",
    },
  ],
  destructive: false,
  reversible: false,
  idempotent: true,
  needsSource: false,
  writes: true,
  runsOn: (p) => (p.via === 'php' ? 'php' : 'node'),
  phpScripts: { cron: {}, ...PURGE_THROUGH_MOODLE },
  async preview(ctx, target) {
    const keepalive = await ctx.moodle.withStatements(
      target,
      (sql) => readSetting(ctx.moodle, sql, target, { name: 'cron_keepalive' }),
      false,
    );
    return {
      note:
        keepalive === '0'
          ? undefined
          : "cron_keepalive will be set to 0 first (VMoodle's wrapper cannot pass --keep-alive=0, and Moodle would loop for 3 minutes)",
    };
  },
  async apply(ctx, target, p) {
    const run = await runHostCron(ctx, target, { ...ctx.cron, trigger: p.via as 'php' | 'http' });
    await ctx.recordCron(target, run);
    const message = [`${run.outcome} in ${(run.durationMs / 1000).toFixed(1)} s`, run.note].filter(Boolean).join('; ');
    if (run.outcome !== 'completed') throw new TargetError(`cron ${message}`);
    return { status: 'applied', message };
  },
});

export const CRON_COMMANDS: readonly CommandDef[] = [runCron];
