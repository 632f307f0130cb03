package tray

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/tray/icon"
)

// TestChangePINWithTheKeyboard changes the PIN through the window's
// widgets, using only the keyboard: the current PIN field has the focus
// when the window opens, Return moves to the next field and submits from
// the last one.
func TestChangePINWithTheKeyboard(t *testing.T) {
	f := newFixture(t, "gemalto")
	w := f.openWin(WinChangePIN)
	v := f.u.windows[WinChangePIN].v.(*pinView)
	c := w.Canvas()

	if w.Title() != "Change PIN — CIE Desktop" {
		t.Errorf("title %q", w.Title())
	}
	mustContain(t, "the change-PIN window", texts(c.Content()),
		"3 tries left", "the first 4 are on the receipt", "the last 4 in the letter", "not a run such as 12345678")
	if c.Focused() != v.first {
		t.Fatalf("the current-PIN field does not have the focus when the window opens (focus: %v)", c.Focused())
	}

	typeIn(t, c, simPIN)
	if c.Focused() != v.new1 {
		t.Fatalf("Return in the current-PIN field did not move to the new PIN")
	}
	typeIn(t, c, "24681357")
	typeIn(t, c, "24681357")
	f.wait()

	res, ok := f.rec.last("result", WinChangePIN)
	if !ok || !res.OK || !strings.Contains(res.Message, "PIN changed") {
		t.Fatalf("result %+v, want PIN changed", res)
	}
	mustContain(t, "the window after the change", texts(c.Content()), "PIN changed. Write down the new PIN")
	if pin, puk := f.tries(); pin != 3 || puk != 10 {
		t.Fatalf("card counters after the change: PIN %d, PUK %d; want 3, 10", pin, puk)
	}
	if err := f.verifyPIN("24681357"); err != nil {
		t.Fatalf("the new PIN does not verify: %v", err)
	}
	if !v.first.Disabled() || !v.submit.Disabled() {
		t.Errorf("the form stays editable after success")
	}
	if v.first.Text != "" || v.new1.Text != "" || v.new2.Text != "" {
		t.Errorf("the PIN fields still hold text after sending")
	}
}

// TestWrongPINsCountDownThenBlock: each wrong current PIN shows the tries
// left, the last try is announced, the third blocks the PIN, the tray
// turns red and a notification says so.
func TestWrongPINsCountDownThenBlock(t *testing.T) {
	f := newFixture(t, "nxp")
	f.u.SetStatus(Status{Presence: NoCard, Reader: simReader}) // the tray has seen the reader
	w := f.openWin(WinChangePIN)
	v := f.u.windows[WinChangePIN].v.(*pinView)
	c := w.Canvas()

	submit := func(old string) string {
		c.Focus(v.first)
		typeIn(t, c, old)
		typeIn(t, c, "24681357")
		typeIn(t, c, "24681357")
		f.wait()
		res, _ := f.rec.last("result", WinChangePIN)
		return res.Message
	}
	if msg := submit("11112222"); msg != "Wrong PIN: 2 tries left." {
		t.Fatalf("first wrong PIN: %q", msg)
	}
	if pin, _ := f.tries(); pin != 2 {
		t.Fatalf("card PIN counter %d after one wrong PIN", pin)
	}
	if v.warn.Visible() {
		t.Errorf("last-try warning shown with 2 tries left")
	}
	if c.Focused() != v.first {
		t.Errorf("after a wrong PIN the focus is not back on the current PIN")
	}
	msg := submit("11113333")
	if msg != "Wrong PIN: 1 try left. One more wrong PIN blocks it (you can then unblock it with the PUK)." {
		t.Fatalf("second wrong PIN: %q", msg)
	}
	if !v.warn.Visible() {
		t.Fatalf("no last-try warning with 1 try left")
	}
	mustContain(t, "the window with one try left", texts(c.Content()), "1 try left — the last one", "Warning: this is the last try")
	if msg := submit("11114444"); msg != "The PIN is blocked: unblock it with the PUK." {
		t.Fatalf("third wrong PIN: %q", msg)
	}
	if pin, puk := f.tries(); pin != 0 || puk != 10 {
		t.Fatalf("card counters %d/%d; want 0/10", pin, puk)
	}
	if !v.first.Disabled() || !v.goUnb.Visible() {
		t.Fatalf("blocked PIN: the form is still enabled or the unblock button is missing")
	}
	if f.u.Status().Icon() != icon.Blocked {
		t.Errorf("tray icon %v; want blocked", f.u.Status().Icon())
	}
	if n, ok := f.rec.last("notice", ""); !ok || n.Title != "PIN blocked" {
		t.Errorf("no PIN-blocked notification: %+v", n)
	}

	// The unblock button leads to the unblock window.
	test.Tap(v.goUnb)
	f.wait()
	if f.u.window(WinUnblockPIN) == nil || f.u.window(WinChangePIN) != nil {
		t.Fatalf("the unblock button did not replace the window")
	}
}

