<?php
// vmoodle-ops: deletes a course category with all it holds, with Moodle's core_course_category::delete_full().
// Runs on the instance's node as: php local/vmoodle/cli/delete_category.php --host=<wwwroot> --categoryid=<id>

$vmopsoptions = ['categoryid' => false];
require(__DIR__ . '/vmops_boot.php');

$category = core_course_category::get((int)$options['categoryid'], IGNORE_MISSING, true);
if (!$category) {
    cli_error('No category ' . (int)$options['categoryid'] . ' to delete');
}
$name = $category->name;
$category->delete_full(false);
echo "Deleted category {$options['categoryid']} [{$name}] with its courses and subcategories\n";
exit(0);
