import type { Command as LineParser } from 'commander';
import type { CliContext } from './context.ts';

export function registerWorker(program: LineParser, ctx: CliContext): void {
  program
    .command('worker')
    .description('run targets from the queue until stopped (run several, on several hosts, to scale out)')
    .option(
      '--node <name>',
      "also run the work of this node (files, Moodle's PHP): start it on the node, one of VMOODLE_NODES",
    )
    .addHelpText('after', '\nExamples:\n  VMOODLE_WORKER_CONCURRENCY=64 vmoodle worker\n  vmoodle worker --node web1')
    .action(async (opts: { node?: string }, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const [{ ExecutorWorker }, { FLEET_SCHEDULES }, { serveExecutorMetrics }] = await Promise.all([
        import('../ops/executor/worker.ts'),
        import('../ops/schedules/index.ts'),
        import('../ops/executor/metrics.ts'),
      ]);
      const { servedNode } = await import('../core/nodes.ts');
      const { config } = ctx.app();
      const node = servedNode(config.nodes, config.node, opts.node);
      ctx.app().logRunsAt('info');
      ctx.app().redisRole = 'worker';
      const rt = await ctx.app().ops();
      const worker = new ExecutorWorker(rt, { node, schedules: FLEET_SCHEDULES });
      await worker.waitUntilReady();
      const metrics = await serveExecutorMetrics(rt);
      if (metrics) out.line(`Metrics at ${metrics.url}/metrics (health: /healthz, /readyz).`);
      for (const warning of [await rt.legacyWarning(), await rt.serverWarning()])
        if (warning) out.line(`Warning: ${warning}`);
      const php = worker.node
        ? `; node ${worker.node.name}'s work too (code root ${worker.node.codeRoot}, ${worker.node.maxPhp} PHP processes at most)`
        : '';
      out.line(
        `Worker ${node ?? rt.config.node} ready: ${rt.config.executor.concurrency} targets at a time, ${rt.config.executor.perServer} connections at most per DB server${php}.`,
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      out.line('Stopping: targets under way finish first.');
      await worker.close();
      await metrics?.close();
    });
}