// TestUnblockWithThePUK: a wrong PUK counts down, the right one sets the
// new PIN and resets the PIN counter.
func TestUnblockWithThePUK(t *testing.T) {
	f := newFixture(t, "stm3")
	for _, wrong := range []string{"11112222", "11113333", "11114444"} {
		if err := f.verifyPIN(wrong); err == nil {
			t.Fatal("a wrong PIN verified")
		}
	}
	w := f.openWin(WinUnblockPIN)
	v := f.u.windows[WinUnblockPIN].v.(*pinView)
	c := w.Canvas()
	mustContain(t, "the unblock window", texts(c.Content()), "10 tries left", "The PUK has 8 digits")
	if c.Focused() != v.first {
		t.Fatal("the PUK field does not have the focus")
	}

	typeIn(t, c, "11223344")
	typeIn(t, c, "13572468")
	typeIn(t, c, "13572468")
	f.wait()
	if res, _ := f.rec.last("result", WinUnblockPIN); res.Message != "Wrong PUK: 9 tries left." {
		t.Fatalf("wrong PUK: %q", res.Message)
	}
	if pin, puk := f.tries(); pin != 0 || puk != 9 {
		t.Fatalf("card counters %d/%d; want 0/9", pin, puk)
	}
	mustContain(t, "the window after a wrong PUK", texts(c.Content()), "9 tries left")

	c.Focus(v.first)
	typeIn(t, c, simPUK)
	typeIn(t, c, "13572468")
	typeIn(t, c, "13572468")
	f.wait()
	if res, _ := f.rec.last("result", WinUnblockPIN); !res.OK || res.Message != "PIN unblocked and replaced by the new PIN." {
		t.Fatalf("unblock: %+v", res)
	}
	if pin, puk := f.tries(); pin != 3 || puk != 10 {
		t.Fatalf("card counters %d/%d after the unblock; want 3/10", pin, puk)
	}
	if err := f.verifyPIN("13572468"); err != nil {
		t.Fatalf("the new PIN does not verify: %v", err)
	}
	if f.u.Status().Icon() != icon.Present {
		t.Errorf("tray icon %v after the unblock; want present", f.u.Status().Icon())
	}
}

