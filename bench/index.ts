import { benchCli } from './cli.ts';
import { benchExecutor } from './executor.ts';
import { benchMoodleBuilds } from './moodle.ts';
import { benchRegistry } from './registry.ts';
import { benchSlack } from './slack.ts';

await benchCli();
await benchRegistry();
await benchExecutor();
await benchSlack();
await benchMoodleBuilds();
