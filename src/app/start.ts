import type { Command as LineParser } from 'commander';
import { Backend } from '../verbs/backend.ts';
import { loadConfig, ConfigError } from '../core/config.ts';
import { redactUrl } from '../core/db/mysql-url.ts';
import type { CliContext } from '../cli/context.ts';
import type { Output } from '../cli/output.ts';
import { buildSandbox, prepareSandboxMaster } from '../cli/sandbox.ts';

/** With Slack credentials the product serves Slack (HTTP or Socket Mode) until it is stopped. */
async function serveSlack(app: Backend, out: Output): Promise<void> {
  const [{ startSlackBot }, { Rbac }, { approvalPolicy }] = await Promise.all([
    import('../bot/slack/app.ts'),
    import('../verbs/rbac.ts'),
    import('../ops/executor/approval-policy.ts'),
  ]);
  const security = await app.security();
  // A service logs its runs; the terminal chat shows them itself, and its terminal is not a log.
  app.logRunsAt('info');
  const { slack } = app.config;
  if (!security.rbac)
    throw new ConfigError(
      "serving Slack needs an RBAC in the master's settings (vmoodle settings import): without it nobody would have access",
    );
  const bot = await startSlackBot(app, new Rbac(security.rbac), approvalPolicy(security.approval), {
    botToken: slack.botToken as string,
    signingSecret: slack.signingSecret,
    appToken: slack.appToken,
    port: slack.port,
    host: '0.0.0.0',
  });
  out.line(`Serving Slack at ${bot.url}. Stop with Ctrl-C.`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await bot.idle();
  await bot.close();
}

/** The size of the demo fleet `npm start` creates when the sandbox registry is empty. */
export const FIRST_SANDBOX_SIZE = 12;

export function registerStart(program: LineParser, ctx: CliContext): void {
  program
    .command('start')
    .description(
      'start the product: check the servers (sandbox: start private ones if needed), a worker, and a terminal chat',
    )
    .action(async (_opts, cmd: LineParser) => {
      const out = ctx.output(cmd);
      // The product's parts load here, not with every command line.
      const [
        { ensureServices },
        { ExecutorWorker },
        { consoleChat },
        { servedNode },
        { FLEET_SCHEDULES },
        { serveExecutorMetrics },
      ] = await Promise.all([
        import('../core/services/index.ts'),
        import('../ops/executor/worker.ts'),
        import('../bot/console.ts'),
        import('../core/nodes.ts'),
        import('../ops/schedules/index.ts'),
        import('../ops/executor/metrics.ts'),
      ]);
      const config = loadConfig(ctx.io.env);
      const services = await ensureServices(config);
      const app = new Backend(config, services);
      app.redisRole = 'worker';
      try {
        for (const server of services.started)
          out.line(`Started a private ${server.name} at ${server.url} (stopped on exit)`);
        for (const warning of services.warnings) out.line(`Warning: ${warning}`);
        await prepareSandboxMaster(app, out);
        const registry = await app.registry();
        if (config.sandbox && (await registry.loadAll()).length === 0) await buildSandbox(app, out, FIRST_SANDBOX_SIZE);
        const fleet = await registry.loadFleet();
        out.line(
          `Master database ${redactUrl(services.mysqlUrl)}${config.sandbox ? ' (sandbox)' : ''}; Redis ${redactUrl(services.redisUrl)}; node ${config.node}`,
        );
        out.line(`${fleet.hosts.length} instances in the registry, ${fleet.enabledCount} enabled.`);
        const rt = await app.ops();
        const worker = new ExecutorWorker(rt, {
          node: servedNode(config.nodes, config.node),
          schedules: FLEET_SCHEDULES,
        });
        for (const warning of [await rt.legacyWarning(), await rt.serverWarning()])
          if (warning) out.line(`Warning: ${warning}`);
        out.line(
          `A worker runs targets here (${config.executor.concurrency} at a time); more can join with vmoodle worker.`,
        );
        // One listener for the worker and the bot of this process.
        const metrics = await serveExecutorMetrics(rt);
        if (metrics) out.line(`Metrics at ${metrics.url}/metrics (health: /healthz, /readyz).`);
        try {
          if (config.slack.botToken) await serveSlack(app, out);
          else await consoleChat(ctx.io, app);
        } finally {
          await worker.close();
          await metrics?.close();
        }
      } finally {
        await app.close();
        await services.stop();
      }
    });
}
