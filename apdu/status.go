package apdu

import (
	"errors"
	"fmt"
)

// StatusWord is SW1SW2 of a response. A StatusWord other than 9000 is an
// error; compare with errors.Is against the constants below.
type StatusWord uint16

// Status words the CIE protocol branches on (ISO/IEC 7816-4 §5.1.3).
const (
	SWOK                      StatusWord = 0x9000
	SWEndOfFile               StatusWord = 0x6282 // end of file reached before Ne bytes
	SWVerificationFailed      StatusWord = 0x6300 // no counter given
	SWWrongLength             StatusWord = 0x6700
	SWSecurityStatus          StatusWord = 0x6982 // security status not satisfied
	SWAuthMethodBlocked       StatusWord = 0x6983
	SWRefDataNotUsable        StatusWord = 0x6984
	SWConditionsNotSatisfied  StatusWord = 0x6985
	SWCommandNotAllowed       StatusWord = 0x6986
	SWSMDataObjectsMissing    StatusWord = 0x6987
	SWSMDataObjectsIncorrect  StatusWord = 0x6988
	SWWrongData               StatusWord = 0x6A80
	SWFunctionNotSupported    StatusWord = 0x6A81
	SWFileNotFound            StatusWord = 0x6A82
	SWIncorrectP1P2           StatusWord = 0x6A86
	SWReferencedDataNotFound  StatusWord = 0x6A88
	SWWrongP1P2               StatusWord = 0x6B00 // also: offset beyond end of file
	SWINSNotSupported         StatusWord = 0x6D00
	SWCLANotSupported         StatusWord = 0x6E00
	SWNoPreciseDiagnosis      StatusWord = 0x6F00
	SWLogicalChannelNotSupp   StatusWord = 0x6881
	SWSecureMessagingNotSupp  StatusWord = 0x6882
	SWLastCommandOfChainExpct StatusWord = 0x6883
	SWChainingNotSupported    StatusWord = 0x6884
)

var swText = map[StatusWord]string{
	SWOK:                      "success",
	SWEndOfFile:               "end of file reached",
	SWVerificationFailed:      "verification failed",
	SWWrongLength:             "wrong length",
	SWSecurityStatus:          "security status not satisfied",
	SWAuthMethodBlocked:       "authentication method blocked",
	SWRefDataNotUsable:        "reference data not usable",
	SWConditionsNotSatisfied:  "conditions of use not satisfied",
	SWCommandNotAllowed:       "command not allowed (no current EF)",
	SWSMDataObjectsMissing:    "expected secure messaging data objects missing",
	SWSMDataObjectsIncorrect:  "incorrect secure messaging data objects",
	SWWrongData:               "incorrect parameters in the data field",
	SWFunctionNotSupported:    "function not supported",
	SWFileNotFound:            "file or application not found",
	SWIncorrectP1P2:           "incorrect parameters P1-P2",
	SWReferencedDataNotFound:  "referenced data not found",
	SWWrongP1P2:               "wrong parameters P1-P2",
	SWINSNotSupported:         "instruction not supported",
	SWCLANotSupported:         "class not supported",
	SWNoPreciseDiagnosis:      "no precise diagnosis",
	SWLogicalChannelNotSupp:   "logical channel not supported",
	SWSecureMessagingNotSupp:  "secure messaging not supported",
	SWLastCommandOfChainExpct: "last command of the chain expected",
	SWChainingNotSupported:    "command chaining not supported",
}

// SW1 returns the first status byte.
func (sw StatusWord) SW1() byte { return byte(sw >> 8) }

// SW2 returns the second status byte.
func (sw StatusWord) SW2() byte { return byte(sw) }

// OK reports whether the status word is 9000.
func (sw StatusWord) OK() bool { return sw == SWOK }

// Error implements error: "SW 6A82: file or application not found".
func (sw StatusWord) Error() string {
	if t, ok := swText[sw]; ok {
		return fmt.Sprintf("SW %04X: %s", uint16(sw), t)
	}
	switch sw.SW1() {
	case 0x61:
		return fmt.Sprintf("SW %04X: %d more response bytes available", uint16(sw), sw.SW2())
	case 0x6C:
		return fmt.Sprintf("SW %04X: wrong Le, %d bytes available", uint16(sw), sw.SW2())
	case 0x63:
		if sw.SW2()&0xF0 == 0xC0 {
			return fmt.Sprintf("SW %04X: verification failed, %d tries left", uint16(sw), sw.SW2()&0x0F)
		}
	}
	return fmt.Sprintf("SW %04X", uint16(sw))
}

// Err returns nil for 9000, a *PINError for 63Cx and 6983, and the status
// word itself otherwise.
func (sw StatusWord) Err() error {
	switch {
	case sw == SWOK:
		return nil
	case sw.SW1() == 0x63 && sw.SW2()&0xF0 == 0xC0:
		n := int(sw.SW2() & 0x0F)
		return &PINError{Remaining: n, Blocked: n == 0, SW: sw}
	case sw == SWAuthMethodBlocked:
		return &PINError{Remaining: 0, Blocked: true, SW: sw}
	}
	return sw
}

// PINError reports a failed or refused reference-data verification: a wrong
// PIN or PUK (63Cx, x tries left) or a blocked one (6983).
type PINError struct {
	Remaining int
	Blocked   bool
	SW        StatusWord
}

// Error implements error.
func (e *PINError) Error() string {
	if e.Blocked {
		return "verification refused: blocked"
	}
	return fmt.Sprintf("verification failed: %d tries left", e.Remaining)
}

// Unwrap returns the status word, so errors.Is(err, SWAuthMethodBlocked) works.
func (e *PINError) Unwrap() error { return e.SW }

// Is reports whether a blocked verification (6983, but also 63C0: no tries
// left) matches SWAuthMethodBlocked, so that one errors.Is test covers both
// ways a card reports a blocked PIN.
func (e *PINError) Is(target error) bool {
	return e.Blocked && target == SWAuthMethodBlocked
}

// Transport errors that layers above branch on. A PC/SC or simulator
// transport wraps one of these so that package cie needs no import of them.
var (
	// ErrCardRemoved: the card left the reader; the operation failed.
	ErrCardRemoved = errors.New("card removed")
	// ErrCardReset: the card was reset (by another process or a fault); the
	// command was not executed and every card-side session state is lost.
	// The transport has already reconnected when it returns this.
	ErrCardReset = errors.New("card reset")
	// ErrNoCard: no card in the reader.
	ErrNoCard = errors.New("no card in the reader")
)
