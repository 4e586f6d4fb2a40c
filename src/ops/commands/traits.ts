import { PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';

/**
 * A write that gives each target what the source host has (--fromhost, default the master), run where the target's
 * caches are: repeatable (it compares first), with no old value to put back.
 */
export const COPY_FROM_SOURCE = {
  reversible: false,
  idempotent: true,
  needsSource: true,
  writes: true,
  runsOn: 'node',
  phpScripts: PURGE_THROUGH_MOODLE,
} as const;

/** A read of every target, changing nothing (a compare, a search). */
export const READ_ONLY = {
  destructive: false,
  reversible: false,
  idempotent: true,
  needsSource: false,
  writes: false,
} as const;
