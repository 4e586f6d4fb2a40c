need "$NEW_DB_OPTIONS"
on_new "CREATE DATABASE IF NOT EXISTS \`$NEW_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
if ! dry; then
  # Step 3 must not mix two sites: the new database holds none of this prefix's tables yet.
  n="$(sql_new -N -B -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$NEW_DB' AND TABLE_NAME LIKE '$PREFIX_LIKE'")"
  [ "$n" = 0 ] || fail "$NEW_DB already holds $n tables starting $PREFIX: drop them first, or make the pack again with another --to"
fi
say "$NEW_DB is ready on $NEW_DBHOST"
