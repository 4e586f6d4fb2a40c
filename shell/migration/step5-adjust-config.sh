if [ "$KIND" = master ]; then
  # The master's config.php in the new code tree points at its new database and dataroot.
  config="$NEW_DIRROOT/config.php"
  [ -f "$config" ] || dry || fail "$config is not there: install the new code first (CHECKLIST.md)" 2
  for pair in "dbhost=$NEW_DBHOST_NAME" "dbname=$NEW_DB" "dataroot=$NEW_DATAROOT"; do
    key="${pair%%=*}"
    value="${pair#*=}"
    run sed -i -E "s|^([[:space:]]*[\$]CFG->${key}[[:space:]]*=[[:space:]]*)'[^']*';|\\1'$value';|" "$config"
    dry || grep -qE "^[[:space:]]*[\$]CFG->${key}[[:space:]]*=[[:space:]]*'$value';" "$config" \
      || fail "$config: \$CFG->$key is not a plain quoted assignment, so it was not changed: set it to '$value' by hand"
  done
  [ "${OLD_DBHOST##*:}" = "$NEW_DBPORT" ] || say "the new server listens on $NEW_DBPORT: set \$CFG->dboptions['dbport'] in $config by hand"
  say "$config now uses $NEW_DB and $NEW_DATAROOT"
else
  # The instance's row in the new master's registry: VMoodle boots it from there.
  need "$NEW_MASTER_OPTIONS"
  where="FROM \`$NEW_MASTER_DB\`.\`${NEW_MASTER_PREFIX}local_vmoodle\` WHERE vhostname = '$WWWROOT'"
  update="UPDATE \`$NEW_MASTER_DB\`.\`${NEW_MASTER_PREFIX}local_vmoodle\` SET vdbhost = '$NEW_DBHOST', vdbname = '$NEW_DB', vdatapath = '$NEW_DATAROOT' WHERE vhostname = '$WWWROOT'"
  if dry; then
    printf '+ mysql --defaults-extra-file=%q -e "%s"\n' "$NEW_MASTER_OPTIONS" "$update"
  else
    rows="$(mysql --defaults-extra-file="$NEW_MASTER_OPTIONS" -N -B -e "SELECT COUNT(*) $where")"
    [ "$rows" = 1 ] || fail "the new master's registry has $rows rows for $WWWROOT: run the master's step 3 first"
    mysql --defaults-extra-file="$NEW_MASTER_OPTIONS" -e "$update"
  fi
  say "the new registry sends $WWWROOT to $NEW_DB and $NEW_DATAROOT"
fi
