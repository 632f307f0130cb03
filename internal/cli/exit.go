package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
	"github.com/ciedesktop/cie-desktop/pcsc"
	"github.com/ciedesktop/cie-desktop/sm"
)

// Exit codes of the cie command (documented in README.md).
const (
	ExitOK          = 0  // success
	ExitError       = 1  // any other error
	ExitUsage       = 2  // wrong command line
	ExitNoReader    = 3  // pcscd not running, or no reader
	ExitNoCard      = 4  // no card, or the card was removed during the operation
	ExitUnsupported = 5  // the card is not a supported CIE
	ExitWrongPIN    = 6  // wrong PIN or PUK; tries remain
	ExitPINBlocked  = 7  // the PIN is blocked (unblock it with the PUK)
	ExitPUKBlocked  = 8  // the PUK is blocked (the card must be replaced)
	ExitBadInput    = 9  // a PIN or PUK typed in the wrong format, or the two new PINs differ
	ExitCancelled   = 10 // interrupted or timed out
	ExitNotValid    = 11 // cie verify: a signature is not valid, not trusted, or missing
)

// usageError is a command-line mistake.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// inputError is a PIN typed in the wrong format; nothing was sent to the card.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

// describe turns an error into the message for the user and the exit code.
func describe(err error) (string, int) {
	var (
		pinErr   *cie.PINError
		unsupErr *cie.UnsupportedCardError
		noCard   *cardsession.NoCardError
		match    *cardsession.ReaderMatchError
		usage    *usageError
		input    *inputError
		notValid *notValidError
	)
	switch {
	case errors.As(err, &notValid):
		return notValid.Error(), ExitNotValid
	case errors.As(err, &usage):
		return usage.msg, ExitUsage
	case errors.As(err, &match):
		return match.Error(), ExitUsage
	case errors.As(err, &input):
		return input.msg + " Nothing was sent to the card.", ExitBadInput
	case errors.Is(err, cie.ErrInvalidPIN):
		return strings.TrimPrefix(err.Error(), "cie: ") + ". Nothing was sent to the card.", ExitBadInput
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "interrupted: the operation did not complete", ExitCancelled
	case errors.Is(err, pcsc.ErrNoService):
		return "the smart card service (" + pcsc.ServiceName + ") is not running: " + pcsc.StartServiceHint + " and try again", ExitNoReader
	case errors.Is(err, pcsc.ErrNoReaders):
		return "no smart card reader found: connect your USB or NFC reader and try again", ExitNoReader
	case errors.As(err, &noCard):
		return noCard.Error(), ExitNoCard
	case errors.Is(err, apdu.ErrNoCard):
		return "no card in the reader: put your CIE on it", ExitNoCard
	case errors.Is(err, apdu.ErrCardRemoved):
		return "the card was removed from the reader: put it back and try again", ExitNoCard
	case errors.As(err, &unsupErr):
		return fmt.Sprintf("unsupported card (ATR %X): this is not a CIE 3.0, or its chip is not known yet; please report the ATR", unsupErr.ATR), ExitUnsupported
	case errors.As(err, &pinErr):
		return pinMessage(pinErr)
	case errors.Is(err, cie.ErrPINRequired):
		return "the card asks for the PIN again (it was reset): repeat the operation", ExitError
	case errors.Is(err, sm.ErrMAC), errors.Is(err, sm.ErrMalformed), errors.Is(err, sm.ErrBareStatus), errors.Is(err, sm.ErrSessionClosed):
		return "the card's answer failed the secure messaging check, so the operation stopped; nothing was repeated (a PIN is never sent twice): try again, and if it happens again, place the card better or use another reader", ExitError
	}
	return "error: " + err.Error(), ExitError
}

func pinMessage(e *cie.PINError) (string, int) {
	if e.Ref == cie.PUK {
		if e.Blocked {
			return "the PUK is blocked: the card's online functions can no longer be used; ask your municipality (Comune) for a new card", ExitPUKBlocked
		}
		return fmt.Sprintf("wrong PUK: %s left", tries(e.Remaining)), ExitWrongPIN
	}
	if e.Blocked {
		return "the PIN is blocked: unblock it with the PUK (cie pin unblock)", ExitPINBlocked
	}
	msg := fmt.Sprintf("wrong PIN: %s left", tries(e.Remaining))
	if e.Remaining == 1 {
		msg += "; one more wrong PIN blocks it (you can then unblock it with the PUK)"
	}
	return msg, ExitWrongPIN
}

func tries(n int) string {
	if n == 1 {
		return "1 try"
	}
	return fmt.Sprintf("%d tries", n)
}
