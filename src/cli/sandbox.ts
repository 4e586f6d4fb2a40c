import { type Command as LineParser, InvalidArgumentError } from 'commander';
import type { Backend } from '../verbs/backend.ts';
import type { CliContext } from './context.ts';
import type { Output } from './output.ts';
import { parseMysqlUrl } from '../core/db/mysql-url.ts';
import { serverName } from '../core/security-settings.ts';

/** Restores the sandbox master when needed, then adds `count` instances. */
export async function prepareSandboxMaster(app: Backend, out: Output): Promise<void> {
  if (!app.config.sandbox) return;
  const { ensureSandboxMaster } = await import('../ops/lifecycle/sandbox-fleet.ts');
  await ensureSandboxMaster({ config: app.config, mysqlUrl: app.urls.mysqlUrl, log: (l) => out.line(l) });
  await allowSandboxServer(app);
}

/** The sandbox's instances live on the master's server, which it allows as an admin would (docs/security.md). */
async function allowSandboxServer(app: Backend): Promise<void> {
  const store = await app.settings();
  const current = await store.read();
  const server = serverName(parseMysqlUrl(app.urls.mysqlUrl));
  if (current.dbServers?.some((r) => r.server === server)) return;
  await store.write({ ...current, dbServers: [...(current.dbServers ?? []), { server, tls: false }] }, 'sandbox');
}

export async function buildSandbox(app: Backend, out: Output, count: number) {
  await prepareSandboxMaster(app, out);
  await allowSandboxServer(app);
  const { createSandbox } = await import('../ops/lifecycle/sandbox-fleet.ts');
  return createSandbox(
    { config: app.config, mysqlUrl: app.urls.mysqlUrl, registry: await app.registry(), log: (l) => out.line(l) },
    count,
  );
}

export function registerSandbox(program: LineParser, ctx: CliContext): void {
  const sandbox = program
    .command('sandbox')
    .description('a demo fleet on the local MariaDB, to try the product without a real fleet');
  sandbox
    .command('create')
    .description('create working instances: databases restored from the Moodle dump, dataroots, registry rows')
    .requiredOption('--count <n>', 'how many instances', (v) => {
      if (!/^\d+$/.test(v)) throw new InvalidArgumentError('--count takes a whole number');
      return Number(v);
    })
    .addHelpText('after', '\nExample:\n  vmoodle sandbox create --count 12')
    .action(async (opts, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const created = await buildSandbox(ctx.app(), out, opts.count);
      out.data({
        created: created.map((i) => ({ id: i.id, shortname: i.shortname, wwwroot: i.vhostname, enabled: i.enabled })),
      });
      out.line(`created ${created.length} instance${created.length === 1 ? '' : 's'}`);
    });
}
