import { mkdir } from 'node:fs/promises';
import { writeFileSafely } from '../../core/paths.ts';
import { join } from 'node:path';
import { errorKind } from '../../core/errors.ts';
import { splitDbHost, type Instance } from '../../registry/instance.ts';
import { exists } from '../moodle/dataroot.ts';

/** Only its group (the web server's) may read a file that holds a database password. */
export const CONFIG_FILE_MODE = 0o640;
const FOLDER_MODE = 0o750;

/** A PHP single-quoted string: only `\` and `'` need escaping there. */
const phpString = (value: string) => {
  if (value.includes('\0')) throw new ConfigFilesError('a value holds a NUL byte');
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
};

/**
 * The config.php Moodle's installer writes for a site on its own, from an instance's registry row: its database,
 * wwwroot and dataroot, and no VMoodle hook, so that the site boots without the master (de-virtualisation).
 */
export function standaloneConfig(instance: Instance, password: string): string {
  const { host, port } = splitDbHost(instance.vdbhost);
  return `<?php  // Moodle configuration file
// ${instance.shortname} on its own, without VMoodle's boot; written by vmoodle-ops from the fleet's registry.

unset($CFG);
global $CFG;
$CFG = new stdClass();

$CFG->dbtype    = ${phpString(instance.vdbtype === 'mysqli' ? 'mysqli' : 'mariadb')};
$CFG->dblibrary = 'native';
$CFG->dbhost    = ${phpString(host)};
$CFG->dbname    = ${phpString(instance.vdbname)};
$CFG->dbuser    = ${phpString(instance.vdblogin)};
$CFG->dbpass    = ${phpString(password)};
$CFG->prefix    = ${phpString(instance.vdbprefix)};
$CFG->dboptions = array (
  'dbpersist' => ${instance.vdbpersist ? 1 : 0},
  'dbport' => ${port},
  'dbsocket' => '',
  'dbcollation' => 'utf8mb4_unicode_ci',
);

$CFG->wwwroot   = ${phpString(instance.vhostname)};
$CFG->dataroot  = ${phpString(instance.vdatapath)};
$CFG->admin     = 'admin';

$CFG->directorypermissions = 02777;

require_once(__DIR__ . '/lib/setup.php');

// There is no php closing tag in this file,
// it is intentional because it prevents trailing whitespace problems!
`;
}

export class ConfigFilesError extends errorKind('usage') {}

/** VMoodle's name for an instance's generated file. */
export const configFileName = (instance: Instance) =>
  `config-${instance.shortname.replace(/[^A-Za-z0-9._-]/g, '_')}.php`;

/**
 * Writes each instance's standalone config.php into a folder, mode 0640 whatever the umask; a file already there is
 * kept unless `replace`, so that a second run never overwrites one an admin has edited.
 */
export async function writeStandaloneConfigs(
  folder: string,
  sites: ReadonlyArray<{ instance: Instance; password: string }>,
  replace: boolean,
): Promise<string[]> {
  await mkdir(folder, { recursive: true, mode: FOLDER_MODE });
  if (!replace) {
    const there = (
      await Promise.all(
        sites.map(async ({ instance }) =>
          (await exists(join(folder, configFileName(instance)))) ? configFileName(instance) : undefined,
        ),
      )
    ).filter(Boolean);
    if (there.length)
      throw new ConfigFilesError(
        `${folder} already holds ${there.join(', ')}: nothing written (--replace overwrites them)`,
      );
  }
  const written: string[] = [];
  for (const { instance, password } of sites) {
    const path = join(folder, configFileName(instance));
    // Never through a link planted in the folder: a new file beside it replaces whatever is at its place.
    await writeFileSafely(path, standaloneConfig(instance, password), CONFIG_FILE_MODE, replace);
    written.push(path);
  }
  return written;
}
