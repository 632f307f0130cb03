#!/usr/bin/env bash
# Installs the Debian packages CIE Desktop needs to build, test and run its demo.
# Idempotent: installs only what is missing. Needs root (or sudo) when something is missing.
# Extra package names given as arguments are installed too (make test-package adds wine64).
set -euo pipefail

pkgs=(pcscd libpcsclite-dev vsmartcard-vpcd pcsc-tools opensc gcc make pkgconf procps iproute2 ca-certificates gnutls-bin libnss3-tools libengine-pkcs11-openssl openssl p11-kit libgl1-mesa-dev xorg-dev xvfb xdotool x11-apps dbus-daemon poppler-utils chromium firefox-esr rpm gcc-mingw-w64-x86-64 wixl msitools faketime)
pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps: Go 1.26 or later is required (https://go.dev/doc/install); it is not on PATH." >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-deps: run as root, or install: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
