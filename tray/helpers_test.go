package tray

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
)

const (
	simReader = "Virtual PCD 00 00"
	simPIN    = ciesim.DefaultPIN
	simPUK    = ciesim.DefaultPUK
)

// recorder keeps the UI's events.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// last returns the last event of kind (and window, when not empty).
func (r *recorder) last(kind, window string) (Event, bool) {
	ev := r.all()
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].Kind == kind && (window == "" || ev[i].Window == window) {
			return ev[i], true
		}
	}
	return Event{}, false
}

// fixture is the UI on fyne's test driver with an in-process simulated CIE.
type fixture struct {
	t   *testing.T
	u   *UI
	sim *ciesim.Card
	rec *recorder
	// opens counts the card openings.
	mu    sync.Mutex
	opens int
	// present is false to simulate an empty reader.
	present bool

	qmu   sync.Mutex
	queue []func()
}

func newFixture(t *testing.T, family string) *fixture {
	t.Helper()
	a := test.NewTempApp(t)
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatalf("loading the simulator state: %v", err)
	}
	sim, err := ciesim.New(ciesim.Config{Family: family, State: st})
	if err != nil {
		t.Fatalf("creating the simulated card: %v", err)
	}
	f := &fixture{t: t, sim: sim, rec: &recorder{}, present: true}
	// The browsers window and the diagnostics see a home of their own,
	// never the user's, with a module that passes browser.CheckModule.
	home := t.TempDir()
	f.u = New(a, Config{
		Version:  "1.2.3-test",
		Open:     f.open,
		Browsers: BrowserSetup{Home: home, Module: fakeModule(t, filepath.Join(home, "opt"))},
		Settings: Settings{Language: "en"},
		OnEvent:  f.rec.add,
		Diagnose: func(ctx context.Context) Diagnostics {
			d := Diagnostics{Version: "1.2.3-test", OS: "linux/amd64", GoVersion: "go", Service: true,
				Readers: []ReaderInfo{{Name: simReader, Present: true, ATR: "3B8F", Family: "Gemalto"}}}
			d.Card, d.CardProblem = cardDiagnostics(ctx, simReader, f.open)
			return d
		},
	})
	// Everything the background operations hand to the UI goroutine runs
	// on the test's goroutine, in f.wait, as fyne's UI code expects.
	f.u.do = f.post
	t.Cleanup(func() { f.u.tasks.Wait() })
	return f
}

// post queues fn for the UI goroutine (the test's, in wait).
func (f *fixture) post(fn func()) {
	f.qmu.Lock()
	defer f.qmu.Unlock()
	f.queue = append(f.queue, fn)
}

// wait runs the queued UI work until no operation runs and nothing is queued.
func (f *fixture) wait() {
	for {
		f.qmu.Lock()
		q := f.queue
		f.queue = nil
		f.qmu.Unlock()
		for _, fn := range q {
			fn()
		}
		if len(q) == 0 {
			if f.u.active.Load() == 0 {
				f.qmu.Lock()
				empty := len(f.queue) == 0
				f.qmu.Unlock()
				if empty {
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func (f *fixture) open(ctx context.Context, reader string) (*cardsession.Session, error) {
	f.mu.Lock()
	f.opens++
	present := f.present
	f.mu.Unlock()
	if !present {
		return nil, &cardsession.NoCardError{Reader: simReader}
	}
	c, err := cie.Open(ctx, f.sim, f.sim.ATR(), nil)
	if err != nil {
		return nil, err
	}
	return &cardsession.Session{Reader: simReader, Card: c}, nil
}

// openWin opens a window and waits for what it reads at start.
func (f *fixture) openWin(name string) fyne.Window {
	f.t.Helper()
	if err := f.u.Open(name); err != nil {
		f.t.Fatal(err)
	}
	f.wait()
	w := f.u.window(name)
	if w == nil {
		f.t.Fatalf("window %s did not open", name)
	}
	return w
}

// typeIn types text into whatever has the keyboard focus, then presses
// Return there, as a keyboard-only user would.
func typeIn(t *testing.T, c fyne.Canvas, text string) {
	t.Helper()
	if c.Focused() == nil {
		t.Fatalf("typing %q: nothing has the keyboard focus", text)
	}
	for _, r := range text {
		c.Focused().TypedRune(r)
	}
	press(t, c, fyne.KeyReturn)
}

func press(t *testing.T, c fyne.Canvas, key fyne.KeyName) {
	t.Helper()
	if c.Focused() == nil {
		t.Fatalf("pressing %s: nothing has the keyboard focus", key)
	}
	c.Focused().TypedKey(&fyne.KeyEvent{Name: key})
}

func (f *fixture) setPresent(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.present = on
}

// tries returns the simulated card's counters.
func (f *fixture) tries() (int, int) { return f.sim.Tries() }

// verifyPIN checks pin against the card (spending a try if wrong).
func (f *fixture) verifyPIN(pin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := f.open(ctx, simReader)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Card.VerifyPIN(ctx, []byte(pin))
}

// texts returns every label's text in o, in order.
func texts(o fyne.CanvasObject) string {
	var b strings.Builder
	for _, obj := range test.LaidOutObjects(o) {
		switch w := obj.(type) {
		case *widget.Label:
			if w.Visible() {
				b.WriteString(w.Text + "\n")
			}
		case *widget.RichText:
			if w.Visible() {
				for _, seg := range w.Segments {
					if ts, ok := seg.(*widget.TextSegment); ok {
						b.WriteString(ts.Text + "\n")
					}
				}
			}
		case *escButton:
			if w.Visible() {
				b.WriteString("[" + w.Text + "]\n")
			}
		}
	}
	return b.String()
}

func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Fatalf("%s does not say %q; it shows:\n%s", what, w, text)
		}
	}
}

func mustNotContain(t *testing.T, what, text string, nots ...string) {
	t.Helper()
	for _, w := range nots {
		if strings.Contains(text, w) {
			t.Fatalf("%s says %q; it shows:\n%s", what, w, text)
		}
	}
}

// minimalPDF returns a one-page A4 PDF with a correct cross-reference table.
func minimalPDF() []byte {
	var b strings.Builder
	b.WriteString("%PDF-1.4\n%\xE2\xE3\xCF\xD3\n")
	content := "BT /F1 12 Tf 72 720 Td (Contratto) Tj ET"
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R " +
			"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
	}
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return []byte(b.String())
}

// fakeModule writes a file that passes browser.CheckModule (an ELF
// header): registering the module only writes its path.
func fakeModule(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "libcie-pkcs11.so")
	if err := os.WriteFile(p, []byte("\x7fELF fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
