import type { Command } from 'commander';
import type { Backend } from '../backend.ts';
import { Output, type CliIO } from './output.ts';

/** What every verb gets: the process's Backend (opened on first use) and an Output that honours --json. */
export interface CliContext {
  io: CliIO;
  app(): Backend;
  output(cmd: Command): Output;
  /** The exit code when the command itself did not fail (a run with failed targets returns 1). */
  exitCode: number;
}

export function makeContext(io: CliIO, app: () => Backend): CliContext {
  return {
    io,
    app,
    output: (cmd) => new Output(io, cmd.optsWithGlobals().json === true),
    exitCode: 0,
  };
}
