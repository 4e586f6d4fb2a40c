<?php
// vmoodle-ops: deletes a course category's courses and subcategories and keeps the category, with Moodle's own
// delete_course() and core_course_category::delete_full().
// Runs on the instance's node as: php local/vmoodle/cli/empty_category.php --host=<wwwroot> --categoryid=<id>

$vmopsoptions = ['categoryid' => false];
require(__DIR__ . '/vmops_boot.php');
require_once($CFG->dirroot . '/course/lib.php');

$category = core_course_category::get((int)$options['categoryid'], IGNORE_MISSING, true);
if (!$category) {
    cli_error('No category ' . (int)$options['categoryid'] . ' to empty');
}
$subcategories = 0;
foreach ($category->get_children() as $child) {
    $child->delete_full(false);
    $subcategories++;
}
$courses = 0;
foreach ($DB->get_records('course', ['category' => $category->id], 'id') as $course) {
    if (!delete_course($course, false)) {
        cli_error("Course {$course->id} could not be deleted; {$courses} courses were deleted before it");
    }
    $courses++;
}
fix_course_sortorder();
echo "Emptied category {$category->id}: {$courses} courses and {$subcategories} subcategories deleted\n";
exit(0);
