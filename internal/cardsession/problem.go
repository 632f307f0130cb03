package cardsession

import (
	"context"
	"errors"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// Problem is the kind of failure a citizen is told about. Front ends pick
// their message (and the CLI its exit code) by Problem.
type Problem int

// The problems, in the order Classify tests for them.
const (
	// ProblemNone: no error.
	ProblemNone Problem = iota
	// ProblemCancelled: the user cancelled, or the operation timed out.
	ProblemCancelled
	// ProblemNoService: the smart card service (pcscd) is not running.
	ProblemNoService
	// ProblemNoReader: no smart card reader is connected.
	ProblemNoReader
	// ProblemReaderMatch: the reader asked for matches no reader or several.
	ProblemReaderMatch
	// ProblemNoCard: no card on the reader.
	ProblemNoCard
	// ProblemCardRemoved: the card was removed during the operation.
	ProblemCardRemoved
	// ProblemUnsupported: the card is not a CIE 3.0 this software knows.
	ProblemUnsupported
	// ProblemInvalidPIN: a PIN or PUK in the wrong format; nothing reached the card.
	ProblemInvalidPIN
	// ProblemWrongPIN: wrong PIN, tries remain (Tries tells how many).
	ProblemWrongPIN
	// ProblemPINBlocked: the PIN is blocked; the PUK unblocks it.
	ProblemPINBlocked
	// ProblemWrongPUK: wrong PUK, tries remain.
	ProblemWrongPUK
	// ProblemPUKBlocked: the PUK is blocked; the card must be replaced.
	ProblemPUKBlocked
	// ProblemPINRequired: the card lost the PIN verification (it was reset).
	ProblemPINRequired
	// ProblemChipAuthentication: the chip failed to prove it is genuine.
	ProblemChipAuthentication
	// ProblemOther: anything else; show the error text.
	ProblemOther
)

var problemNames = [...]string{
	"none", "cancelled", "no-service", "no-reader", "reader-match", "no-card", "card-removed",
	"unsupported", "invalid-pin", "wrong-pin", "pin-blocked", "wrong-puk", "puk-blocked",
	"pin-required", "chip-authentication", "other",
}

// String returns a stable lower-case name, e.g. "wrong-pin".
func (p Problem) String() string {
	if p >= 0 && int(p) < len(problemNames) {
		return problemNames[p]
	}
	return "other"
}

// Classify sorts err into a Problem. For ProblemWrongPIN and
// ProblemWrongPUK, tries is the number of tries left (-1 when the card did
// not say); otherwise it is 0.
func Classify(err error) (p Problem, tries int) {
	var (
		pinErr *cie.PINError
		noCard *NoCardError
		match  *ReaderMatchError
	)
	switch {
	case err == nil:
		return ProblemNone, 0
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ProblemCancelled, 0
	case errors.Is(err, pcsc.ErrNoService):
		return ProblemNoService, 0
	case errors.Is(err, pcsc.ErrNoReaders):
		return ProblemNoReader, 0
	case errors.As(err, &match):
		return ProblemReaderMatch, 0
	case errors.As(err, &noCard), errors.Is(err, apdu.ErrNoCard):
		return ProblemNoCard, 0
	case errors.Is(err, apdu.ErrCardRemoved):
		return ProblemCardRemoved, 0
	case errors.Is(err, cie.ErrUnsupportedCard):
		return ProblemUnsupported, 0
	case errors.Is(err, cie.ErrInvalidPIN):
		return ProblemInvalidPIN, 0
	case errors.As(err, &pinErr):
		switch {
		case pinErr.Ref == cie.PUK && pinErr.Blocked:
			return ProblemPUKBlocked, 0
		case pinErr.Ref == cie.PUK:
			return ProblemWrongPUK, pinErr.Remaining
		case pinErr.Blocked:
			return ProblemPINBlocked, 0
		}
		return ProblemWrongPIN, pinErr.Remaining
	case errors.Is(err, cie.ErrPINRequired):
		return ProblemPINRequired, 0
	case errors.Is(err, cie.ErrChipAuthentication):
		return ProblemChipAuthentication, 0
	}
	return ProblemOther, 0
}
