/**
 * A site's `muc/config.php` as Moodle writes it (moodle-facts §3.3, var_export layout): the default file store for the
 * application mode, plus the stores and definition mappings given.
 */
export const mucConfigPhp = (
  siteidentifier: string,
  stores = '',
  mappings = '',
) => `<?php defined('MOODLE_INTERNAL') || die();
 $configuration = array (
  'siteidentifier' => '${siteidentifier}',
  'stores' => 
  array (
    'default_application' => 
    array (
      'name' => 'default_application',
      'plugin' => 'file',
      'configuration' => 
      array (
      ),
      'features' => 30,
      'modes' => 3,
      'default' => true,
      'class' => 'cachestore_file',
      'lock' => 'cachelock_file_default',
    ),${stores}
  ),
  'modemappings' => 
  array (
    0 => 
    array (
      'mode' => 1,
      'store' => 'default_application',
      'sort' => -1,
    ),
  ),
  'definitionmappings' => 
  array (${mappings}
  ),
);`;

/** A Redis store as cache/admin.php adds it (moodle-facts §3.3). */
export const redisStorePhp = (server: string, prefix: string) => `
    'redis_store' => 
    array (
      'name' => 'redis_store',
      'plugin' => 'redis',
      'configuration' => 
      array (
        'server' => '${server}',
        'prefix' => '${prefix}',
        'password' => '',
        'serializer' => 1,
        'compressor' => 0,
      ),
      'features' => 26,
      'modes' => 3,
      'class' => 'cachestore_redis',
    ),`;

/** The mapping that puts core/config in the Redis store. */
export const CONFIG_IN_REDIS = `
    0 => 
    array (
      'store' => 'redis_store',
      'definition' => 'core/config',
      'sort' => 1,
    ),`;
