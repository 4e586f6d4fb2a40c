moodle_cli purge_caches.php
moodle_cli update_langpacks.php || say "the language packs could not be updated (no network?): update them from the site later"
say "caches purged; now renew the MNET keys from vmoodle-ops (CHECKLIST.md) and check the site"
