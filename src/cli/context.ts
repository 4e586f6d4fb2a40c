import type { Command as LineParser } from 'commander';
import type { Backend } from '../verbs/backend.ts';
import { Output } from './output.ts';
import type { TerminalIO } from '../core/terminal.ts';

/** What every verb gets: the process's Backend (opened on first use) and an Output that honours --json. */
export interface CliContext {
  io: TerminalIO;
  app(): Backend;
  output(cmd: LineParser): Output;
  /** The exit code when the command itself did not fail (a run with failed targets returns 1). */
  exitCode: number;
}

export function makeContext(io: TerminalIO, app: () => Backend): CliContext {
  return {
    io,
    app,
    output: (cmd) => new Output(io, cmd.optsWithGlobals().json === true),
    exitCode: 0,
  };
}
