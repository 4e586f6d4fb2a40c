need "$OLD_DB_OPTIONS"
file="$BACKUP_DIR/$OLD_DB-${PREFIX}$(date +%Y%m%d-%H%M%S).sql.gz"
if dry; then
  printf '+ mysqldump --defaults-extra-file=%q --single-transaction --quick --hex-blob %q <its tables starting %s> | gzip > %q\n' "$OLD_DB_OPTIONS" "$OLD_DB" "$PREFIX" "$file"
  exit 0
fi
mkdir -p "$BACKUP_DIR"
chmod 700 "$BACKUP_DIR"
( umask 077; dump_old | gzip > "$file" )
gzip -t "$file"
say "backed up $OLD_DB ($PREFIX) into $file"
