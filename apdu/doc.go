// Package apdu owns the ISO/IEC 7816-4 command and response codec, status
// words as typed errors, and the one-method Transport that every card layer
// (GET RESPONSE handling, secure messaging, PC/SC) stacks on.
//
// Layer order, bottom to top: a raw transport (pcsc, the in-process
// simulator, a transcript player) → GetResponse (61xx and 6Cxx) → secure
// messaging (package sm) → the card protocol (package cie).
package apdu
