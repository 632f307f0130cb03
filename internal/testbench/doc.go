// Package testbench gives end-to-end tests a real PC/SC stack with virtual
// cards: pcscd with vsmartcard's vpcd driver (two readers, "Virtual PCD 00
// 00" on TCP port 35963 and "Virtual PCD 00 01" on 35964), the cie-sim
// simulator or an in-process fake card plugged into one of them, and
// helpers that build the project's binaries once per test process.
//
// A test calls Start, then StartCard or StartFakeCard; everything started
// is stopped in t.Cleanup. pcscd is shared: an instance already running (a
// developer's, or one started by another test process) is used as is, and
// one started here is stopped by the last test process that uses it.
// Readers are shared too: each card holds a lock on its reader for its
// lifetime, so test processes running in parallel (go test ./...) never
// plug two cards into one reader.
//
// The package needs Linux, pcscd and vsmartcard-vpcd; pcscd can only be
// started as root. Set CIE_PCSCD_DEBUG=1 (or Options.Debug) for a pcscd
// log with every APDU, and CIE_SIM_BIN to use a prebuilt cie-sim.
package testbench
