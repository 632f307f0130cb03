package pcsc

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ebfe/scard"

	"github.com/ciedesktop/cie-desktop/apdu"
)

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		code     scard.Error
		sentinel error
		text     string
	}{
		{scard.ErrNoService, ErrNoService, "the smart card service (pcscd) is not running"},
		{scard.ErrServiceStopped, ErrNoService, "pcscd) stopped"},
		{scard.ErrNoReadersAvailable, ErrNoReaders, "no smart card reader is connected"},
		{scard.ErrRemovedCard, apdu.ErrCardRemoved, "the card was removed from the reader"},
		{scard.ErrResetCard, apdu.ErrCardReset, "reset by another application; the command was not executed"},
		{scard.ErrNoSmartcard, apdu.ErrNoCard, "there is no card in the reader"},
		{scard.ErrSharingViolation, nil, "in use by another application"},
		{scard.ErrUnknownReader, nil, "the reader is not connected"},
		{scard.ErrUnresponsiveCard, nil, "the card does not respond"},
	}
	all := []error{ErrNoService, ErrNoReaders, apdu.ErrCardRemoved, apdu.ErrCardReset, apdu.ErrNoCard}
	for _, tt := range tests {
		err := fmt.Errorf("opening the card: %w", wrap("connecting to the card in \"R\"", tt.code))
		if !errors.Is(err, tt.code) {
			t.Errorf("%v: errors.Is(err, code) = false", tt.code)
		}
		for _, s := range all {
			if got, want := errors.Is(err, s), s == tt.sentinel; got != want {
				t.Errorf("%v: errors.Is(err, %q) = %v, want %v", tt.code, s, got, want)
			}
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != tt.code || pe.Op != `connecting to the card in "R"` {
			t.Errorf("%v: errors.As → %+v", tt.code, pe)
		}
		if msg := err.Error(); !strings.Contains(msg, `pcsc: connecting to the card in "R": `) || !strings.Contains(msg, tt.text) {
			t.Errorf("%v: message %q lacks %q", tt.code, msg, tt.text)
		}
	}
	// A code without a text of ours still names itself.
	if msg := (&Error{Op: "x", Code: scard.ErrBadSeek}).Error(); !strings.Contains(msg, "0x80100029") {
		t.Errorf("fallback message %q", msg)
	}
	// Errors that are not PC/SC codes are wrapped with the operation.
	base := errors.New("boom")
	if err := wrap("listing readers", base); !errors.Is(err, base) || err.Error() != "pcsc: listing readers: boom" {
		t.Errorf("wrap(non-scard) = %v", err)
	}
}

func TestSameCard(t *testing.T) {
	atr := []byte{0x3B, 0x80, 0x80, 0x01, 0x01}
	present := ReaderStatus{Name: "R", Present: true, ATR: atr, state: scard.StatePresent | 3<<16}
	tests := []struct {
		name string
		b    ReaderStatus
		same bool
	}{
		{"identical", present, true},
		{"now in use", ReaderStatus{Name: "R", Present: true, ATR: atr, InUse: true, state: scard.StatePresent | scard.StateInuse | 3<<16}, true},
		{"removed", ReaderStatus{Name: "R", state: scard.StateEmpty | 4<<16}, false},
		{"removed and reinserted", ReaderStatus{Name: "R", Present: true, ATR: atr, state: scard.StatePresent | 5<<16}, false},
		{"other ATR", ReaderStatus{Name: "R", Present: true, ATR: []byte{0x3B, 0}, state: scard.StatePresent | 3<<16}, false},
		{"hand-made known state", ReaderStatus{Name: "R", Present: true, ATR: atr}, true},
	}
	for _, tt := range tests {
		if got := sameCard(present, tt.b); got != tt.same {
			t.Errorf("%s: sameCard = %v, want %v", tt.name, got, tt.same)
		}
	}
}
