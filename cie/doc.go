// Package cie owns the host side of the Italian electronic identity card
// (CIE 3.0) protocol: chip-family detection from the ATR (with a functional
// probe when the ATR is useless), the IAS and CIE applications and their
// files, the DH key agreement and the device authentication ("DAPP") that
// set up secure messaging, PIN and PUK management, the card's signature key
// as a crypto.Signer, the servizi key and the SOD (the card's signed hash
// list). Section numbers (§) refer to cie-protocol.md.
//
// A Card is opened on an apdu.Transport (PC/SC, the simulator, a transcript
// player). It stacks the decorators in one order: the caller's transport →
// apdu.NewGetResponse (61xx, 6Cxx) → sm.Transport (secure messaging, once
// established) → the commands of this package. Every public operation runs
// inside one transaction of the transport (when it implements
// apdu.Transactor) and in-process callers are serialised.
//
// The secure-messaging session is kept across operations until Logout, a
// bare status word, a MAC failure or a card reset; the next operation that
// needs it runs DH and DAPP again. After such a failure only idempotent
// reads are retried, once; VERIFY, CHANGE REFERENCE DATA, RESET RETRY
// COUNTER and signatures never are.
//
// A card seen before can be opened without any APDU with OpenProfile and
// the Profile (public data: family, serial number, DH group, IFD-CA key,
// chip key) a caller kept from an earlier Card; the card is then presumed
// to be the profile's until device authentication proves it, and another
// card is reported as ErrCardChanged before any PIN is sent.
package cie
