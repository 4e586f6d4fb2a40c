need "$OLD_DB_OPTIONS" "$NEW_DB_OPTIONS"
if dry; then
  printf '+ mysqldump --defaults-extra-file=%q ... %q <its tables starting %s> | mysql --defaults-extra-file=%q %q\n' "$OLD_DB_OPTIONS" "$OLD_DB" "$PREFIX" "$NEW_DB_OPTIONS" "$NEW_DB"
else
  dump_old | sql_new "$NEW_DB"
fi
# Settings that hold the dataroot follow it; nothing else in the content is rewritten, as a blind replace of a dump would.
n=$((${#OLD_DATAROOT} + 1))
for table in config config_plugins; do
  on_new "UPDATE \`$NEW_DB\`.\`$PREFIX$table\` SET value = CONCAT('$NEW_DATAROOT', SUBSTRING(value, $n)) WHERE value = '$OLD_DATAROOT' OR LEFT(value, $n) = '$OLD_DATAROOT/'"
done
say "copied $OLD_DB ($PREFIX) into $NEW_DB"
