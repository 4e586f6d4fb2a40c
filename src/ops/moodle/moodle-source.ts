import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDump, type MoodleDump } from './dump.ts';

/** Used when no real Moodle dump is configured: only the tables this product touches, with a fresh install's rows. */
export const COMPACT_SCHEMA_PATH = join(dirname(fileURLToPath(import.meta.url)), 'compact-schema.sql');

/** The Moodle database new sandbox instances are made from: the configured real dump, else the compact schema. */
export function moodleSource(dumpPath: string | undefined): { path: string; compact: boolean; load: () => Promise<MoodleDump> } {
  const path = dumpPath ?? COMPACT_SCHEMA_PATH;
  return { path, compact: dumpPath === undefined, load: () => loadDump(path) };
}
