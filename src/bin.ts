import { main } from './app/program.ts';

// A command line ends when its verb has: a driver's reconnect timer left behind (Redis that went away) must not
// hold the process open. On Linux, writes to a terminal, a file or a pipe are synchronous, so nothing printed is lost.
process.exit(await main(process.argv.slice(2)));
