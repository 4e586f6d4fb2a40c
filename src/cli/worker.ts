import type { Command } from 'commander';
import type { CliContext } from './context.ts';

export function registerWorker(program: Command, ctx: CliContext): void {
  program
    .command('worker')
    .description('run targets from the queue until stopped (run several, on several hosts, to scale out)')
    .addHelpText('after', '\nExample:\n  VMOODLE_WORKER_CONCURRENCY=64 vmoodle worker')
    .action(async (_opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const { ExecutorWorker } = await import('../ops/executor/worker.ts');
      ctx.app().logRunsAt('info');
      ctx.app().redisRole = 'worker';
      const rt = await ctx.app().ops();
      const worker = new ExecutorWorker(rt);
      await worker.worker.waitUntilReady();
      const legacy = await rt.legacyWarning();
      if (legacy) out.line(`Warning: ${legacy}`);
      out.line(`Worker ${rt.config.node} ready: ${rt.config.executor.concurrency} targets at a time, ${rt.config.executor.perServer} connections at most per DB server.`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      out.line('Stopping: targets under way finish first.');
      await worker.close();
    });
}
