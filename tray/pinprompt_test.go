package tray

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/ciedesktop/cie-desktop/tray/icon"
	"github.com/ciedesktop/cie-desktop/tray/pinentry"
)

// promptFixture runs the PIN dialog behind the Assuan server in a
// goroutine, as `cie-tray pinentry` does; the UI work runs on the test's
// goroutine.
type promptFixture struct {
	t     *testing.T
	p     *PINPrompter
	calls chan func()
	rec   *recorder
}

func newPromptFixture(t *testing.T, lang string) *promptFixture {
	a := test.NewTempApp(t)
	pf := &promptFixture{t: t, p: NewPINPrompter(a, lang), calls: make(chan func()), rec: &recorder{}}
	pf.p.OnEvent = pf.rec.add
	pf.p.do = func(fn func()) {
		done := make(chan struct{})
		pf.calls <- func() { fn(); close(done) }
		<-done
	}
	return pf
}

// until runs the dialog's UI work until cond holds.
func (pf *promptFixture) until(what string, cond func() bool) {
	pf.t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case fn := <-pf.calls:
			fn()
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			pf.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// serve starts the Assuan dialogue with script and returns its answer.
func (pf *promptFixture) serve(script string) (answer func() string) {
	var out strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv := &pinentry.Server{Prompter: pf.p}
		if err := srv.Serve(context.Background(), strings.NewReader(script), &out); err != nil {
			pf.t.Errorf("Serve: %v", err)
		}
	}()
	return func() string {
		pf.until("the end of the dialogue", func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		})
		return out.String()
	}
}

func (pf *promptFixture) windowShown(n int) func() bool {
	return func() bool {
		count := 0
		for _, e := range pf.rec.all() {
			if e.Kind == "window" && e.Window == WinPIN {
				count++
			}
		}
		return count >= n
	}
}

// TestPinentryDialog: the dialog shows the holder, the tries, "all 8
// digits" and the last-try warning; the PIN field has the focus; fewer
// than 8 digits are refused in the dialog; the PIN goes back over Assuan.
func TestPinentryDialog(t *testing.T) {
	pf := newPromptFixture(t, "")
	answer := pf.serve(strings.Join([]string{
		"OPTION lc-messages=it_IT.UTF-8",
		"OPTION cie-holder=MARIO ROSSI",
		"SETDESC Firma del documento contratto.pdf%0A1 tentativo rimasto",
		"SETOK _Firma",
		"GETPIN",
		"BYE",
	}, "\n") + "\n")
	pf.until("the PIN dialog", pf.windowShown(1))
	w := pf.p.win
	c := w.Canvas()
	text := texts(c.Content())
	mustContain(t, "the PIN dialog", text, "Carta di Mario Rossi", "contratto.pdf", "tutte le 8 cifre del PIN",
		"le prime 4 dalla ricevuta del Comune", "1 tentativo rimasto", "Attenzione: è l'ultimo tentativo", "[Firma]", "[Annulla]")
	if w.Title() != "PIN della CIE — CIE Desktop" {
		t.Errorf("title %q", w.Title())
	}
	typeIn(t, c, "1234")
	pf.until("the refusal", func() bool { _, ok := pf.rec.last("result", WinPIN); return ok })
	mustContain(t, "the dialog after 4 digits", texts(c.Content()), "Il PIN ha 8 cifre: digitale tutte.")
	typeIn(t, c, "12345678")
	got := answer()
	want := "OK Pleased to meet you\nOK\nOK\nOK\nOK\nD 12345678\nOK\nOK closing connection\n"
	if got != want {
		t.Fatalf("Assuan answer:\n%s\nwant:\n%s", got, want)
	}
}

