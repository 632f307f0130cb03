#!/usr/bin/env bash
# The demo: pcscd + vsmartcard's vpcd + the virtual CIE (cie-sim), then the `cie` CLI through the
# real PC/SC stack, then a level-3 "Entra con CIE" login in headless Chromium through the PKCS#11
# module: the local login service (cie-login-demo) asks for the client certificate, the module
# signs with the card after asking the PIN through its own dialog (here a scripted pinentry that
# types the virtual card's PIN), and the page greets the holder; its screenshot is saved.
# Starts pcscd itself when it is not running (root needed then) and stops what it started.
# The browser part needs root for a private mount namespace (the Chromium policy that picks the
# certificate is bound over /etc/chromium there; nothing of the system changes).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
PIN=12345678 # the virtual card's PIN (testdata/sim)
SHOT=${SHOT:-$BIN/demo-login.png}
work=$(mktemp -d)
pids=()
groups=()
cleanup() {
  for g in "${groups[@]}"; do kill -9 -- "-$g" 2>/dev/null || true; done
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
echo

echo "== level-3 login in headless Chromium through the PKCS#11 module"
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the browser login needs root (a private mount namespace for the Chromium policy): run 'sudo make demo'" >&2
  exit 1
fi
command -v chromium >/dev/null || { echo "demo: chromium is not installed: run scripts/install-deps.sh" >&2; exit 1; }
go build -trimpath -o "$BIN/" ./cmd/cie-login-demo
home="$work/home" # the demo user's home: its certificate cache and browser databases, nothing of yours
mkdir -p "$home"
export HOME="$home" XDG_CONFIG_HOME="$home/.config"
module="$(cd "$BIN" && pwd)/libcie-pkcs11.so"

echo "-- cie pair: the first PIN entry caches the certificate, so the browser lists it without a PIN"
"$BIN/cie" --pin-stdin pair <<<"$PIN"

echo "-- cie browser register: the module in Chromium's NSS databases, FRIENDLY"
"$BIN/cie" browser register --module "$module"

"$BIN/cie-login-demo" --listen 127.0.0.1:0 --ca testdata/sim/ca-cert.pem --server-cert "$work/login.pem" \
  --server-key "$work/login.key" --server-ca "$work/login-ca.pem" >"$work/login.out" 2>"$work/login.log" &
pids+=($!)
url=""
for _ in $(seq 100); do url=$(grep -o 'https://[^ ]*/' "$work/login.out" 2>/dev/null || true); [ -n "$url" ] && break; sleep 0.1; done
[ -n "$url" ] || { echo "demo: the login service did not start:"; cat "$work/login.log"; exit 1; } >&2
echo "-- the login service listens on $url (TLS 1.2, client certificate of the virtual card's CA)"
for db in "$home/.pki/nssdb" "$home/.local/share/pki/nssdb"; do
  [ -d "$db" ] && certutil -A -d "sql:$db" -n "cie-login-demo CA" -t "C,," -i "$work/login-ca.pem"
done

# Chromium's policy: pick the CIE certificate for the service without asking (headless Chromium
# cannot show its certificate selector). Bound over /etc/chromium in the browser's namespace only.
mkdir -p "$work/chromium-etc/policies/managed"
cp /etc/chromium/* "$work/chromium-etc/" 2>/dev/null || true
origin=${url%/}
printf '{"AutoSelectCertificateForUrls": ["{\\"pattern\\":\\"%s\\",\\"filter\\":{\\"ISSUER\\":{\\"CN\\":\\"CIE Desktop Test CA\\"}}}"]}\n' \
  "$origin" >"$work/chromium-etc/policies/managed/cie-demo.json"

# The PIN dialog: the module runs $CIE_PINENTRY (by default `cie-tray pinentry`). This one answers
# like a user typing the PIN, and keeps what the dialog said.
cat >"$work/pinentry" <<'PINENTRY'
#!/bin/sh
echo "OK demo pinentry"
while IFS= read -r line; do
  cmd=${line%% *}; arg=${line#"$cmd"}; arg=${arg# }
  case "$cmd" in SETDESC|SETERROR) printf '%s\n' "$arg" >>"$DEMO_DIALOG" ;; esac
  case "$cmd" in
    GETPIN) echo "D $DEMO_PIN"; echo OK ;;
    BYE) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
PINENTRY
chmod +x "$work/pinentry"
export CIE_PINENTRY="$work/pinentry" DEMO_PIN="$PIN" DEMO_DIALOG="$work/dialog.txt" CIE_PKCS11_LOG="$work/pkcs11.log"

# chromium ARGS...: headless Chromium in its own session (killed as a group) and mount namespace.
chromium_run() {
  setsid unshare --mount --propagation private sh -c 'mount --bind "$0" /etc/chromium && exec chromium "$@"' \
    "$work/chromium-etc" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/chromium-profile-$1" "${@:2}" 2>>"$work/chromium.log" &
  local pid=$!
  groups+=("$pid")
  for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

"$BIN/cie-sim" --control "$work/sim.sock" --send "stats reset" >/dev/null
start=$(date +%s%N)
chromium_run dom --dump-dom "$url" >"$work/page.html"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
apdus=$("$BIN/cie-sim" --control "$work/sim.sock" --send stats)
echo "-- the PIN dialog the module showed:"
if [ -s "$work/dialog.txt" ]; then sed -e 's/%0A/\n/g; s/%25/%/g' "$work/dialog.txt" | sed 's/^/   | /'; else echo "   (none)"; fi
greeting=$(grep -o '<h1 id="greeting">[^<]*' "$work/page.html" | sed 's/<h1 id="greeting">//' || true)
if [ -z "$greeting" ]; then
  echo "demo: the login did not succeed; the page was:" >&2
  cat "$work/page.html" >&2
  tail -20 "$work/login.log" >&2
  exit 1
fi
echo "-- the page says: $greeting"
grep -o '<dd id="[a-z-]*">[^<]*' "$work/page.html" | sed 's/<dd id="\([a-z-]*\)">/   \1: /'
echo "   $(grep -o '<footer id="tls">[^<]*' "$work/page.html" | sed 's/<footer id="tls">//')"
echo "-- login wall time (Chromium start to page, PIN dialog included): ${ms} ms; APDUs seen by the virtual card: $apdus"

chromium_run shot --window-size=1100,640 --screenshot="$work/shot.png" "$url" >/dev/null
if [ -s "$work/shot.png" ]; then
  cp "$work/shot.png" "$SHOT"
  echo "-- screenshot of the page: $SHOT"
else
  echo "demo: Chromium wrote no screenshot" >&2
  exit 1
fi
