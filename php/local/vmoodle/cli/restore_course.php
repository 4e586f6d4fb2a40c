<?php
// vmoodle-ops: restores a course backup (.mbz) into a new course of a category, with Moodle's own restore, then sets
// its names, ID number and visibility and enrols the chosen admins as editing teachers.
// Runs on the instance's node as: php local/vmoodle/cli/restore_course.php --host=<wwwroot> --file=<path.mbz>
//   --categoryid=<id> --shortname=<text> --fullname=<text> [--idnumber=<text>] [--visible=0|1]
//   [--enroladmins=managers|siteadmins|adminsandmanagers]

$vmopsoptions = [
    'file' => false, 'categoryid' => false, 'shortname' => false, 'fullname' => false, 'idnumber' => '', 'visible' => '1',
    'enroladmins' => '',
];
require(__DIR__ . '/vmops_boot.php');
require_once($CFG->dirroot . '/backup/util/includes/restore_includes.php');
require_once($CFG->dirroot . '/course/lib.php');
require_once($CFG->libdir . '/enrollib.php');

if (!is_readable($options['file'])) {
    cli_error("The backup {$options['file']} cannot be read on this node");
}
$category = $DB->get_record('course_categories', ['id' => (int)$options['categoryid']]);
if (!$category) {
    cli_error('No category ' . (int)$options['categoryid'] . ' to restore into');
}
if ($DB->record_exists('course', ['shortname' => $options['shortname']])) {
    cli_error("A course {$options['shortname']} exists already");
}

$admin = get_admin();
$folder = 'vmops_restore_' . uniqid();
$path = make_backup_temp_directory($folder);
if (!get_file_packer('application/vnd.moodle.backup')->extract_to_pathname($options['file'], $path)) {
    fulldelete($path);
    cli_error("The backup {$options['file']} could not be unpacked");
}
$courseid = restore_dbops::create_new_course($options['fullname'], $options['shortname'], $category->id);
$controller = new restore_controller($folder, $courseid, backup::INTERACTIVE_NO, backup::MODE_GENERAL, $admin->id,
    backup::TARGET_NEW_COURSE);
$plan = $controller->get_plan();
foreach (['course_shortname' => $options['shortname'], 'course_fullname' => $options['fullname']] as $name => $value) {
    if ($plan->setting_exists($name)) {
        $plan->get_setting($name)->set_value($value);
    }
}
if (!$controller->execute_precheck()) {
    $results = $controller->get_precheck_results();
    if (!empty($results['errors'])) {
        $controller->destroy();
        fulldelete($path);
        delete_course($courseid, false);
        cli_error('The restore was refused: ' . implode('; ', $results['errors']));
    }
}
$controller->execute_plan();
$controller->destroy();
fulldelete($path);

$visible = $options['visible'] ? 1 : 0;
update_course((object)['id' => $courseid, 'shortname' => $options['shortname'], 'fullname' => $options['fullname'],
    'idnumber' => $options['idnumber'], 'visible' => $visible, 'visibleold' => $visible]);

$teachers = [];
if (in_array($options['enroladmins'], ['siteadmins', 'adminsandmanagers'])) {
    $teachers = array_merge($teachers, array_filter(array_map('intval', explode(',', $CFG->siteadmins))));
}
if (in_array($options['enroladmins'], ['managers', 'adminsandmanagers'])) {
    $manager = $DB->get_field('role', 'id', ['shortname' => 'manager']);
    $teachers = array_merge($teachers, $DB->get_fieldset_select('role_assignments', 'userid', 'roleid = ? AND contextid = ?',
        [$manager, context_system::instance()->id]));
}
$editingteacher = $DB->get_field('role', 'id', ['shortname' => 'editingteacher'], MUST_EXIST);
foreach (array_unique($teachers) as $userid) {
    enrol_try_internal_enrol($courseid, $userid, $editingteacher);
}
echo "Restored course {$courseid} [{$options['shortname']}] into category {$category->id}\n";
exit(0);
