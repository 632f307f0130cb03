package pinentry

import (
	"context"
	"io"
	"testing"

	trayentry "github.com/ciedesktop/cie-desktop/tray/pinentry"
)

// recorder is a tray Prompter that answers a fixed PIN and keeps the
// requests.
type recorder struct {
	pin  string
	seen []trayentry.Request
}

func (r *recorder) GetPIN(ctx context.Context, req trayentry.Request) ([]byte, error) {
	r.seen = append(r.seen, req)
	if r.pin == "" {
		return nil, trayentry.ErrCancelled
	}
	return []byte(r.pin), nil
}

func (r *recorder) Confirm(ctx context.Context, req trayentry.Request) (bool, error) {
	r.seen = append(r.seen, req)
	return true, nil
}

// talk runs the client against the server of `cie-tray pinentry` (package
// tray/pinentry) over pipes.
func talk(t *testing.T, rec *recorder, fn func(*Client)) {
	t.Helper()
	srvIn, cliOut := io.Pipe()
	cliIn, srvOut := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := (&trayentry.Server{Prompter: rec}).Serve(context.Background(), srvIn, srvOut)
		srvOut.Close()
		done <- err
	}()
	c, err := NewClient(cliIn, cliOut)
	if err != nil {
		t.Fatal(err)
	}
	fn(c)
	if err := c.Bye(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	cliOut.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCIETrayServer checks that what the module sends reaches the cie-tray
// dialog: the texts, the tries left and the holder of the extension
// options, and the PIN back.
func TestCIETrayServer(t *testing.T) {
	rec := &recorder{pin: "12345678"}
	talk(t, rec, func(c *Client) {
		d := CardPrompt{Holder: "MARIO ROSSI", Program: "chromium", TriesLeft: 2, Reason: WrongPIN}.PINDialog()
		pin, err := c.GetPIN(d)
		if err != nil || string(pin) != "12345678" {
			t.Fatalf("%q %v", pin, err)
		}
		if err := c.Message(CardPrompt{Holder: "MARIO ROSSI"}.LockedDialog()); err != nil {
			t.Fatal(err)
		}
	})
	if len(rec.seen) != 2 {
		t.Fatalf("%d dialogs", len(rec.seen))
	}
	r := rec.seen[0]
	want := CardPrompt{Holder: "MARIO ROSSI", Program: "chromium", TriesLeft: 2, Reason: WrongPIN}.PINDialog()
	if r.TriesLeft != 2 || r.Holder != "MARIO ROSSI" || r.Description != want.Description || r.Error != want.Error ||
		r.Prompt != want.Prompt || r.Title != want.Title || r.Timeout != want.Timeout {
		t.Fatalf("the dialog got %+v", r)
	}
	if !rec.seen[1].OneButton {
		t.Fatal("the blocked-PIN message is not a one-button dialog")
	}
}

func TestCIETrayServerCancel(t *testing.T) {
	talk(t, &recorder{}, func(c *Client) {
		if _, err := c.GetPIN(CardPrompt{TriesLeft: 3}.PINDialog()); err != ErrCancelled {
			t.Fatalf("cancel: %v", err)
		}
	})
}
