import { Command, CommanderError } from 'commander';
import { App } from './app.ts';
import { registerInstances } from './cli/instances.ts';
import { makeContext, type CliContext } from './cli/context.ts';
import { UsageError } from './grammar/usage-error.ts';
import { processIO, type CliIO } from './cli/output.ts';
import { registerHelp } from './cli/help.ts';
import { registerRun } from './cli/run.ts';
import { registerRuns } from './cli/runs.ts';
import { registerWorker } from './cli/worker.ts';
import { registerSandbox } from './cli/sandbox.ts';
import { registerShowTargets } from './cli/showtargets.ts';
import { registerStart } from './cli/start.ts';
import { loadConfig } from './config.ts';
import { AttributeError } from './ops/attributes.ts';
import { UnknownCommandError } from './ops/catalog/index.ts';
import { ParamError } from './ops/params.ts';
import { describeError } from './ops/executor/errors.ts';
import { PlanError } from './ops/executor/planner.ts';
import type { ServiceUrls } from './services/index.ts';

export function buildProgram(io: CliIO, app: () => App): { program: Command; ctx: CliContext } {
  const program = new Command('vmoodle')
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
  registerShowTargets(program, ctx);
  registerRun(program, ctx);
  registerRuns(program, ctx);
  registerWorker(program, ctx);
  registerSandbox(program, ctx);
  registerStart(program, ctx);
  registerHelp(program, ctx);
  return { program, ctx };
}

/**
 * Runs one command line and returns its exit code: 0 on success, 1 with a one-line reason on any error, the
 * parser's own code for a usage error. Nothing is thrown.
 */
export async function main(argv: string[], io: CliIO = processIO(), urls?: ServiceUrls): Promise<number> {
  let app: App | undefined;
  const { program, ctx } = buildProgram(io, () => (app ??= new App(loadConfig(io.env), urls)));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const explained = app ? app.explain(err) : err;
    io.stderr(`vmoodle: ${describeError(explained)}\n`);
    // The stack's first line is the message, which for a database error may hold the statement: it is left out.
    if (io.env.VMOODLE_DEBUG && explained instanceof Error) io.stderr(`${explained.stack?.split('\n').slice(1).join('\n')}\n`);
    const usage = [UsageError, AttributeError, ParamError, UnknownCommandError, PlanError].some((kind) => err instanceof kind);
    return usage ? 2 : 1;
  } finally {
    await app?.close();
  }
}
