import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config.ts';
import { loadDump, type MoodleDump } from './dump.ts';

/**
 * Used when no real Moodle dump is configured: only the tables this product touches, with a fresh install's rows.
 * It stays in the sources, where the compiled command line reads it too.
 */
export const COMPACT_SCHEMA_PATH = join(PROJECT_ROOT, 'src', 'ops', 'moodle', 'compact-schema.sql');

/** The Moodle database new sandbox instances are made from: the configured real dump, else the compact schema. */
export function moodleSource(dumpPath: string | undefined): { path: string; compact: boolean; load: () => Promise<MoodleDump> } {
  const path = dumpPath ?? COMPACT_SCHEMA_PATH;
  return { path, compact: dumpPath === undefined, load: () => loadDump(path) };
}
