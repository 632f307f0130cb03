// Package cardsession owns what every front end (the cie command, the
// cie-tray desktop app) does around the card API: choosing the reader with
// the CIE, opening the card on it through PC/SC, and sorting the errors of
// packages pcsc and cie into the few problems a citizen is told about.
//
// It has no protocol knowledge of its own: it calls pcsc.Establish,
// Connect and cie.Open, and inspects errors with errors.Is / errors.As.
// The wording of the messages stays with each front end (the tray
// translates them); the Problem they are chosen by is decided here, once.
package cardsession
