// Package cardsession owns what every front end (the cie command, the
// cie-tray desktop app) does around the card API: choosing the reader with
// the CIE, opening the card on it through PC/SC, keeping the card's record
// (package certcache) up to date, and sorting the errors of packages pcsc
// and cie into the few problems a citizen is told about.
//
// It has no protocol knowledge of its own: it calls pcsc.Establish,
// Connect, cie.Open or, for a paired card recorded in the chosen reader
// with the ATR the reader shows, cie.OpenProfile, and inspects errors with
// errors.Is / errors.As. Opening a card from its record sends SELECT, DH
// and device authentication only; device authentication proves the chip
// is the recorded one before any PIN is sent, and a swapped card of the
// same family (same ATR) is opened the full way instead (OpenWith). The
// wording of the messages stays with each front end (the tray translates
// them); the Problem they are chosen by is decided here, once.
package cardsession
