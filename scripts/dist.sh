#!/usr/bin/env bash
# make dist: the release artifacts in dist/, reproducibly (two runs from the
# same commit give the same bytes).
#   dist/cie-desktop_<ver>-1_amd64.deb, dist/cie-desktop-<ver>-1.x86_64.rpm,
#   dist/cie-desktop-<ver>-linux-amd64.tar.gz,
#   dist/cie-desktop-<ver>-windows-amd64.msi (installer/windows/build-msi.sh,
#   cross-compiled with mingw-w64; DIST_WINDOWS=0 leaves it out),
#   dist/SHA256SUMS
# Reproducibility: -trimpath, -buildid=, the version stamped with -ldflags,
# every timestamp = SOURCE_DATE_EPOCH (the last commit's time), sorted tar
# entries with fixed owners. nfpm v2.45.2 is installed in bin/tools.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
ROOT=$PWD
OUT=${DIST_DIR:-$ROOT/dist}
TOOLS=$ROOT/bin/tools
NFPM_VERSION=v2.45.2

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
# The package version: a tag v1.2.3 gives 1.2.3; anything else sorts below
# every release: 0.0~git<date>.<describe>.
if [[ $VERSION =~ ^v?[0-9]+\.[0-9]+ ]]; then
  PKGVER=${VERSION#v}
else
  PKGVER=0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$VERSION
fi
PKGVER=${PKGVER//-/.}

GOARCH=$(go env GOARCH)
case "$GOARCH" in
  amd64) MULTIARCH=x86_64-linux-gnu; RPMARCH=x86_64 ;;
  arm64) MULTIARCH=aarch64-linux-gnu; RPMARCH=aarch64 ;;
  *) echo "dist: unsupported GOARCH $GOARCH" >&2; exit 1 ;;
esac

if ! go version -m "$TOOLS/nfpm" 2>/dev/null | grep -q "mod.*goreleaser/nfpm/v2.*$NFPM_VERSION"; then
  echo "dist: installing nfpm $NFPM_VERSION in $TOOLS"
  GOBIN=$TOOLS GOFLAGS=-mod=mod go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
fi

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$OUT"

LDFLAGS="-s -w -buildid= -X main.version=$VERSION"
echo "dist: building $VERSION (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
go build -trimpath -buildvcs=false -ldflags "$LDFLAGS" -o "$STAGE/" ./cmd/cie ./cmd/cie-tray
go build -trimpath -buildvcs=false -buildmode=c-shared \
  -ldflags "$LDFLAGS -extldflags=-Wl,--version-script=$ROOT/cmd/cie-pkcs11/exports.map" \
  -o "$STAGE/libcie-pkcs11.so" ./cmd/cie-pkcs11
rm -f "$STAGE/libcie-pkcs11.h"
touch -h -d "@$SOURCE_DATE_EPOCH" "$STAGE"/*

# The nfpm configuration: installer/linux/nfpm.yaml plus one entry per icon.
CONF=$STAGE/nfpm.yaml
{
  sed -e "s|\${STAGE}|$STAGE|g" -e "s|\${MULTIARCH}|$MULTIARCH|g" \
      -e "s|\${VERSION}|$PKGVER|g" -e "s|\${NFPM_ARCH}|$GOARCH|g" \
      -e "s|\${MTIME}|$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)|g" installer/linux/nfpm.yaml
  for icon in $(cd installer/linux/desktop/icons && find hicolor -name '*.png' | LC_ALL=C sort); do
    printf '  - src: installer/linux/desktop/icons/%s\n    dst: /usr/share/icons/%s\n    file_info: {mode: 0644}\n' "$icon" "$icon"
  done
} >"$CONF"

DEB=$OUT/cie-desktop_${PKGVER}-1_${GOARCH}.deb
RPM=$OUT/cie-desktop-${PKGVER}-1.${RPMARCH}.rpm
rm -f "$DEB" "$RPM"
"$TOOLS/nfpm" package --config "$CONF" --packager deb --target "$DEB"
"$TOOLS/nfpm" package --config "$CONF" --packager rpm --target "$RPM"

# A plain archive for other distributions.
TGZ=$OUT/cie-desktop-${PKGVER}-linux-${GOARCH}.tar.gz
mkdir -p "$STAGE/tree/cie-desktop-$PKGVER"
cp -p "$STAGE/cie" "$STAGE/cie-tray" "$STAGE/libcie-pkcs11.so" installer/linux/cie-desktop.module "$STAGE/tree/cie-desktop-$PKGVER/"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$STAGE/tree" -cf - "cie-desktop-$PKGVER" | gzip -n -9 >"$TGZ"

ARTIFACTS=("$(basename "$DEB")" "$(basename "$RPM")" "$(basename "$TGZ")")

# The Windows installer, with the same version and time.
if [ "${DIST_WINDOWS:-1}" != 0 ]; then
  rm -f "$OUT"/cie-desktop-*-windows-amd64.msi
  VERSION=$VERSION DIST_DIR=$OUT installer/windows/build-msi.sh
  ARTIFACTS+=("$(cd "$OUT" && ls cie-desktop-*-windows-amd64.msi)")
fi

(cd "$OUT" && sha256sum "${ARTIFACTS[@]}" >SHA256SUMS)
echo "dist: artifacts in $OUT:"
(cd "$OUT" && ls -l "${ARTIFACTS[@]}" && cat SHA256SUMS)
