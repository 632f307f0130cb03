#!/bin/sh
# After install or upgrade: Firefox's system policy gets the module (merged
# into /etc/firefox/policies/policies.json, other policies kept), and the
# icon cache learns the new icon. Chromium's per-user NSS databases are
# handled at each login by /etc/xdg/autostart/cie-browser-register.desktop.
set -e
case "$1" in
  configure|1|2|"")
    cie browser register --system >/dev/null 2>&1 || echo "cie-desktop: could not register the module in Firefox's policy; run: sudo cie browser register --system" >&2
    if command -v gtk-update-icon-cache >/dev/null 2>&1; then
      gtk-update-icon-cache -q -t -f /usr/share/icons/hicolor || true
    fi
    ;;
esac
exit 0
