#!/usr/bin/env bash
# Builds the Windows installer on Linux, reproducibly:
#   dist/cie-desktop-<ver>-windows-amd64.msi
# cie.exe, cie-tray.exe (fyne, cgo) and libcie-pkcs11.dll (cgo c-shared)
# are cross-compiled with mingw-w64; the MSI is made by wixl (msitools) from
# cie-desktop.wxs. Needs gcc-mingw-w64-x86-64, wixl, msitools and faketime
# (scripts/install-deps.sh installs them).
#   installer/windows/build-msi.sh            (make msi; scripts/dist.sh runs it)
# Environment: VERSION, SOURCE_DATE_EPOCH, DIST_DIR as in scripts/dist.sh.
#
# Reproducibility (two runs give the same bytes, e2e/msi_test.go checks it):
# - the binaries: -trimpath, -buildvcs=false, -buildid=, the version with
#   -X; Go passes --no-insert-timestamp to the mingw linker;
# - the files' times in the embedded cabinet: touch to SOURCE_DATE_EPOCH;
# - wixl 0.101 writes a random PackageCode and the current time into the
#   summary information, and ignores Package/@Id and SOURCE_DATE_EPOCH: the
#   PackageCode is set afterwards with `msibuild -s`, and wixl and msibuild
#   run under faketime with the clock stopped at SOURCE_DATE_EPOCH;
# - the ProductCode is derived from VERSION (a new version is a new
#   product, as MajorUpgrade needs), the PackageCode from the payload.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
ROOT=$PWD
OUT=${DIST_DIR:-$ROOT/dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export TZ=UTC

for tool in x86_64-w64-mingw32-gcc wixl msibuild faketime; do
  command -v "$tool" >/dev/null || { echo "build-msi: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

# The MSI ProductVersion is major.minor.build (255.255.65535 at most): a
# tag v1.2.3 gives 1.2.3; between tags 0.0.<days from 2000-01-01 to the
# commit>, which only grows.
if [[ $VERSION =~ ^v?([0-9]+)\.([0-9]+)\.([0-9]+) ]]; then
  MSIVER=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}
  NAMEVER=${VERSION#v}
else
  days=$(( (SOURCE_DATE_EPOCH - 946684800) / 86400 ))
  MSIVER=0.0.$(( days < 0 ? 0 : days ))
  NAMEVER=0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$VERSION
fi
NAMEVER=${NAMEVER//-/.}

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$OUT"

export GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=x86_64-w64-mingw32-gcc
LDFLAGS="-s -w -buildid= -X main.version=$VERSION"
echo "build-msi: building $VERSION for windows/amd64 (MSI version $MSIVER)"
go build -trimpath -buildvcs=false -ldflags "$LDFLAGS" -o "$STAGE/cie.exe" ./cmd/cie
# A GUI program: started at login (Run key) or by the PKCS#11 module for
# the PIN dialog, it must not open a console window.
go build -trimpath -buildvcs=false -ldflags "$LDFLAGS -H=windowsgui" -o "$STAGE/cie-tray.exe" ./cmd/cie-tray
# The DLL exports the C_* functions of entry.c (__declspec(dllexport)) and
# nothing else. Without flags, Go hands the linker a .def file listing every
# //export function (goInitialize, …); -Wl,--export-all-symbols is the one
# flag that makes Go leave it out, and --exclude-all-symbols then turns the
# linker's automatic exports off, so that only the dllexport ones remain.
go build -trimpath -buildvcs=false -buildmode=c-shared \
  -ldflags "$LDFLAGS -extldflags '-Wl,--export-all-symbols -Wl,--exclude-all-symbols'" \
  -o "$STAGE/libcie-pkcs11.dll" ./cmd/cie-pkcs11
rm -f "$STAGE/libcie-pkcs11.h"
cp installer/windows/cie-desktop.wxs "$STAGE/"
touch -d "@$SOURCE_DATE_EPOCH" "$STAGE"/*

# A name-based GUID: the first 128 bits of SHA-256(input), with the
# version (8, RFC 9562 "custom") and variant bits set.
guid() {
  local h
  h=$(sha256sum | cut -c1-32)
  printf '%s-%s-8%s-%x%s-%s' "${h:0:8}" "${h:8:4}" "${h:13:3}" $(( (0x${h:16:1} & 3) | 8 )) "${h:17:3}" "${h:20:12}" | tr a-f A-F
}
# The UpgradeCode of cie-desktop.wxs, which never changes.
UPGRADE_CODE=$(grep -o 'UpgradeCode="{*[0-9A-F-]*}*"' installer/windows/cie-desktop.wxs | cut -d'"' -f2)
UPGRADE_CODE={${UPGRADE_CODE//[\{\}]/}}
PRODUCT_CODE=$(printf 'cie-desktop ProductCode %s' "$VERSION" | guid)
PACKAGE_CODE=$( (printf 'cie-desktop PackageCode %s %s\n' "$VERSION" "$MSIVER"; cd "$STAGE" && sha256sum cie.exe cie-tray.exe libcie-pkcs11.dll cie-desktop.wxs) | guid)

MSI=$OUT/cie-desktop-$NAMEVER-windows-amd64.msi
rm -f "$MSI"
CLOCK=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')
# What wixl 0.101 cannot express is set with msibuild: the Condition of
# the two optional components; SecureCustomProperties, so that the two
# properties reach the elevated part of the installation; and
# msidbUpgradeAttributesVersionMaxInclusive (512) on the upgrade row (a
# key column: the row is deleted and inserted again), WiX's
# AllowSameVersionUpgrades: two builds between tags can share the MSI
# version (one a day) but not the ProductCode, and the later one must
# replace the earlier rather than install beside it.
(cd "$STAGE" && faketime -f "$CLOCK" wixl -a x64 -D "Version=$MSIVER" -D "ProductCode=$PRODUCT_CODE" \
  -o "$MSI" cie-desktop.wxs 2> >(grep -v -e GLib-GIO-CRITICAL -e '^$' >&2))
faketime -f "$CLOCK" msibuild "$MSI" \
  -q "UPDATE Component SET Condition = 'TRAYAUTOSTART = \"1\"' WHERE Component = 'TrayAutostart'" \
  -q "UPDATE Component SET Condition = 'FIREFOXPOLICY = \"1\"' WHERE Component = 'FirefoxPolicy'" \
  -q "DELETE FROM Upgrade WHERE ActionProperty = 'WIX_UPGRADE_DETECTED'" \
  -q "INSERT INTO Upgrade (UpgradeCode, VersionMax, Attributes, ActionProperty) VALUES ('$UPGRADE_CODE', '$MSIVER', 513, 'WIX_UPGRADE_DETECTED')" \
  -q "UPDATE Property SET Value = 'WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;TRAYAUTOSTART;FIREFOXPOLICY' WHERE Property = 'SecureCustomProperties'" \
  -s "CIE Desktop" "CIE Desktop" "x64;1033" "{$PACKAGE_CODE}"
echo "build-msi: $MSI"
ls -l "$MSI"
