#!/bin/sh
# After removal: refresh the icon cache.
set -e
case "$1" in
  remove|purge|0)
    if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -d /usr/share/icons/hicolor ]; then
      gtk-update-icon-cache -q -t -f /usr/share/icons/hicolor || true
    fi
    ;;
esac
exit 0
