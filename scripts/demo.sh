#!/usr/bin/env bash
# The demo: pcscd + vsmartcard's vpcd + the virtual CIE (cie-sim), then the `cie` CLI through the
# real PC/SC stack. Starts pcscd itself when it is not running (root needed then) and stops what it
# started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -S /run/pcscd/pcscd.comm ] || ! pgrep -x pcscd >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "demo: pcscd is not running; start it (sudo systemctl start pcscd.socket) or run the demo as root" >&2
    exit 1
  fi
  echo "== starting pcscd (foreground, logs in $work/pcscd.log)"
  pcscd --foreground >"$work/pcscd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.1; done
fi
for _ in $(seq 100); do ss -ltn 2>/dev/null | grep -q ':35963 ' && break; sleep 0.1; done

echo "== starting the virtual CIE (family ${FAMILY:-gemalto}) on vpcd 127.0.0.1:35963"
cp -r testdata/sim "$work/state"
"$BIN/cie-sim" --family "${FAMILY:-gemalto}" --vpcd 127.0.0.1:35963 --state "$work/state" \
  --control "$work/sim.sock" >"$work/cie-sim.log" 2>&1 &
pids+=($!)

for _ in $(seq 50); do
  "$BIN/cie" readers 2>/dev/null | grep -q 'card present' && break
  sleep 0.2
done

echo "== cie readers"
"$BIN/cie" readers
echo
echo "== cie status"
"$BIN/cie" status
echo
echo "== cie cert (PIN of the virtual card: 12345678)"
echo 12345678 | "$BIN/cie" --pin-stdin cert | openssl x509 -noout -subject -issuer -enddate 2>/dev/null || echo 12345678 | "$BIN/cie" --pin-stdin cert
echo
echo "== APDUs seen by the virtual card: $("$BIN/cie-sim" --control "$work/sim.sock" --send stats)"