// TestRulesAreCheckedBeforeTheCard: every mistake of the official test
// plan (5 digits, letters, repeated digits, a run, differing repeats) is
// refused in the window and not a single APDU reaches the card.
func TestRulesAreCheckedBeforeTheCard(t *testing.T) {
	f := newFixture(t, "gemalto")
	w := f.openWin(WinChangePIN)
	v := f.u.windows[WinChangePIN].v.(*pinView)
	c := w.Canvas()
	before := f.sim.Stats().APDUs
	cases := []struct{ old, n1, n2, want string }{
		{"12345", "24681357", "24681357", "The current PIN must be exactly 8 digits."},
		{"1234abcd", "24681357", "24681357", "The current PIN must be exactly 8 digits."},
		{simPIN, "24681", "24681", "The new PIN must be exactly 8 digits."},
		{simPIN, "2468abcd", "2468abcd", "The new PIN must contain digits only."},
		{simPIN, "77777777", "77777777", "The new PIN must not repeat one digit"},
		{simPIN, "23456789", "23456789", "The new PIN must not be a run of consecutive digits"},
		{simPIN, "98765432", "98765432", "The new PIN must not be a run of consecutive digits"},
		{simPIN, "24681357", "24681358", "The two new PINs differ."},
		{simPIN, simPIN, simPIN, "The new PIN is the same as the current one."},
	}
	for _, tc := range cases {
		c.Focus(v.first)
		typeIn(t, c, tc.old)
		typeIn(t, c, tc.n1)
		typeIn(t, c, tc.n2)
		f.wait()
		res, _ := f.rec.last("result", WinChangePIN)
		if res.OK || !strings.HasPrefix(res.Message, tc.want) || !strings.HasSuffix(res.Message, "Nothing was sent to the card.") {
			t.Errorf("%s / %s / %s: %q; want %q… Nothing was sent", tc.old, tc.n1, tc.n2, res.Message, tc.want)
		}
	}
	if after := f.sim.Stats().APDUs; after != before {
		t.Fatalf("refused input sent %d APDUs to the card", after-before)
	}
	if pin, _ := f.tries(); pin != 3 {
		t.Fatalf("PIN counter %d", pin)
	}
}

func TestStatusWindowShowsTheCard(t *testing.T) {
	f := newFixture(t, "gemalto")
	w := f.openWin(WinStatus)
	text := texts(w.Canvas().Content())
	mustContain(t, "the status window", text, "Reader", simReader, "CIE 3.0, chip Gemalto",
		"ID Servizi", "3 tries left", "10 tries left", "Card number")
	// Keyboard: the focus is on a button, and the actions are enabled.
	v := f.u.windows[WinStatus].v.(*statusView)
	if w.Canvas().Focused() != v.close || v.change.Disabled() || v.unblock.Disabled() {
		t.Errorf("status window: focus %v, change disabled %v, unblock disabled %v",
			w.Canvas().Focused(), v.change.Disabled(), v.unblock.Disabled())
	}
	// No card: the window says so in words.
	f.setPresent(false)
	test.Tap(v.refresh)
	f.wait()
	mustContain(t, "the status window without a card", texts(w.Canvas().Content()), "No card on the reader: put your CIE on it.")
	if !v.change.Disabled() {
		t.Error("change PIN enabled without a card")
	}
	if f.u.Status().Presence != NoCard {
		t.Errorf("tray presence %v; want no-card", f.u.Status().Presence)
	}
}

func TestDiagnosticsAndSupportBundle(t *testing.T) {
	f := newFixture(t, "gemalto")
	w := f.openWin(WinDiagnostics)
	v := f.u.windows[WinDiagnostics].v.(*diagView)
	text := texts(w.Canvas().Content())
	mustContain(t, "the diagnostics", text, "Smart card service (pcscd): running", simReader,
		"CIE 3.0, chip Gemalto", "PIN: 3 tries left", "PUK: 10 tries left")
	if v.save.Disabled() {
		t.Fatal("save disabled after the diagnostics were read")
	}
	ctx := t.Context()
	s, err := f.open(ctx, simReader)
	if err != nil {
		t.Fatal(err)
	}
	id := s.Card.IDServizi()
	s.Close()
	if strings.Contains(text, id) || !strings.Contains(text, "********"+id[8:]) {
		t.Fatalf("the ID Servizi %s is not masked in:\n%s", id, text)
	}

	var buf bytes.Buffer
	if err := v.writeBundle(&buf); err != nil {
		t.Fatal(err)
	}
	z, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatalf("the bundle is not a zip: %v", err)
	}
	names := map[string]string{}
	for _, zf := range z.File {
		r, _ := zf.Open()
		b, _ := io.ReadAll(r)
		names[zf.Name] = string(b)
	}
	for _, n := range []string{"diagnostics.txt", "diagnostics.json", "cie-tray.log", "settings.json"} {
		if _, ok := names[n]; !ok {
			t.Errorf("bundle lacks %s", n)
		}
		if strings.Contains(names[n], id) || strings.Contains(names[n], simPIN) {
			t.Errorf("bundle file %s holds the ID Servizi or the PIN", n)
		}
	}
	mustContain(t, "the bundle's diagnostics", names["diagnostics.txt"], "Gemalto", "PIN: 3 tries left")
}

