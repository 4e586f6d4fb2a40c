import { benchExecutor } from './executor.ts';
import { benchMoodleBuilds } from './moodle.ts';
import { benchRegistry } from './registry.ts';

await benchRegistry();
await benchExecutor();
await benchMoodleBuilds();
