import { benchCli } from './cli.ts';
import { benchCompare } from './compare.ts';
import { benchExecutor } from './executor.ts';
import { benchLifecycle } from './lifecycle.ts';
import { benchMnetAndCron } from './mnet.ts';
import { benchMoodleBuilds } from './moodle.ts';
import { benchRegistry } from './registry.ts';
import { benchScale } from './scale.ts';
import { benchSlack } from './slack.ts';

/** Every bench, in order; `npm run bench -- slack executor` runs only those named. */
const BENCHES: Record<string, () => Promise<void>> = {
  cli: benchCli,
  registry: benchRegistry,
  executor: benchExecutor,
  scale: benchScale,
  compare: benchCompare,
  mnet: benchMnetAndCron,
  lifecycle: benchLifecycle,
  slack: benchSlack,
  moodle: benchMoodleBuilds,
};

const named = process.argv.slice(2);
const unknown = named.filter((n) => !Object.hasOwn(BENCHES, n));
if (unknown.length > 0) {
  console.error(`unknown bench ${unknown.join(', ')}: choose from ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}
for (const [name, bench] of Object.entries(BENCHES)) if (named.length === 0 || named.includes(name)) await bench();