func TestRedact(t *testing.T) {
	in := "holder Mario Rossi RSSMRA80A01H501U card CA12345AB id 123456789012 pan 0011223344556677 atr 3B8F8001"
	out := Redact(in, "Mario Rossi")
	for _, secret := range []string{"Mario Rossi", "RSSMRA80A01H501U", "CA12345AB", "123456789012", "0011223344556677"} {
		if strings.Contains(out, secret) {
			t.Errorf("Redact kept %q: %s", secret, out)
		}
	}
	mustContain(t, "the redacted text", out, "*******ossi", "************501U", "*****45AB", "********9012", "3B8F8001")
}

// TestLanguageSwitch: settings → Italiano redraws the open windows and the
// tray menu in Italian and saves the choice.
func TestLanguageSwitch(t *testing.T) {
	f := newFixture(t, "gemalto")
	path := filepath.Join(t.TempDir(), "cfg", "tray.json")
	f.u.cfg.SettingsPath = path
	change := f.openWin(WinChangePIN)
	w := f.openWin(WinSettings)
	v := f.u.windows[WinSettings].v.(*settingsView)
	mustContain(t, "the settings", texts(w.Canvas().Content()), "Language", "Log level", "The log never holds PINs")

	v.lang.SetSelected("Italiano")
	f.wait()
	if w.Title() != "Impostazioni — CIE Desktop" || change.Title() != "Cambia PIN — CIE Desktop" {
		t.Fatalf("titles after switching: %q, %q", w.Title(), change.Title())
	}
	mustContain(t, "the change window in Italian", texts(change.Canvas().Content()),
		"Il PIN ha 8 cifre", "3 tentativi rimasti", "Cambia PIN")
	mustContain(t, "the settings in Italian", texts(w.Canvas().Content()), "Lingua", "Impostazioni salvate.")
	var labels []string
	for _, it := range f.u.trayMenu().Items {
		labels = append(labels, it.Label)
	}
	mustContain(t, "the tray menu", strings.Join(labels, "|"), "Stato della carta…", "Cambia PIN…", "Sblocca PIN…", "Diagnostica…", "Impostazioni…", "Esci")
	saved, err := LoadSettings(path)
	if err != nil || saved.Language != "it" {
		t.Fatalf("saved settings %+v, %v", saved, err)
	}

	// The log level is saved too, and the old value is not lost.
	v = f.u.windows[WinSettings].v.(*settingsView)
	v.logs.SetSelected("Debug")
	if saved, _ := LoadSettings(path); saved.LogLevel != LogDebug || saved.Language != "it" {
		t.Fatalf("saved settings %+v", saved)
	}
	// Back to the system language.
	v.lang.SetSelected("Come il sistema")
	if saved, _ := LoadSettings(path); saved.Language != "" {
		t.Fatalf("automatic language saved as %q", saved.Language)
	}
}

