package cie

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrUnsupportedCard: the card is not a CIE 3.0 (or not one of a family
	// this package knows). The error is an *UnsupportedCardError carrying the ATR.
	ErrUnsupportedCard = errors.New("unsupported card")
	// ErrPINRequired: the operation needs the PIN verified in the current
	// secure-messaging session (VerifyPIN), e.g. reading the certificate or
	// signing; also returned after a card reset or Logout dropped it.
	ErrPINRequired = errors.New("PIN verification required")
	// ErrInvalidPIN: a PIN or PUK does not have the required format (8 ASCII
	// digits; for a new PIN also the §7 rules). Nothing was sent to the card,
	// or the card refused the format without spending a try.
	ErrInvalidPIN = errors.New("invalid PIN")
	// ErrChipAuthentication: the chip failed to prove it holds its
	// authentication key (the DAPP check of §6.3, or the servizi key check):
	// the card may be a clone, or the channel was tampered with.
	ErrChipAuthentication = errors.New("chip authentication failed")
	// ErrClosed: the Card was closed.
	ErrClosed = errors.New("card closed")
	// ErrSODInvalid: VerifySOD found a signature or hash that does not verify.
	ErrSODInvalid = errors.New("SOD verification failed")
)

// UnsupportedCardError reports a card that is not recognised as a CIE: its
// ATR matches no family and the probe of §1.3 failed, or the CIE
// application is missing. errors.Is(err, ErrUnsupportedCard) holds.
type UnsupportedCardError struct {
	ATR []byte // the card's ATR as given to Open
	err error  // the card's answer that ruled it out, if any
}

// Error returns "unsupported card (ATR 3B 8F 80 …)".
func (e *UnsupportedCardError) Error() string {
	return fmt.Sprintf("unsupported card (ATR %s)", hexSpaced(e.ATR))
}

// Is makes errors.Is(err, ErrUnsupportedCard) true.
func (e *UnsupportedCardError) Is(target error) bool { return target == ErrUnsupportedCard }

// Unwrap returns the card answer that ruled the card out (a status word), or nil.
func (e *UnsupportedCardError) Unwrap() error { return e.err }

// PINRef names the reference data a PIN command addresses (P2 of VERIFY,
// CHANGE REFERENCE DATA and RESET RETRY COUNTER, §7).
type PINRef byte

const (
	// PIN is the holder's PIN (reference 81).
	PIN PINRef = 0x81
	// PUK is the unblocking key (reference 82).
	PUK PINRef = 0x82
)

// String returns "PIN" or "PUK".
func (r PINRef) String() string {
	switch r {
	case PIN:
		return "PIN"
	case PUK:
		return "PUK"
	}
	return fmt.Sprintf("reference %02X", byte(r))
}

// maxTries is the try counter of a fresh reference (§7).
func (r PINRef) maxTries() int {
	if r == PUK {
		return 10
	}
	return 3
}

// PINError reports a wrong or blocked PIN or PUK (63Cx, 6983, 6300).
type PINError struct {
	Ref       PINRef
	Remaining int  // tries left; -1 if the card did not say (6300)
	Blocked   bool // no try left: the reference is blocked
	sw        apdu.StatusWord
}

// Error returns "wrong PIN: 2 tries left", "PIN blocked: unblock it with the
// PUK" or "PUK blocked: the card must be replaced at the municipality".
func (e *PINError) Error() string {
	switch {
	case e.Blocked && e.Ref == PUK:
		return "PUK blocked: the card must be replaced at the municipality"
	case e.Blocked:
		return e.Ref.String() + " blocked: unblock it with the PUK"
	case e.Remaining < 0:
		return "wrong " + e.Ref.String()
	case e.Remaining == 1:
		return "wrong " + e.Ref.String() + ": 1 try left"
	}
	return fmt.Sprintf("wrong %s: %d tries left", e.Ref, e.Remaining)
}

// Unwrap returns the card's status word (63Cx, 6983 or 6300).
func (e *PINError) Unwrap() error { return e.sw }

// pinError maps a status word of VERIFY / CHANGE REFERENCE DATA to a
// *PINError, ErrInvalidPIN, or returns nil when sw is not a PIN answer.
func pinError(ref PINRef, sw apdu.StatusWord) error {
	var pe *apdu.PINError
	switch err := sw.Err(); {
	case errors.As(err, &pe):
		return &PINError{Ref: ref, Remaining: pe.Remaining, Blocked: pe.Blocked, sw: sw}
	case sw == apdu.SWVerificationFailed:
		return &PINError{Ref: ref, Remaining: -1, sw: sw}
	case sw == apdu.SWWrongLength || sw == apdu.SWWrongData:
		return fmt.Errorf("%w: the card refused its format (%w)", ErrInvalidPIN, sw)
	}
	return nil
}

// hexSpaced prints b as "3B 8F 80 01".
func hexSpaced(b []byte) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02X", x)
	}
	return sb.String()
}
