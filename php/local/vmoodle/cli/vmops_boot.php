<?php
// vmoodle-ops: the start every vmoodle-ops wrapper shares, as VMoodle's own CLI wrappers start. Included at file
// scope by a wrapper that first sets $vmopsoptions (its options, name => default); it switches Moodle to the instance
// named by --host, then leaves the parsed options in $options. Unknown options end the run, as VMoodle's do.

define('CLI_SCRIPT', true);

global $CLI_VMOODLE_PRECHECK;
// The first config.php stops early: only enough of Moodle to read the command line.
$CLI_VMOODLE_PRECHECK = true;
require(dirname(__DIR__, 3) . '/config.php');
require_once($CFG->dirroot . '/lib/clilib.php');

list($options, $unrecognized) = cli_get_params(['host' => false] + $vmopsoptions, []);
if ($unrecognized) {
    cli_error('Not recognized options ' . implode(' ', $unrecognized));
}
if (empty($options['host'])) {
    cli_error('--host=<wwwroot> is required');
}
echo 'Arming for ' . $options['host'] . "\n";
define('CLI_VMOODLE_OVERRIDE', $options['host']);

// The second config.php runs the whole of Moodle's setup for the instance VMoodle finds for --host.
require(dirname(__DIR__, 3) . '/config.php');
echo 'Config check : playing for ' . $CFG->wwwroot . "\n";

// Changes are made, and logged, as the site's main admin, as VMoodle's RPC layer makes them.
\core\session\manager::set_user(get_admin());
