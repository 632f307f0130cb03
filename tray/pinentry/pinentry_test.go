package pinentry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// fakePrompter records the requests and answers from a script.
type fakePrompter struct {
	requests []Request
	pins     []string // answers of GetPIN, in order; "" with err
	errs     []error
	confirm  []bool
}

func (f *fakePrompter) GetPIN(ctx context.Context, r Request) ([]byte, error) {
	f.requests = append(f.requests, r)
	i := len(f.requests) - 1
	if i < len(f.errs) && f.errs[i] != nil {
		if f.errs[i] == ErrTimeout {
			<-ctx.Done() // wait for the server's timeout like a dialog would
			return nil, ErrTimeout
		}
		return nil, f.errs[i]
	}
	if i >= len(f.pins) {
		return nil, nil
	}
	return []byte(f.pins[i]), nil
}

func (f *fakePrompter) Confirm(_ context.Context, r Request) (bool, error) {
	f.requests = append(f.requests, r)
	if len(f.confirm) == 0 {
		return false, nil
	}
	yes := f.confirm[0]
	f.confirm = f.confirm[1:]
	return yes, nil
}

// converse sends the request lines and returns the server's answer lines.
func converse(t *testing.T, p Prompter, requests ...string) []string {
	t.Helper()
	in := strings.NewReader(strings.Join(requests, "\n") + "\n")
	var out strings.Builder
	s := &Server{Prompter: p}
	if err := s.Serve(context.Background(), in, &out); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

func expectLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("server answered:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestGetPINAsGPGAgentAsks replays what gpg-agent and the PKCS#11 module
// send: options, texts with escapes, GETPIN, BYE.
func TestGetPINAsGPGAgentAsks(t *testing.T) {
	p := &fakePrompter{pins: []string{"12345678"}}
	got := converse(t, p,
		"OPTION ttyname=/dev/pts/1",
		"OPTION lc-messages=it_IT.UTF-8",
		"OPTION cie-holder=Mario%20Rossi",
		"OPTION cie-tries-left=1",
		"SETTITLE CIE%25 Desktop",
		"SETDESC Firma con la CIE di Mario Rossi%0AUltimo tentativo",
		"SETPROMPT PIN:",
		"SETOK Firma",
		"SETCANCEL Annulla",
		"# a comment",
		"",
		"GETPIN",
		"BYE",
	)
	expectLines(t, got,
		"OK Pleased to meet you",
		"OK", "OK", "OK", "OK", "OK", "OK", "OK", "OK", "OK",
		"D 12345678", "OK",
		"OK closing connection")
	r := p.requests[0]
	if r.Title != "CIE% Desktop" || r.Description != "Firma con la CIE di Mario Rossi\nUltimo tentativo" ||
		r.Prompt != "PIN:" || r.OK != "Firma" || r.Cancel != "Annulla" {
		t.Errorf("texts not unescaped as sent: %+v", r)
	}
	if r.Holder != "Mario Rossi" || r.TriesLeft != 1 || r.Options["lc-messages"] != "it_IT.UTF-8" {
		t.Errorf("options: holder %q, tries %d, lc-messages %q", r.Holder, r.TriesLeft, r.Options["lc-messages"])
	}
}

func TestCancelTimeoutAndErrorsUseGPGCodes(t *testing.T) {
	p := &fakePrompter{pins: []string{"", "", "87654321"}, errs: []error{ErrCancelled, ErrTimeout, nil}}
	got := converse(t, p,
		"GETPIN",
		"SETTIMEOUT 1",
		"GETPIN",
		"SETTIMEOUT 0",
		"SETERROR Wrong PIN%3A 2 tries left",
		"GETPIN",
		"GETPIN2",
		"OPTION frobnicate=1",
		"SETTIMEOUT soon",
		"SETDESC 100%",
	)
	expectLines(t, got,
		"OK Pleased to meet you",
		"ERR 83886179 Operation cancelled <Pinentry>",
		"OK",
		"ERR 83886142 Timeout <Pinentry>",
		"OK", "OK",
		"D 87654321", "OK",
		"ERR 536871187 Unknown IPC command <User defined source 1>",
		"ERR 83886254 Unknown option <Pinentry>",
		"ERR 536871188 Invalid value <User defined source 1>",
		"ERR 536871188 Invalid value <User defined source 1>",
	)
	if p.requests[1].Timeout != time.Second {
		t.Errorf("SETTIMEOUT 1 gave %v", p.requests[1].Timeout)
	}
	// SETERROR is for the next dialog only, and the tries come from it.
	if p.requests[2].Error != "Wrong PIN: 2 tries left" {
		t.Errorf("SETERROR not passed to the dialog: %q", p.requests[2].Error)
	}
}

func TestSETERRORIsForTheNextDialogOnly(t *testing.T) {
	p := &fakePrompter{pins: []string{"11112222", "12345678"}}
	converse(t, p, "SETERROR bad", "GETPIN", "GETPIN")
	if p.requests[0].Error != "bad" || p.requests[1].Error != "" {
		t.Fatalf("errors of the two dialogs: %q, %q", p.requests[0].Error, p.requests[1].Error)
	}
}

func TestPINWithSpecialCharactersIsEscaped(t *testing.T) {
	p := &fakePrompter{pins: []string{"a%b\nc\rd"}}
	got := converse(t, p, "GETPIN")
	expectLines(t, got, "OK Pleased to meet you", "D a%25b%0Ac%0Dd", "OK")
}

func TestRepeatAndConfirm(t *testing.T) {
	p := &fakePrompter{pins: []string{"24681357"}, confirm: []bool{true, false, false, true}}
	got := converse(t, p,
		"SETREPEAT Ripeti:",
		"SETREPEATERROR I due PIN sono diversi",
		"GETPIN",
		"CONFIRM",
		"CONFIRM",
		"CONFIRM --one-button",
		"MESSAGE",
		"RESET",
		"GETINFO flavor",
		"GETINFO version",
		"GETINFO nonsense",
	)
	expectLines(t, got,
		"OK Pleased to meet you",
		"OK", "OK",
		"S PIN_REPEATED", "D 24681357", "OK",
		"OK",
		"ERR 83886194 Not confirmed <Pinentry>",
		"ERR 83886179 Operation cancelled <Pinentry>",
		"OK",
		"OK",
		"D cie", "OK",
		"D "+Version, "OK",
		"ERR 536871188 Invalid value <User defined source 1>",
	)
	if p.requests[0].Repeat != "Ripeti:" || p.requests[0].RepeatError != "I due PIN sono diversi" {
		t.Errorf("repeat texts: %+v", p.requests[0])
	}
	if !p.requests[3].OneButton || !p.requests[4].OneButton || p.requests[1].OneButton {
		t.Errorf("one-button flags: %v %v %v", p.requests[1].OneButton, p.requests[3].OneButton, p.requests[4].OneButton)
	}
}

func TestResetForgetsEverything(t *testing.T) {
	p := &fakePrompter{pins: []string{"12345678"}}
	converse(t, p, "SETDESC x", "OPTION cie-holder=Mario", "RESET", "GETPIN")
	r := p.requests[0]
	if r.Description != "" || r.Holder != "" || r.TriesLeft != -1 || len(r.Options) != 0 {
		t.Fatalf("RESET kept %+v", r)
	}
}

func TestTriesInDescription(t *testing.T) {
	for text, want := range map[string]int{
		"CIE di Mario Rossi: 2 tentativi rimasti":   2,
		"Mario Rossi's CIE\n1 try left":             1,
		"PIN for Mario Rossi (3 tries left)":        3,
		"1 tentativo rimasto, poi il PIN si blocca": 1,
		"Enter the PIN":                             -1,
		"PIN 12345678":                              -1,
	} {
		if got := TriesInText(text); got != want {
			t.Errorf("TriesInText(%q) = %d, want %d", text, got, want)
		}
	}
	// Through the protocol: SETDESC sets the tries, an explicit option wins.
	p := &fakePrompter{pins: []string{"1", "2"}}
	converse(t, p, "SETDESC 1 tentativo rimasto", "GETPIN", "OPTION cie-tries-left=3", "SETDESC 1 try left", "GETPIN")
	if p.requests[0].TriesLeft != 1 || p.requests[1].TriesLeft != 3 {
		t.Fatalf("tries: %d, %d", p.requests[0].TriesLeft, p.requests[1].TriesLeft)
	}
}

func TestLongLineIsRefusedAndTheDialogueGoesOn(t *testing.T) {
	p := &fakePrompter{pins: []string{"12345678"}}
	got := converse(t, p, "SETDESC "+strings.Repeat("x", 1200), "GETPIN")
	expectLines(t, got, "OK Pleased to meet you",
		"ERR 536871175 Line too long <User defined source 1>", "D 12345678", "OK")
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "100%", "a\nb\r\n", "\x00\x1f\x7f", "città"} {
		e := Escape(s)
		if strings.ContainsAny(e, "\r\n") {
			t.Errorf("Escape(%q) = %q keeps a line break", s, e)
		}
		back, err := Unescape(e)
		if err != nil || back != s {
			t.Errorf("Unescape(Escape(%q)) = %q, %v", s, back, err)
		}
	}
	for _, bad := range []string{"%", "%4", "%zz", "abc%1"} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) accepted a bad escape", bad)
		}
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestServeReportsBrokenPipesAndStops(t *testing.T) {
	s := &Server{Prompter: &fakePrompter{}}
	err := s.Serve(context.Background(), strings.NewReader("NOP\n"), errWriter{})
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Serve on a broken pipe: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out strings.Builder
	if err := s.Serve(ctx, strings.NewReader("NOP\n"), &out); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve with a cancelled context: %v", err)
	}
}

func FuzzServe(f *testing.F) {
	f.Add("SETDESC a%0Ab\nOPTION cie-tries-left=2\nGETPIN\nBYE\n")
	f.Add("OPTION\nSETTIMEOUT -1\nGETINFO pid\nCONFIRM --one-button\n")
	f.Add("SETDESC %\nSETERROR %G0\n" + strings.Repeat("y", 1500) + "\nNOP")
	f.Fuzz(func(t *testing.T, script string) {
		p := &fakePrompter{}
		var out strings.Builder
		s := &Server{Prompter: p}
		if err := s.Serve(context.Background(), strings.NewReader(script), &out); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		for i, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if len(l) > MaxLine {
				t.Fatalf("answer line %d is %d bytes", i, len(l))
			}
			if !(strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "ERR ") || strings.HasPrefix(l, "D ") ||
				strings.HasPrefix(l, "S ") || strings.HasPrefix(l, "# ")) {
				t.Fatalf("answer line %q is not Assuan", l)
			}
		}
		_ = fmt.Sprint(p.requests)
	})
}