func TestAboutShowsTheVersion(t *testing.T) {
	f := newFixture(t, "gemalto")
	w := f.openWin(WinAbout)
	mustContain(t, "the about window", texts(w.Canvas().Content()), "CIE Desktop", "Version 1.2.3-test", "not a product of the Ministry")
	// Escape closes a window, even when a button has the focus.
	press(t, w.Canvas(), fyne.KeyEscape)
	if f.u.window(WinAbout) != nil {
		t.Fatal("Escape did not close the window")
	}
	if err := f.u.Open("nonsense"); err == nil {
		t.Fatal("Open accepted an unknown window")
	}
}

// TestCancelStopsTheOperation: the Stop button cancels a slow operation
// and the window says it did not complete.
func TestCancelStopsTheOperation(t *testing.T) {
	f := newFixture(t, "gemalto")
	f.sim.SetLatency(200 * time.Millisecond) // opening takes seconds
	if err := f.u.Open(WinStatus); err != nil {
		t.Fatal(err)
	}
	v := f.u.windows[WinStatus].v.(*statusView)
	if !v.t.busy() || !v.t.stop.Visible() {
		t.Fatal("no progress or stop button while reading")
	}
	test.Tap(v.t.stop)
	f.wait()
	res, _ := f.rec.last("result", WinStatus)
	if res.OK || res.Message != "Interrupted: the operation did not complete." {
		t.Fatalf("after Stop: %+v", res)
	}
	if v.t.busy() || v.t.bar.Visible() {
		t.Fatal("progress still shown after Stop")
	}
}

func TestSettingsAndLogFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tray.json")
	if s, err := LoadSettings(path); err != nil || s != (Settings{}) {
		t.Fatalf("missing file: %+v, %v", s, err)
	}
	if err := (Settings{Language: "it", LogLevel: LogInfo}).Save(path); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadSettings(path); err != nil || s.Language != "it" || s.LogLevel != LogInfo {
		t.Fatalf("round trip: %+v, %v", s, err)
	}
	os.WriteFile(path, []byte(`{"language":"fr","log_level":"loud"}`), 0o600)
	if s, err := LoadSettings(path); err != nil || s.Language != "" || s.LogLevel != LogOff {
		t.Fatalf("unknown values: %+v, %v", s, err)
	}

	logPath := filepath.Join(dir, "logs", "cie-tray.log")
	l := NewLogFile(logPath, LogOff)
	l.Logger().Error("not written")
	if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("logging off created the file: %v", err)
	}
	l.SetLevel(LogInfo)
	log := l.Logger()
	log.Debug("too detailed")
	log.Info("card inserted", "family", "Gemalto")
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), "card inserted") || strings.Contains(string(b), "too detailed") {
		t.Fatalf("log content:\n%s", b)
	}
	// Rotation keeps the log bounded.
	big := strings.Repeat("x", 4096)
	for range 2 * maxLogSize / 4096 {
		log.Info(big)
	}
	l.Close()
	cur, _ := os.Stat(logPath)
	old, err := os.Stat(logPath + ".1")
	if err != nil || cur.Size() > maxLogSize || old.Size() > maxLogSize {
		t.Fatalf("rotation: current %d, old %v %v", cur.Size(), old, err)
	}
	if tail := l.Tail(100); len(tail) != 100 {
		t.Fatalf("Tail(100) gave %d bytes", len(tail))
	}
}

func TestHolderName(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"MARIO", "ROSSI"}:         "Mario Rossi",
		{"ANNA MARIA", "D'ANGELO"}: "Anna Maria D'Angelo",
		{"Giulia", "De Luca"}:      "Giulia De Luca",
		{"LUCA", "ROSSI-BIANCHI"}:  "Luca Rossi-Bianchi",
		{"", "ROSSI"}:              "Rossi",
		{"NICCOLÒ", "DELL'ORTO"}:   "Niccolò Dell'Orto",
	} {
		if got := HolderName(cie.Holder{GivenName: in[0], Surname: in[1]}); got != want {
			t.Errorf("HolderName(%q) = %q, want %q", in, got, want)
		}
	}
}
