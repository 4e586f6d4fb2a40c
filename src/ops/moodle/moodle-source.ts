import { fileURLToPath } from 'node:url';
import { loadDump, type MoodleDump } from './dump.ts';

/**
 * Used when no real Moodle dump is configured: only the tables this product touches, with a fresh install's rows.
 * It sits beside this module, in the sources and in the build (which copies it, see scripts/copy-assets.mjs).
 */
export const COMPACT_SCHEMA_PATH = fileURLToPath(new URL('./compact-schema.sql', import.meta.url));

/** The Moodle database new sandbox instances are made from: the configured real dump, else the compact schema. */
export function moodleSource(dumpPath: string | undefined): {
  path: string;
  compact: boolean;
  load: () => Promise<MoodleDump>;
} {
  const path = dumpPath ?? COMPACT_SCHEMA_PATH;
  return { path, compact: dumpPath === undefined, load: () => loadDump(path) };
}
