# Moodle's own checks first: compressed rows fixed (needed before an upgrade on MariaDB), then the upgrade itself.
moodle_cli mysql_compressed_rows.php --fix
if moodle_cli upgrade.php --non-interactive --allow-unstable; then
  say "upgraded"
else
  code=$?
  fail "upgrade.php ended with $code: read its output above; the old site is untouched, step 1's dump is the new one's way back" "$code"
fi
