import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/core/config.ts';
import { printTable, time, type Row } from './support.ts';

const RUNS = 7;
const BIN = join(PROJECT_ROOT, 'bin/vmoodle.js');
const node = (args: string[]) => () => spawnSync(process.execPath, args, { encoding: 'utf8' });

/** How fast the command line answers: a bare Node start, then vmoodle (compiled) on lines that open no server. */
export async function benchCli(): Promise<void> {
  const floor = await time(RUNS, node(['-e', '']));
  const rows: Row[] = [
    { what: 'node -e "" (the floor)', timing: floor },
    { what: 'vmoodle --help', timing: await time(RUNS, node([BIN, '--help'])), goalMs: 500 },
    {
      what: 'vmoodle help generic/setconfig (loads the catalogue)',
      timing: await time(RUNS, node([BIN, 'help', 'generic/setconfig'])),
      goalMs: 500,
    },
    {
      what: 'vmoodle runs show abc (a malformed line, exit 2)',
      timing: await time(RUNS, node([BIN, 'runs', 'show', 'abc'])),
      goalMs: 500,
    },
  ];
  for (const row of rows.slice(1)) row.note = `${(row.timing.median / floor.median).toFixed(1)}× the floor`;
  printTable('Command line start (compiled JavaScript in dist/)', rows);
}
