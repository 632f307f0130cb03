#!/usr/bin/env bash
# Runs every fuzz target of the repository for the given time each, one after
# the other, and prints a summary: executions and new corpus entries per
# target. A failing target does not stop the others; the exit status is 1 if
# any failed (its crasher is written to the package's testdata/fuzz, as go
# test does).
#
#   scripts/fuzz.sh [--list] [--shard K/N] [TIME]
#
#   TIME         fuzzing time per target (default 10m; CI uses 30s)
#   --list       print the targets ("package FuzzName") and exit
#   --shard K/N  run only every N-th target starting with the K-th (1-based),
#                to split the run over N parallel CI jobs
#
# Environment: FUZZMINIMIZETIME bounds the minimisation of each new input
# (default 10s, so that a 30 s run is not spent minimising), FUZZPARALLEL
# the number of fuzzing workers (default: GOMAXPROCS), FUZZ_SUMMARY a file
# to which the summary is also written.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

list=0
shard_k=1
shard_n=1
t=10m
while [ $# -gt 0 ]; do
  case "$1" in
    --list) list=1 ;;
    --shard)
      shift
      if [[ ! "${1:-}" =~ ^([0-9]+)/([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" -lt 1 ] || [ "${BASH_REMATCH[1]}" -gt "${BASH_REMATCH[2]}" ]; then
        echo "fuzz.sh: --shard wants K/N with 1 <= K <= N" >&2
        exit 2
      fi
      shard_k=${BASH_REMATCH[1]}
      shard_n=${BASH_REMATCH[2]}
      ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown flag $1" >&2; exit 2 ;;
    *) t=$1 ;;
  esac
  shift
done

# Every "func FuzzX(" in a _test.go file of a package of this module.
targets=()
while read -r pkg dir; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*(' "$dir"/*_test.go 2>/dev/null | sed 's/^func //; s/($//' | sort -u); do
    targets+=("$pkg $f")
  done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)

if [ "$list" = 1 ]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi

summary=()
failed=0
flaked=0
start=$(date +%s)
i=0
for entry in "${targets[@]}"; do
  i=$((i + 1))
  if [ $(( (i - shard_k) % shard_n )) -ne 0 ]; then
    continue
  fi
  read -r pkg f <<<"$entry"
  echo "== $pkg $f ($t)"
  log=$(mktemp)
  t0=$(date +%s)
  go test "$pkg" -run='^$' -fuzz="^${f}\$" -fuzztime="$t" \
    -fuzzminimizetime="${FUZZMINIMIZETIME:-10s}" ${FUZZPARALLEL:+-parallel="$FUZZPARALLEL"} 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  took=$(( $(date +%s) - t0 ))
  # The last progress line: "fuzz: elapsed: 30s, execs: 123456 (4115/sec), new interesting: 3 (total: 40)".
  last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -1)
  execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  # "elapsed: 41s" or "elapsed: 10m0s" (or "1h2m3s").
  secs=$(sed -nE 's/^fuzz: elapsed: (([0-9]+)h)?(([0-9]+)m)?([0-9]+)s,.*/\2 \4 \5/p' <<<"$last" |
    awk '{ if (NF == 3) print $1*3600 + $2*60 + $3; else if (NF == 2) print $1*60 + $2; else print $1 }')
  rate=
  if [ -n "$execs" ] && [ -n "$secs" ] && [ "$secs" -gt 0 ]; then
    rate=$((execs / secs))
  fi
  newc=$(sed -nE 's/.*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 of \2/p' <<<"$last")
  result=ok
  if [ "$status" -ne 0 ]; then
    result=FAIL
    # Go 1.26's fuzz coordinator can fail a target with a bare "context
    # deadline exceeded" when -fuzztime expires while a starved worker is
    # still mid-call (go.dev/issue/75804, fixed in Go 1.27). That is a
    # harness race, not a finding: nothing was written to testdata/fuzz. It
    # counts as a flake only when no crasher was reported, the deadline is
    # the only error, and a replay of the whole corpus then passes.
    body=$(sed -n '/^--- FAIL: /,/^FAIL$/p' "$log" | sed '1d;$d' | sed 's/^[[:space:]]*//')
    if [ "$body" = "context deadline exceeded" ] && ! grep -qE 'Failing input written to|^panic: ' "$log"; then
      echo "== $f: bare 'context deadline exceeded' (Go fuzz coordinator race); replaying the corpus"
      if go test "$pkg" -run="^${f}\$" -count=1 >"$log.replay" 2>&1; then
        result=race
        flaked=$((flaked + 1))
      else
        cat "$log.replay"
      fi
      rm -f "$log.replay"
    fi
    if [ "$result" = FAIL ]; then
      failed=1
    fi
  fi
  summary+=("$(printf '%-4s %-48s %-28s %10s execs %6s/s  new %-12s %4ss' "$result" "${pkg#github.com/ciedesktop/cie-desktop/}" "$f" "${execs:-?}" "${rate:-?}" "${newc:-?}" "$took")")
  rm -f "$log"
done

{
  echo
  echo "== fuzz summary: ${#summary[@]} targets, $t each, shard $shard_k/$shard_n, $(( $(date +%s) - start ))s in all"
  if [ "$flaked" -gt 0 ]; then
    echo "   race = stopped by the Go 1.26 fuzz deadline race (go.dev/issue/75804) with no crasher; corpus replay passed"
  fi
  printf '%s\n' "${summary[@]}"
} | tee ${FUZZ_SUMMARY:+"$FUZZ_SUMMARY"}
exit $failed
