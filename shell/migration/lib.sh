# vmoodle-ops migration pack: what every step script sources.
# The logins are read from MySQL option files, never put on a command line (where ps shows them) or in a script.
set -euo pipefail
PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DRY_RUN="${DRY_RUN:-0}"

dry() { [ "$DRY_RUN" = 1 ]; }
say() { printf '== %s: %s\n' "$SITE" "$*"; }
fail() { printf '%s: %s\n' "$SITE" "$*" >&2; exit "${2:-1}"; }

# A command, or under DRY_RUN=1 the command quoted as it would run.
run() {
  if dry; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

# Where the site's option files are: the pack's credentials folder, or VMOODLE_OPTIONS_DIR. The step scripts read them.
# shellcheck disable=SC2034
options() {
  local dir="${VMOODLE_OPTIONS_DIR:-$PACK_DIR/credentials}"
  OLD_DB_OPTIONS="$dir/$SITE-old.cnf"
  NEW_DB_OPTIONS="$dir/$SITE-new.cnf"
  NEW_MASTER_OPTIONS="$dir/$MASTER_SITE-new.cnf"
}

# Each option file must be there and readable by its owner alone.
need() {
  local file
  for file in "$@"; do
    if [ ! -r "$file" ]; then
      if dry; then say "(the option file $file is not there yet)"; else fail "the option file $file is missing: CHECKLIST.md says what it holds" 2; fi
    elif [ -n "$(find "$file" -perm /077)" ]; then
      fail "$file can be read by others: chmod 600 it" 2
    fi
  done
}

sql_old() { mysql --defaults-extra-file="$OLD_DB_OPTIONS" "$@"; }
sql_new() { mysql --defaults-extra-file="$NEW_DB_OPTIONS" "$@"; }

# One statement on the new server, or under DRY_RUN=1 the statement.
on_new() {
  if dry; then printf '+ mysql --defaults-extra-file=%q -e "%s"\n' "$NEW_DB_OPTIONS" "$1"; else sql_new -e "$1"; fi
}

# The site's tables in its old database: those of its prefix alone, since instances may share a database.
old_tables() { sql_old -N -B -e "SHOW TABLES LIKE '$PREFIX_LIKE'" "$OLD_DB"; }

dump_old() {
  local tables
  mapfile -t tables < <(old_tables)
  [ "${#tables[@]}" -gt 0 ] || fail "$OLD_DB has no table starting $PREFIX"
  mysqldump --defaults-extra-file="$OLD_DB_OPTIONS" --single-transaction --quick --hex-blob "$OLD_DB" "${tables[@]}"
}

# Moodle's PHP as the web server's user, so the files it writes belong to it.
as_web() {
  if [ -n "$WEB_USER" ]; then run sudo -u "$WEB_USER" "$@"; else run "$@"; fi
}

# A Moodle CLI script for this site: the master's own, an instance's through VMoodle's --host wrapper.
moodle_cli() {
  local script="$1"
  shift
  if [ "$KIND" = master ]; then
    as_web "$PHP" "$NEW_DIRROOT/admin/cli/$script" "$@"
  else
    as_web "$PHP" "$NEW_DIRROOT/local/vmoodle/cli/$script" --host="$WWWROOT" "$@"
  fi
}
