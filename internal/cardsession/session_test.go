package cardsession

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

var (
	gemaltoATR = []byte{0x3B, 0x8F, 0x80, 0x01, 0x80, 0x31, 0x80, 0x65, 0xB0, 0x85, 0x04, 0x00, 0x11, 0x12, 0x0F, 0xFF, 0x82, 0x90, 0x00, 0x8A}
	otherATR   = []byte{0x3B, 0x02, 0x14, 0x50}
)

func TestChooseReader(t *testing.T) {
	empty := pcsc.ReaderStatus{Name: "Virtual PCD 00 00"}
	cieCard := pcsc.ReaderStatus{Name: "Virtual PCD 00 01", Present: true, ATR: gemaltoATR}
	other := pcsc.ReaderStatus{Name: "ACS ACR122U 00 00", Present: true, ATR: otherATR}
	mute := pcsc.ReaderStatus{Name: "Broken 00 00", Present: true, Mute: true}

	tests := []struct {
		name   string
		states []pcsc.ReaderStatus
		want   string
		pick   string
		check  func(error) bool
	}{
		{"no readers", nil, "", "", func(err error) bool { return errors.Is(err, pcsc.ErrNoReaders) }},
		{"one empty reader names it", []pcsc.ReaderStatus{empty}, "", "", func(err error) bool {
			var nc *NoCardError
			return errors.As(err, &nc) && nc.Reader == empty.Name
		}},
		{"two empty readers", []pcsc.ReaderStatus{empty, mute}, "", "", func(err error) bool {
			var nc *NoCardError
			return errors.As(err, &nc) && nc.Reader == ""
		}},
		{"the only card", []pcsc.ReaderStatus{empty, other}, "", other.Name, nil},
		{"the CIE before another card", []pcsc.ReaderStatus{other, cieCard}, "", cieCard.Name, nil},
		{"by index", []pcsc.ReaderStatus{empty, cieCard}, "1", cieCard.Name, nil},
		{"by part of the name", []pcsc.ReaderStatus{other, cieCard}, "acr122", other.Name, nil},
		{"named but empty", []pcsc.ReaderStatus{empty, cieCard}, "00 00", "", func(err error) bool {
			var nc *NoCardError
			return errors.As(err, &nc) && nc.Reader == empty.Name
		}},
		{"ambiguous", []pcsc.ReaderStatus{empty, cieCard}, "virtual", "", func(err error) bool {
			var m *ReaderMatchError
			return errors.As(err, &m) && len(m.Matches) == 2
		}},
		{"no match", []pcsc.ReaderStatus{empty}, "gemplus", "", func(err error) bool {
			var m *ReaderMatchError
			return errors.As(err, &m) && len(m.Matches) == 0
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseReader(tc.states, tc.want)
			if tc.check != nil {
				if !tc.check(err) {
					t.Fatalf("ChooseReader: got %v, %v; not the expected error", got.Name, err)
				}
				return
			}
			if err != nil || got.Name != tc.pick {
				t.Fatalf("ChooseReader = %q, %v; want %q", got.Name, err, tc.pick)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err   error
		want  Problem
		tries int
	}{
		{nil, ProblemNone, 0},
		{fmt.Errorf("x: %w", context.Canceled), ProblemCancelled, 0},
		{context.DeadlineExceeded, ProblemCancelled, 0},
		{pcsc.ErrNoService, ProblemNoService, 0},
		{pcsc.ErrNoReaders, ProblemNoReader, 0},
		{&ReaderMatchError{Want: "x"}, ProblemReaderMatch, 0},
		{&NoCardError{}, ProblemNoCard, 0},
		{fmt.Errorf("connecting: %w", apdu.ErrNoCard), ProblemNoCard, 0},
		{fmt.Errorf("reading: %w", apdu.ErrCardRemoved), ProblemCardRemoved, 0},
		{fmt.Errorf("cie: %w", &cie.UnsupportedCardError{ATR: otherATR}), ProblemUnsupported, 0},
		{fmt.Errorf("cie: %w", cie.ValidatePIN([]byte("1234"))), ProblemInvalidPIN, 0},
		{&cie.PINError{Ref: cie.PIN, Remaining: 2}, ProblemWrongPIN, 2},
		{fmt.Errorf("verifying: %w", &cie.PINError{Ref: cie.PIN, Remaining: 1}), ProblemWrongPIN, 1},
		{&cie.PINError{Ref: cie.PIN, Blocked: true}, ProblemPINBlocked, 0},
		{&cie.PINError{Ref: cie.PUK, Remaining: 9}, ProblemWrongPUK, 9},
		{&cie.PINError{Ref: cie.PUK, Blocked: true}, ProblemPUKBlocked, 0},
		{cie.ErrPINRequired, ProblemPINRequired, 0},
		{cie.ErrChipAuthentication, ProblemChipAuthentication, 0},
		{errors.New("something else"), ProblemOther, 0},
	}
	for _, tc := range tests {
		p, tries := Classify(tc.err)
		if p != tc.want || tries != tc.tries {
			t.Errorf("Classify(%v) = %v, %d; want %v, %d", tc.err, p, tries, tc.want, tc.tries)
		}
	}
	if ProblemWrongPIN.String() != "wrong-pin" || Problem(99).String() != "other" {
		t.Errorf("Problem names: %q %q", ProblemWrongPIN, Problem(99))
	}
}
