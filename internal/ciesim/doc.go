// Package ciesim owns the simulated CIE 3.0: an independent implementation
// of the card side of docs/architecture.md "Card behaviour" and
// cie-protocol.md §1–§8 (it never imports package cie, so that host and card
// are two readings of the same spec that must interoperate).
//
// It holds the chip-family table (ATR, applet selection, DH GET DATA style,
// EF.ATR), the file system and its SOD, DH key agreement and secure
// messaging (card side of package sm), device authentication (DAPP) with
// the published IFD-CA key, PIN/PUK counters, signatures with keys 0x81 and
// 0x83, injected faults, and the persistent synthetic key material (State,
// with a committed copy under testdata/sim loaded by TestState).
//
// A Card is an apdu.Transport for in-process tests; VPCD connects it to
// vsmartcard's vpcd so that pcscd sees a real reader; Control is the line
// protocol of cmd/cie-sim's control socket.
package ciesim
