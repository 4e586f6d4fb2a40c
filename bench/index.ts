import { benchMoodleBuilds } from './moodle.ts';
import { benchRegistry } from './registry.ts';

await benchRegistry();
await benchMoodleBuilds();