func TestPinentryCancelTimeoutRepeat(t *testing.T) {
	pf := newPromptFixture(t, "en")
	answer := pf.serve("SETERROR Wrong PIN%3A 2 tries left\nGETPIN\nSETTIMEOUT 1\nGETPIN\nSETTIMEOUT 0\nSETREPEAT Again:\nGETPIN\nCONFIRM\n")
	pf.until("the first dialog", pf.windowShown(1))
	c := pf.p.win.Canvas()
	mustContain(t, "the dialog with an error", texts(c.Content()), "Wrong PIN: 2 tries left", "2 tries left", "Type all 8 digits")
	mustNotContain(t, "the dialog with 2 tries", texts(c.Content()), "last try")
	press(t, c, fyne.KeyEscape) // Escape in the PIN field cancels

	pf.until("the second dialog", pf.windowShown(2))
	mustNotContain(t, "the second dialog", texts(c.Content()), "Wrong PIN") // SETERROR was for one dialog
	// Nobody answers: the timeout closes it.
	pf.until("the third dialog", pf.windowShown(3))
	if c.Focused() == nil {
		t.Fatal("the repeat dialog has no focus")
	}
	typeIn(t, c, "24681357")
	typeIn(t, c, "24681358")
	mustContain(t, "the repeat mismatch", texts(c.Content()), "The two new PINs differ.")
	typeIn(t, c, "24681357")
	typeIn(t, c, "24681357")
	pf.until("the confirm dialog", pf.windowShown(4))
	mustContain(t, "the confirm dialog", texts(c.Content()), "[OK]", "[Cancel]")
	press(t, c, fyne.KeySpace) // OK has the focus: Space presses it
	got := answer()
	want := "OK Pleased to meet you\nOK\n" +
		"ERR 83886179 Operation cancelled <Pinentry>\n" +
		"OK\n" +
		"ERR 83886142 Timeout <Pinentry>\n" +
		"OK\nOK\n" +
		"S PIN_REPEATED\nD 24681357\nOK\n" +
		"OK\n"
	if got != want {
		t.Fatalf("Assuan answer:\n%s\nwant:\n%s", got, want)
	}
	pf.p.Close()
}

func TestButtonLabels(t *testing.T) {
	for in, want := range map[string]string{"_OK": "OK", "": "def", "Sign__it": "Sign_it", "_Firma": "Firma"} {
		if got := label(in, "def"); got != want {
			t.Errorf("label(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTrayIconsArePNG: the tray gets each state's picture as PNG, the
// only format every tray accepts.
func TestTrayIconsArePNG(t *testing.T) {
	for _, k := range icon.Kinds() {
		r := trayIcons[k]
		if r == nil || !bytes.Equal(r.Content(), icon.PNG(k, 64)) {
			t.Errorf("tray icon %v is not the 64-pixel PNG", k)
		}
		if _, err := png.Decode(bytes.NewReader(r.Content())); err != nil {
			t.Errorf("tray icon %v: %v", k, err)
		}
	}
}

// TestSingleInstance: a second start reaches the first, which opens the
// window; a socket left by a dead instance is taken over.
func TestSingleInstance(t *testing.T) {
	dir, err := os.MkdirTemp("", "tray") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "cie-tray.sock")
	ln, err := ListenInstance(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var opened []string
	go ServeInstance(ln, func(name string) error {
		if name == "nonsense" {
			return errors.New("unknown window")
		}
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, name)
		return nil
	})
	if _, err := ListenInstance(path); !errors.Is(err, ErrRunning) {
		t.Fatalf("second instance: %v", err)
	}
	if err := SendInstance(path, WinChangePIN); err != nil {
		t.Fatal(err)
	}
	if err := SendInstance(path, "nonsense"); err == nil {
		t.Fatal("an unknown window was accepted")
	}
	mu.Lock()
	if len(opened) != 1 || opened[0] != WinChangePIN {
		t.Fatalf("opened %q", opened)
	}
	mu.Unlock()
	ln.Close()

	// A stale socket file (no listener) is replaced.
	stale, err := net.Listen("unix", path)
	if err == nil {
		stale.(*net.UnixListener).SetUnlinkOnClose(false)
		stale.Close()
	}
	ln2, err := ListenInstance(path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln2.Close()
}

// TestDesktopFiles: every launcher action opens a window cie-tray knows,
// and the icon they name is installed in every size.
func TestDesktopFiles(t *testing.T) {
	dir := filepath.Join("..", "installer", "linux", "desktop")
	for _, name := range []string{"cie-desktop.desktop", "cie-tray-autostart.desktop"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		execs := 0
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "Exec="):
				execs++
				args := strings.Fields(strings.TrimPrefix(line, "Exec="))
				if args[0] != "cie-tray" {
					t.Errorf("%s: Exec runs %q", name, args[0])
				}
				if len(args) == 3 && (args[1] != "--open" || !slices.Contains(WindowNames(), args[2])) {
					t.Errorf("%s: %q opens no known window", name, line)
				}
			case strings.HasPrefix(line, "Icon=") && strings.TrimPrefix(line, "Icon=") != icon.LauncherName:
				t.Errorf("%s: icon %q", name, line)
			}
		}
		if execs == 0 {
			t.Errorf("%s has no Exec", name)
		}
	}
}
