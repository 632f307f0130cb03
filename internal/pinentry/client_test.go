package pinentry

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeProgram is the program side of the dialogue: it greets, records the
// request lines and answers each with what answer returns.
type fakeProgram struct {
	requests []string
	answer   func(req string) []string
}

// dial connects a Client to the fake over pipes.
func (f *fakeProgram) dial(t *testing.T, greeting string) (*Client, error) {
	t.Helper()
	progIn, clientOut := io.Pipe()
	clientIn, progOut := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer progOut.Close()
		io.WriteString(progOut, greeting+"\n")
		sc := bufio.NewScanner(progIn)
		for sc.Scan() {
			line := sc.Text()
			f.requests = append(f.requests, line)
			var reply []string
			if f.answer != nil {
				reply = f.answer(line)
			}
			if reply == nil {
				reply = []string{"OK"}
			}
			for _, r := range reply {
				if _, err := io.WriteString(progOut, r+"\n"); err != nil {
					return
				}
			}
			if line == "BYE" {
				return
			}
		}
	}()
	t.Cleanup(func() {
		clientOut.Close()
		clientIn.Close() // a fake still writing an answer the client did not read
		<-done
	})
	return NewClient(clientIn, clientOut)
}

func TestGetPIN(t *testing.T) {
	f := &fakeProgram{answer: func(req string) []string {
		switch {
		case req == "GETPIN":
			// Split over two data lines, with escapes and status noise.
			return []string{"S PASSWORD_FROM_CACHE", "# a comment", "D 1234%25", "D 5%0A67", "OK"}
		case strings.HasPrefix(req, "OPTION cie-"):
			return []string{"ERR 83886254 Unknown option <Pinentry>"}
		}
		return nil
	}}
	c, err := f.dial(t, "OK Pleased to meet you")
	if err != nil {
		t.Fatal(err)
	}
	pin, err := c.GetPIN(Dialog{
		Title:       "CIE PIN",
		Description: "line one\nline two: 100% sure\r",
		Prompt:      "PIN:",
		Error:       "Wrong PIN: 2 tries left.",
		Timeout:     1500 * time.Millisecond,
		Options:     []Option{{"cie-tries-left", "2"}, {"cie-holder", "MARIO ROSSI"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(pin) != "1234%5\n67" {
		t.Fatalf("PIN %q", pin)
	}
	if err := c.Bye(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"OPTION cie-tries-left=2",
		"OPTION cie-holder=MARIO ROSSI",
		"SETTITLE CIE PIN",
		"SETDESC line one%0Aline two: 100%25 sure%0D",
		"SETPROMPT PIN:",
		"SETERROR Wrong PIN: 2 tries left.",
		"SETTIMEOUT 2",
		"GETPIN",
		"BYE",
	}
	if strings.Join(f.requests, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(f.requests, "\n"), strings.Join(want, "\n"))
	}
}

func TestGetPINErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer []string
		check  func(error) bool
	}{
		{"cancel", []string{"ERR 83886179 Operation cancelled <Pinentry>"}, func(err error) bool { return errors.Is(err, ErrCancelled) }},
		{"cancel from another source", []string{"ERR 99 cancelled"}, func(err error) bool { return errors.Is(err, ErrCancelled) }},
		{"timeout", []string{"ERR 83886142 Timeout <Pinentry>"}, func(err error) bool { return errors.Is(err, ErrTimeout) }},
		{"other error", []string{"ERR 83886081 General error <Pinentry>"}, func(err error) bool {
			var pe *ProtocolError
			return errors.As(err, &pe) && pe.Code == 83886081 && pe.Request == "GETPIN"
		}},
		{"garbage", []string{"HELLO"}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "unexpected answer") }},
		{"bad escape", []string{"D 12%G4", "OK"}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "bad escape") }},
		{"truncated escape", []string{"D 12%4", "OK"}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "truncated escape") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeProgram{answer: func(req string) []string {
				if req == "GETPIN" {
					return tc.answer
				}
				return nil
			}}
			c, err := f.dial(t, "OK hi")
			if err != nil {
				t.Fatal(err)
			}
			pin, err := c.GetPIN(Dialog{Prompt: "PIN:"})
			if !tc.check(err) || pin != nil {
				t.Fatalf("got %q, %v", pin, err)
			}
		})
	}
}

