#!/usr/bin/env bash
# `make bench`: the Go benchmarks of the protocol layers, then cie-bench, which measures every card
# operation through pcscd + vpcd + cie-sim at 0 ms and 20 ms per APDU and prints one table. The run is
# saved as bench/<date>.txt with the machine description and the Go benchmarks' raw output (benchstat
# reads it). Expects `make build` to have run (bin/cie, bin/cie-sim, bin/libcie-pkcs11.so).
#
#   scripts/bench.sh [cie-bench flags]      e.g. scripts/bench.sh --big=false --reps 3 (a quick run)
#
# As root it runs cie-bench in private mount and network namespaces with its own pcscd, so that the
# figures are not disturbed by, and do not disturb, other users of the machine's pcscd (testbench.md
# §1.7). Otherwise it uses the running pcscd and takes a free vpcd reader with the test lock files.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go
SAVE=${SAVE:-bench}

for f in cie cie-sim libcie-pkcs11.so; do
  if [ ! -e "$BIN/$f" ]; then
    echo "bench: $BIN/$f is missing: run 'make build' first" >&2
    exit 1
  fi
done
command -v gcc >/dev/null || { echo "bench: gcc is needed to compile the PKCS#11 harness (scripts/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== Go benchmarks (apdu, tlv, sm, cie)"
"$GO" test -run '^$' -bench . -benchmem -count "${GO_BENCH_COUNT:-5}" -benchtime "${GO_BENCH_TIME:-100ms}" \
  ./apdu ./tlv ./sm ./cie >"$work/go-bench.txt" || { cat "$work/go-bench.txt"; exit 1; }
grep -E '^Benchmark' "$work/go-bench.txt" | awk '!seen[$1]++' | sed 's/^/  /'
echo

"$GO" build -o "$BIN/" ./cmd/cie-bench
args=(--bin "$BIN" --save "$SAVE" --go-bench "$work/go-bench.txt" "$@")

echo "== cie-bench ${args[*]}"
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && unshare --mount --net true 2>/dev/null; then
  mkdir -p "$work/tmp"
  # A private /run/pcscd and loopback for our pcscd; TMPDIR keeps the lock files of internal/testbench
  # (in $TMPDIR/cie-testbench) apart from those of the tests running outside.
  unshare --mount --net --fork bash -c '
    set -e
    ip link set lo up
    mkdir -p /run/pcscd
    mount -t tmpfs tmpfs /run/pcscd
    export TMPDIR="$1" CIE_BENCH_NAMESPACE=private
    shift
    exec "$@"' _ "$work/tmp" "$BIN/cie-bench" "${args[@]}"
else
  [ "$(id -u)" -eq 0 ] || echo "bench: not root: using the running pcscd (figures may be disturbed by its other users)" >&2
  "$BIN/cie-bench" "${args[@]}"
fi
