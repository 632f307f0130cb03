package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// TestDescribe checks the message and exit code a citizen gets for each
// kind of failure.
func TestDescribe(t *testing.T) {
	tests := []struct {
		err  error
		code int
		msg  string
	}{
		{fmt.Errorf("establishing: %w", pcsc.ErrNoService), ExitNoReader, "pcscd) is not running"},
		{pcsc.ErrNoReaders, ExitNoReader, "no smart card reader found"},
		{&cardsession.NoCardError{Reader: "R"}, ExitNoCard, `no card in the reader "R"`},
		{&cardsession.NoCardError{}, ExitNoCard, "no CIE found"},
		{&cardsession.ReaderMatchError{Want: "x", Readers: []string{"A"}}, ExitUsage, `no reader matches "x"`},
		{fmt.Errorf("x: %w", apdu.ErrCardRemoved), ExitNoCard, "card was removed"},
		{fmt.Errorf("x: %w", apdu.ErrNoCard), ExitNoCard, "no card in the reader"},
		{&cie.UnsupportedCardError{ATR: []byte{0x3B, 0x02}}, ExitUnsupported, "unsupported card (ATR 3B02)"},
		{&cie.PINError{Ref: cie.PIN, Remaining: 2}, ExitWrongPIN, "wrong PIN: 2 tries left"},
		{&cie.PINError{Ref: cie.PIN, Remaining: 1}, ExitWrongPIN, "wrong PIN: 1 try left; one more wrong PIN blocks it"},
		{&cie.PINError{Ref: cie.PIN, Blocked: true}, ExitPINBlocked, "unblock it with the PUK (cie pin unblock)"},
		{&cie.PINError{Ref: cie.PUK, Remaining: 9}, ExitWrongPIN, "wrong PUK: 9 tries left"},
		{&cie.PINError{Ref: cie.PUK, Blocked: true}, ExitPUKBlocked, "municipality"},
		{&inputError{"the PIN must be exactly 8 digits."}, ExitBadInput, "Nothing was sent to the card"},
		{&usageError{"bad flag"}, ExitUsage, "bad flag"},
		{fmt.Errorf("boom"), ExitError, "error: boom"},
	}
	for _, tt := range tests {
		msg, code := describe(tt.err)
		if code != tt.code || !strings.Contains(msg, tt.msg) {
			t.Errorf("describe(%v) = %q, %d; want %q, %d", tt.err, msg, code, tt.msg, tt.code)
		}
	}
}

// TestUsage checks that command-line mistakes exit 2 before any PC/SC call.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"pin"}, {"pin", "reset"}, {"--nope"}} {
		var out, errb bytes.Buffer
		code := Main(args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		if code != ExitUsage {
			t.Errorf("cie %v exited %d, want %d; stderr %q", args, code, ExitUsage, errb.String())
		}
	}
	var out bytes.Buffer
	if code := Main([]string{"version"}, Env{Stdout: &out, Stderr: &out, Version: "1.2.3"}); code != 0 || !strings.Contains(out.String(), "1.2.3") {
		t.Errorf("cie version: %d %q", code, out.String())
	}
}
