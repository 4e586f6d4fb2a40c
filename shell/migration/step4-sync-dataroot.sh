# Repeatable: once ahead of the day, again on the day for what changed since. NEW_DATAROOT_HOST=host sends it to another machine over ssh.
dest="$NEW_DATAROOT/"
if [ -n "${NEW_DATAROOT_HOST:-}" ]; then
  dest="$NEW_DATAROOT_HOST:$NEW_DATAROOT/"
else
  run mkdir -p "$NEW_DATAROOT"
fi
[ -d "$OLD_DATAROOT" ] || dry || fail "$OLD_DATAROOT is not a folder on this machine"
# Deletions are synced too; caches, locks, sessions and temp files are the old site's alone.
run rsync -a --delete --exclude=/cache/ --exclude=/localcache/ --exclude=/muc/ --exclude=/lock/ --exclude=/sessions/ --exclude=/temp/ --exclude=/trashdir/ "$OLD_DATAROOT/" "$dest"
say "synced $OLD_DATAROOT into $dest"
