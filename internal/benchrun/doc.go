// Package benchrun runs the processes the cie-bench program measures
// against: pcscd with vsmartcard's vpcd readers (started when it is not
// running, which needs root), one of the two vpcd readers, and a cie-sim
// card plugged into it, with the card's control socket (APDU counter,
// latency, removal).
//
// It coordinates with internal/testbench through the same lock files in
// $TMPDIR/cie-testbench: a shared lock on pcscd.lock for every user of
// pcscd, start.lock while pcscd is being started, pcscd.pid naming a pcscd
// started by a test or a bench (the last user stops it), and an exclusive
// slot-N.lock on the reader a card is plugged into. So a benchmark and the
// end-to-end tests can share one pcscd without plugging two cards into one
// reader. scripts/bench.sh avoids the sharing altogether by running the
// bench in private mount and network namespaces with its own pcscd.
package benchrun
