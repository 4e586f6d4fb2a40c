/**
 * The Moodle tables this product reads or writes, without prefix. The compact schema (used when no real Moodle
 * dump is at hand) holds exactly these, and a test checks them against a real Moodle's.
 */
export const MOODLE_TABLES = {
  config: 'config',
  configPlugins: 'config_plugins',
  configLog: 'config_log',
  course: 'course',
  courseCategories: 'course_categories',
  context: 'context',
  user: 'user',
  cacheFlags: 'cache_flags',
  mnetHost: 'mnet_host',
  mnetHost2service: 'mnet_host2service',
  mnetService: 'mnet_service',
  mnetApplication: 'mnet_application',
  adminpresets: 'adminpresets',
} as const;

export type MoodleTable = (typeof MOODLE_TABLES)[keyof typeof MOODLE_TABLES];

export const COMPACT_TABLES: readonly MoodleTable[] = Object.values(MOODLE_TABLES);
