import { Command as LineParser, CommanderError } from 'commander';
import { Backend } from '../verbs/backend.ts';
import { registerInstances } from '../cli/instances.ts';
import { registerMigration } from '../cli/migration.ts';
import { makeContext, type CliContext } from '../cli/context.ts';
import { errorReport, EXIT_USAGE, exitCodeOf } from '../core/errors.ts';
import { processIO, type TerminalIO } from '../core/terminal.ts';
import { registerWorker } from '../cli/worker.ts';
import { registerSandbox } from '../cli/sandbox.ts';
import { registerSettings } from '../cli/settings.ts';
import { registerStart } from './start.ts';
import { registerVerbs } from '../cli/verbs.ts';
import { loadConfig } from '../core/config.ts';
import type { ServiceUrls } from '../core/services/index.ts';

export function buildProgram(io: TerminalIO, app: () => Backend): { program: LineParser; ctx: CliContext } {
  const program = new LineParser('vmoodle')
    .description('Operate a fleet of Moodle sites: VMoodle registry, target selection and broadcast commands.')
    .option('--json', 'machine-readable output')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
      outputError: (text, write) => write(`vmoodle: ${text.replace(/^error: /, '')}`),
    })
    .showSuggestionAfterError(true);
  const ctx = makeContext(io, app);
  registerInstances(program, ctx);
  registerMigration(program, ctx);
  program.helpCommand(false);
  registerWorker(program, ctx);
  registerSandbox(program, ctx);
  registerSettings(program, ctx);
  registerStart(program, ctx);
  registerVerbs(program, ctx);
  return { program, ctx };
}

/**
 * Runs one command line and returns its exit code: 0 on success, 1 when a run did not fully succeed, otherwise the
 * exit code of the error's code (2 for every malformed command line). Nothing is thrown.
 */
export async function main(argv: string[], io: TerminalIO = processIO(), urls?: ServiceUrls): Promise<number> {
  let app: Backend | undefined;
  const { program, ctx } = buildProgram(io, () => (app ??= new Backend(loadConfig(io.env), urls)));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    // Commander has printed its own message; --help and --version end with 0.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
    const explained = app ? app.explain(err) : err;
    const report = errorReport(explained);
    if (program.opts().json === true) io.stdout(`${JSON.stringify({ error: report }, null, 2)}\n`);
    io.stderr(`vmoodle: ${report.message} [${report.code}]${report.hint ? `; ${report.hint}` : ''}\n`);
    // The stack's first line is the message, which for a database error may hold the statement: it is left out.
    if (io.env.VMOODLE_DEBUG && explained instanceof Error)
      io.stderr(`${explained.stack?.split('\n').slice(1).join('\n')}\n`);
    return exitCodeOf(explained);
  } finally {
    await app?.close();
  }
}