func TestGreetingRefused(t *testing.T) {
	f := &fakeProgram{}
	if _, err := f.dial(t, "ERR 83886081 no display <Pinentry>"); err == nil {
		t.Fatal("a failed greeting was accepted")
	}
}

func TestLongRequestNotSent(t *testing.T) {
	f := &fakeProgram{}
	c, err := f.dial(t, "OK")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetPIN(Dialog{Description: strings.Repeat("x", MaxLine)})
	if err == nil || !strings.Contains(err.Error(), "line limit") {
		t.Fatalf("%v", err)
	}
	if len(f.requests) != 0 {
		t.Fatalf("sent %q", f.requests)
	}
}

func TestMessage(t *testing.T) {
	f := &fakeProgram{answer: func(req string) []string {
		if req == "MESSAGE" {
			return []string{"ERR 83886179 closed"} // closing a message is fine
		}
		return nil
	}}
	c, err := f.dial(t, "OK")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Message(Dialog{Description: "blocked"}); err != nil {
		t.Fatal(err)
	}
	if f.requests[len(f.requests)-1] != "MESSAGE" {
		t.Fatalf("%q", f.requests)
	}
}

func TestLineReaderClears(t *testing.T) {
	l := newLineReader(strings.NewReader("OK\nD 12345678\nOK\n"))
	for range 3 {
		if _, err := l.line(); err != nil {
			t.Fatal(err)
		}
	}
	l.clear()
	for _, b := range [][]byte{l.buf[:cap(l.buf)], l.out[:cap(l.out)], l.chunk} {
		if strings.Contains(string(b), "1234") {
			t.Fatal("PIN bytes left in a buffer")
		}
	}
	if _, err := l.line(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after EOF: %v", err)
	}
}

// script writes an executable shell script.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pinentry.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// pinentryScript is a minimal pinentry in sh: OK to everything, a PIN for
// GETPIN, the requests appended to $LOG.
const pinentryScript = `echo "OK Pleased to meet you"
while read -r cmd rest; do
  echo "$cmd $rest" >> "$LOG"
  case "$cmd" in
    GETPIN) echo "D 87654321"; echo OK ;;
    BYE) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
`

func TestProgram(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	p := Program{Path: script(t, pinentryScript), Env: append(os.Environ(), "LOG="+log)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pin, err := p.GetPIN(ctx, CardPrompt{Holder: "MARIO ROSSI", TriesLeft: 3}.PINDialog())
	if err != nil {
		t.Fatal(err)
	}
	if string(pin) != "87654321" {
		t.Fatalf("PIN %q", pin)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "SETDESC ") || !strings.Contains(string(b), "all 8 digits") || !strings.HasSuffix(string(b), "BYE \n") {
		t.Fatalf("the program saw:\n%s", b)
	}
	if err := p.Message(ctx, CardPrompt{}.LockedDialog()); err != nil {
		t.Fatal(err)
	}
}

func TestProgramFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := (Program{Path: filepath.Join(t.TempDir(), "missing")}).GetPIN(ctx, Dialog{}); err == nil {
		t.Fatal("a missing program gave a PIN")
	}
	// A program that exits at once (no display, say) is an error, not a hang.
	if _, err := (Program{Path: script(t, "echo 'no display' >&2; exit 1\n")}).GetPIN(ctx, Dialog{}); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("an exiting program: %v", err)
	}
	// A program that never answers is killed when the context ends.
	hang := Program{Path: script(t, "echo OK; exec sleep 60\n")}
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err := hang.GetPIN(short, Dialog{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a hanging program: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to give up", d)
	}
}

func FuzzAnswer(f *testing.F) {
	f.Add([]byte("OK hi\nD 1234%25\nOK\n"))
	f.Add([]byte("OK\nERR 83886179 x\n"))
	f.Add([]byte("OK\nS x\n# y\nD %0A%0d\nOK\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := NewClient(strings.NewReader(string(b)), io.Discard)
		if err != nil {
			return
		}
		pin, _ := c.GetPIN(Dialog{Prompt: "x"})
		clear(pin)
		c.Close()
	})
}
