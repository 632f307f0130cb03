#!/bin/sh
# Before removal (not upgrade): take the module out of Firefox's system
# policy (it stays there as a Delete entry, which makes Firefox remove it
# from the profiles it was added to) and out of root's NSS databases.
set -e
case "$1" in
  remove|purge|0)
    cie browser unregister --system >/dev/null 2>&1 || true
    ;;
esac
exit 0
