// Package e2e holds the end-to-end tests: a real pcscd with vsmartcard's
// vpcd readers, the cie-sim virtual card connected to it, and the real `cie`
// binary and the Go packages driving the card through PC/SC.
package e2e
