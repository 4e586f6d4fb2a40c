import { main } from './app/program.ts';

const code = await main(process.argv.slice(2));
// Node writes to a pipe asynchronously once the reader falls behind: everything printed is flushed before the
// process ends. It then ends at once, since a driver's reconnect timer left behind (Redis that went away) must not
// hold it open.
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise((done) => stream.write('', done))));
process.exit(code);
