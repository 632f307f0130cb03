package pcsc

import (
	"errors"
	"fmt"

	"github.com/ebfe/scard"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// Sentinels for the PC/SC conditions that callers branch on. Card-level
// conditions use the transport sentinels of package apdu instead
// (apdu.ErrCardRemoved, apdu.ErrCardReset, apdu.ErrNoCard), so that layers
// above need no import of this package to recognise them.
var (
	// ErrNoService: the PC/SC daemon is not running (or stopped while in use).
	ErrNoService = errors.New("the smart card service (" + ServiceName + ") is not running")
	// ErrNoReaders: the PC/SC daemon runs but no reader is connected.
	ErrNoReaders = errors.New("no smart card reader is connected")
	// ErrClosed: the Card or Context was already closed or released.
	ErrClosed = errors.New("the card connection is closed")
)

// Error is a PC/SC failure: the operation that failed and the PC/SC return
// code. errors.Is matches the code itself (a scard.Error) and the sentinel
// it stands for (ErrNoService, ErrNoReaders, apdu.ErrCardRemoved,
// apdu.ErrCardReset, apdu.ErrNoCard).
type Error struct {
	Op   string      // what was being done, e.g. `connecting to "Virtual PCD 00 00"`
	Code scard.Error // the PC/SC return code (SCARD_E_*, SCARD_W_*)
}

// Error implements error with a message a user can act on.
func (e *Error) Error() string {
	return fmt.Sprintf("pcsc: %s: %s", e.Op, codeText(e.Code))
}

// Unwrap returns the sentinel for the code (if any) and the code itself.
func (e *Error) Unwrap() []error {
	if s := sentinel(e.Code); s != nil {
		return []error{s, e.Code}
	}
	return []error{e.Code}
}

// sentinel maps a PC/SC code to the sentinel callers branch on.
func sentinel(code scard.Error) error {
	switch code {
	case scard.ErrNoService, scard.ErrServiceStopped:
		return ErrNoService
	case scard.ErrNoReadersAvailable:
		return ErrNoReaders
	case scard.ErrRemovedCard:
		return apdu.ErrCardRemoved
	case scard.ErrResetCard:
		return apdu.ErrCardReset
	case scard.ErrNoSmartcard:
		return apdu.ErrNoCard
	}
	return nil
}

// codeTexts are the user-facing texts of the PC/SC codes seen in practice.
// pcsc_stringify_error's texts ("Card was reset.") are terse; these say what
// happened and, where it helps, what to do.
var codeTexts = map[scard.Error]string{
	scard.ErrNoService:          "the smart card service (" + ServiceName + ") is not running",
	scard.ErrServiceStopped:     "the smart card service (" + ServiceName + ") stopped",
	scard.ErrNoReadersAvailable: "no smart card reader is connected",
	scard.ErrUnknownReader:      "the reader is not connected (was it unplugged?)",
	scard.ErrReaderUnavailable:  "the reader is not available (was it unplugged?)",
	scard.ErrNoSmartcard:        "there is no card in the reader",
	scard.ErrRemovedCard:        "the card was removed from the reader",
	scard.ErrResetCard:          "the card was reset by another application; the command was not executed",
	scard.ErrUnresponsiveCard:   "the card does not respond (is it placed correctly on the reader?)",
	scard.ErrUnpoweredCard:      "the card is not powered",
	scard.ErrUnsupportedCard:    "the reader cannot talk to this card",
	scard.ErrSharingViolation:   "the card is in use by another application",
	scard.ErrProtoMismatch:      "the card does not support the requested protocol",
	scard.ErrNotTransacted:      "the card operation was interrupted",
	scard.ErrCommError:          "communication with the reader failed",
	scard.ErrCommDataLost:       "communication with the reader failed (data lost)",
	scard.ErrTimeout:            "the operation timed out",
	scard.ErrCancelled:          "the operation was cancelled",
	scard.ErrInvalidHandle:      "the card connection is no longer valid",
	scard.ErrNoAccess:           "access to the smart card service was denied",
	scard.ErrServerTooBusy:      "the smart card service is too busy",
	scard.ErrNoMemory:           "the smart card service ran out of memory",
	scard.ErrInsufficientBuffer: "the answer did not fit the buffer",
	scard.ErrInvalidParameter:   "invalid parameter",
	scard.ErrInvalidValue:       "invalid value",
	scard.ErrInternalError:      "internal error of the smart card service",
	scard.ErrUnknownError:       "unknown error of the smart card service",
	scard.ErrInvalidAtr:         "the card sent an invalid answer to reset",
	scard.ErrShutdown:           "the smart card service is shutting down",
}

// codeText returns the user-facing text of a code, falling back to the
// library's own text and the hexadecimal code.
func codeText(code scard.Error) string {
	if t, ok := codeTexts[code]; ok {
		return t
	}
	return fmt.Sprintf("%v (0x%08X)", code, uint32(code))
}

// wrap turns an error of the scard library into an *Error for op.
func wrap(op string, err error) error {
	var code scard.Error
	if errors.As(err, &code) {
		return &Error{Op: op, Code: code}
	}
	return fmt.Errorf("pcsc: %s: %w", op, err)
}
