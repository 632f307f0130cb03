#!/usr/bin/env bash
# Builds dist/cie-desktop-<ver>.pkg on macOS (it cannot run on Linux: cgo
# needs the macOS SDK, PC/SC comes from PCSC.framework, and pkgbuild,
# productbuild, codesign and notarytool are Apple tools).
#   installer/macos/build-pkg.sh
# Optional signing (the CI workflow sets them from secrets):
#   CODESIGN_IDENTITY   "Developer ID Application: …" for the binaries
#   INSTALLER_IDENTITY  "Developer ID Installer: …" for the pkg
#   NOTARY_PROFILE      a `xcrun notarytool store-credentials` profile
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
if [[ $VERSION =~ ^v?([0-9]+\.[0-9]+\.[0-9]+) ]]; then PKGVER=${BASH_REMATCH[1]}; else PKGVER=0.0.0; fi
OUT=${DIST_DIR:-$ROOT/dist}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
export MACOSX_DEPLOYMENT_TARGET=11.0
LDFLAGS="-s -w -buildid= -X main.version=$VERSION"

# Each architecture, then lipo: universal2 binaries and dylib.
for arch in arm64 amd64; do
  d=$WORK/$arch
  mkdir -p "$d"
  GOOS=darwin GOARCH=$arch CGO_ENABLED=1 go build -trimpath -buildvcs=false -ldflags "$LDFLAGS" -o "$d/" ./cmd/cie ./cmd/cie-tray
  GOOS=darwin GOARCH=$arch CGO_ENABLED=1 go build -trimpath -buildvcs=false -buildmode=c-shared \
    -ldflags "$LDFLAGS -extldflags=-Wl,-install_name,/Library/CIE\ Desktop/lib/libcie-pkcs11.dylib" \
    -o "$d/libcie-pkcs11.dylib" ./cmd/cie-pkcs11
done
PAYLOAD=$WORK/payload
mkdir -p "$PAYLOAD/Library/CIE Desktop/bin" "$PAYLOAD/Library/CIE Desktop/lib"
for b in cie cie-tray; do
  lipo -create -output "$PAYLOAD/Library/CIE Desktop/bin/$b" "$WORK/arm64/$b" "$WORK/amd64/$b"
done
lipo -create -output "$PAYLOAD/Library/CIE Desktop/lib/libcie-pkcs11.dylib" \
  "$WORK/arm64/libcie-pkcs11.dylib" "$WORK/amd64/libcie-pkcs11.dylib"
lipo -info "$PAYLOAD/Library/CIE Desktop/lib/libcie-pkcs11.dylib"

# Exported symbols: only C_*.
if nm -gU "$PAYLOAD/Library/CIE Desktop/lib/libcie-pkcs11.dylib" | awk '{print $3}' | grep -v '^_C_' | grep -q .; then
  echo "build-pkg: warning: the dylib exports symbols other than C_* (Go runtime):" >&2
  nm -gU "$PAYLOAD/Library/CIE Desktop/lib/libcie-pkcs11.dylib" | grep -v ' _C_' >&2 || true
fi

if [ -n "${CODESIGN_IDENTITY:-}" ]; then
  for f in "$PAYLOAD/Library/CIE Desktop/bin/"* "$PAYLOAD/Library/CIE Desktop/lib/libcie-pkcs11.dylib"; do
    codesign --force --options runtime --timestamp --sign "$CODESIGN_IDENTITY" "$f"
  done
fi
find "$PAYLOAD" -exec touch -h -t "$(date -u -r "$SOURCE_DATE_EPOCH" +%Y%m%d%H%M.%S)" {} +

pkgbuild --root "$PAYLOAD" --identifier org.ciedesktop.cie-desktop --version "$PKGVER" \
  --scripts installer/macos/scripts --install-location / "$WORK/cie-desktop-component.pkg"
SIGN=()
if [ -n "${INSTALLER_IDENTITY:-}" ]; then SIGN=(--sign "$INSTALLER_IDENTITY"); fi
PKG=$OUT/cie-desktop-$PKGVER.pkg
productbuild --package "$WORK/cie-desktop-component.pkg" "${SIGN[@]}" "$PKG"

if [ -n "${NOTARY_PROFILE:-}" ]; then
  xcrun notarytool submit "$PKG" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$PKG"
fi
pkgutil --payload-files "$PKG"
ls -l "$PKG"
