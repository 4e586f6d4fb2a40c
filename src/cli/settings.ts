import type { Command as LineParser } from 'commander';
import { splitDbHost } from '../registry/instance.ts';
import { readSettingsFile, serverName, settingsDocument, settingsYaml } from '../core/security-settings.ts';
import { UsageError } from '../core/errors.ts';
import { Keyring } from '../core/keyring.ts';
import { cliActor } from './verbs.ts';
import type { CliContext } from './context.ts';

/**
 * The security settings, on the command line only: whoever holds the master's credentials is its admin by
 * definition (docs/security.md), and a chat never writes them.
 */
export function registerSettings(program: LineParser, ctx: CliContext): void {
  const settings = program
    .command('settings')
    .description('the security settings kept in the master: RBAC, approval policy, allowed database servers');

  settings
    .command('show')
    .description('print the settings as YAML, the form settings import reads')
    .addHelpText('after', '\nExample:\n  vmoodle settings show > settings.yml')
    .action(async (_opts, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const store = await ctx.app().settings();
      const current = await store.read();
      const written = await store.written();
      out.data({ settings: settingsDocument(current), written: written ?? null });
      out.line(settingsYaml(current).trimEnd());
      if (written) out.line(`# written by ${written.by} at ${new Date(written.at).toISOString()}`);
    });

  settings
    .command('import <file>')
    .description(
      'replace the settings with a YAML file (rbac, approval, db_servers), checked whole: a bad file changes nothing',
    )
    .addHelpText('after', '\nExample:\n  vmoodle settings import settings.yml')
    .action(async (file: string, _opts, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const parsed = readSettingsFile(file);
      await (await ctx.app().settings()).write(parsed, cliActor());
      out.data({ settings: settingsDocument(parsed) });
      out.line(
        `settings written: ${parsed.rbac ? `RBAC with ${Object.values(parsed.rbac.roles).flat().length} members` : 'no RBAC'}, approval above ${parsed.approval.threshold} targets, ${parsed.dbServers ? `${parsed.dbServers.length} allowed database servers` : 'no allowed database servers'}`,
      );
    });

  settings
    .command('provisioning <server>')
    .description(
      "seal the account that makes each new instance's login on an allowed server (the master's own login serves the master's server)",
    )
    .requiredOption('--login <name>', 'the account, with CREATE USER and GRANT OPTION on the instance databases')
    .requiredOption('--password-env <variable>', 'the environment variable holding its password (never an argument)')
    .addHelpText(
      'after',
      '\nExample:\n  DB2_PROVISION=… vmoodle settings provisioning db2.example.org:3306 --login vmops_provision --password-env DB2_PROVISION',
    )
    .action(async (server: string, opts: { login: string; passwordEnv: string }, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const password = ctx.io.env[opts.passwordEnv];
      if (password === undefined) throw new UsageError(`--password-env: the variable ${opts.passwordEnv} is not set`);
      const app = ctx.app();
      const store = await app.settings();
      const current = await store.read();
      const name = server.toLowerCase();
      if (!current.dbServers?.some((r) => r.server === name))
        throw new UsageError(`${name} is not in db_servers: allow it first (vmoodle settings import)`);
      const sealed = new Keyring(app.config.secretKeys).seal(password);
      const dbServers = current.dbServers.map((r) =>
        r.server === name ? { ...r, provisioning: { login: opts.login, password: sealed } } : r,
      );
      await store.write({ ...current, dbServers }, cliActor());
      out.data({ server: name, login: opts.login });
      out.line(`provisioning account for ${name}: ${opts.login} (its password sealed)`);
    });

  settings
    .command('propose')
    .description(
      'print the settings with db_servers proposed from the servers the registry uses, for review before import',
    )
    .addHelpText(
      'after',
      '\nExample:\n  vmoodle settings propose > settings.yml && $EDITOR settings.yml && vmoodle settings import settings.yml',
    )
    .action(async (_opts, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const app = ctx.app();
      const current = await app.security();
      const used = [
        ...new Set((await (await app.registry()).loadAll()).map((i) => serverName(splitDbHost(i.vdbhost)))),
      ].sort();
      const listed = new Map((current.dbServers ?? []).map((r) => [r.server, r]));
      const proposed = {
        ...current,
        dbServers: [
          ...(current.dbServers ?? []),
          ...used.filter((s) => !listed.has(s)).map((server) => ({ server, tls: false })),
        ],
      };
      out.data({ settings: settingsDocument(proposed), registryServers: used });
      out.line(
        `# The servers the registry uses: ${used.join(', ') || 'none'}. Review each (set tls: true and a ca where the server offers TLS), then: vmoodle settings import <this file>`,
      );
      out.line(settingsYaml(proposed).trimEnd());
    });
}
