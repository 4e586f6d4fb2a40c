<?php
// vmoodle-ops: deletes one course of a VMoodle instance with Moodle's own delete_course().
// Runs on the instance's node as: php local/vmoodle/cli/delete_course.php --host=<wwwroot> --courseid=<id>

$vmopsoptions = ['courseid' => false];
require(__DIR__ . '/vmops_boot.php');
require_once($CFG->dirroot . '/course/lib.php');

$course = $DB->get_record('course', ['id' => (int)$options['courseid']]);
if (!$course || $course->id == SITEID) {
    cli_error('No course ' . (int)$options['courseid'] . ' to delete');
}
if (!delete_course($course, false)) {
    cli_error("Course {$course->id} could not be deleted");
}
fix_course_sortorder();
echo "Deleted course {$course->id} [{$course->shortname}]\n";
exit(0);
