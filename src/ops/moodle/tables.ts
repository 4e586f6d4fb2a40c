/**
 * The Moodle tables this product reads or writes, without prefix. The compact schema (used when no real Moodle
 * dump is at hand) holds exactly these, and a test checks them against a real Moodle's.
 */
export const MOODLE_TABLES = {
  config: 'config',
  configPlugins: 'config_plugins',
  configLog: 'config_log',
  logstoreStandardLog: 'logstore_standard_log',
  course: 'course',
  courseCategories: 'course_categories',
  courseModules: 'course_modules',
  context: 'context',
  files: 'files',
  modules: 'modules',
  block: 'block',
  filterActive: 'filter_active',
  role: 'role',
  roleCapabilities: 'role_capabilities',
  roleContextLevels: 'role_context_levels',
  roleAllowAssign: 'role_allow_assign',
  roleAllowOverride: 'role_allow_override',
  roleAllowSwitch: 'role_allow_switch',
  roleAllowView: 'role_allow_view',
  capabilities: 'capabilities',
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

/**
 * Tables that hold secrets or identity (passwords, keys, tokens, sessions, the registry itself) and the product's
 * own: no copy command ever reads or replaces them. A name ending in `*` stands for every table it begins.
 */
export const PROTECTED_TABLES: readonly string[] = [
  'local_vmoodle',
  'config',
  'config_plugins',
  'config_log',
  'user',
  'user_private_key',
  'user_preferences',
  'user_password_history',
  'user_password_resets',
  'external_tokens',
  'external_services_users',
  'sessions',
  'oauth2_*',
  'mnet_*',
  'messageinbound_*',
  'tool_mfa*',
  'vmops_*',
];

export const isProtectedTable = (name: string) =>
  PROTECTED_TABLES.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
