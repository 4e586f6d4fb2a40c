import { createInterface } from 'node:readline';
import parseArgs from 'string-argv';
import type { CliIO } from '../cli/output.ts';
import type { ServiceUrls } from '../services/index.ts';

/**
 * A terminal chat: each line is a `/vmoodle` command (the leading `/vmoodle` may be left out), run with the
 * same grammar as the CLI. It ends on `quit`, end of input, or SIGINT/SIGTERM.
 */
export async function consoleChat(io: CliIO, urls: ServiceUrls, input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  const { main } = await import('../cli.ts');
  const rl = createInterface({ input, terminal: false });
  io.stdout("Type a command (e.g. showtargets --match '*.example.org'), help, or quit.\nvmoodle> ");
  const stop = () => rl.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const raw of rl) {
      const line = raw.trim().replace(/^\/?vmoodle\s*/, '');
      if (line === 'quit' || line === 'exit') break;
      const args = parseArgs(line);
      if (args[0] === 'start') io.stderr('vmoodle: already started\n');
      else if (args.length > 0) await main(args, io, urls);
      io.stdout('vmoodle> ');
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    rl.close();
  }
  io.stdout('\n');
}
