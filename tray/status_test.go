package tray

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/lang"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/pcsc"
	"github.com/ciedesktop/cie-desktop/tray/icon"
)

var gemaltoATR = []byte{0x3B, 0x8F, 0x80, 0x01, 0x80, 0x31, 0x80, 0x65, 0xB0, 0x85, 0x04, 0x00, 0x11, 0x12, 0x0F, 0xFF, 0x82, 0x90, 0x00, 0x8A}

func cieStatus(pin, puk int) Status {
	return Status{
		Presence: CIEPresent, Reader: simReader, ATR: gemaltoATR, Family: "Gemalto", PAN: "0011223344AB",
		PIN: cie.PINStatus{Remaining: pin, Blocked: pin == 0}, PUK: cie.PINStatus{Remaining: puk, Blocked: puk == 0},
		TriesKnown: true,
	}
}

// TestTrayFollowsTheCard: icon, tooltip, menu line and notifications as
// the reader, the card and its PIN change.
func TestTrayFollowsTheCard(t *testing.T) {
	f := newFixture(t, "gemalto")
	u := f.u
	steps := []struct {
		st      Status
		icon    icon.Kind
		tooltip string
		notices []string
	}{
		{Status{Presence: NoService}, icon.NoReader, "CIE Desktop — The smart card service is not running", nil},
		{Status{Presence: NoReader}, icon.NoReader, "CIE Desktop — No card reader", nil},
		{Status{Presence: NoCard, Reader: simReader}, icon.NoCard, "CIE Desktop — No card on the reader", nil},
		{cieStatus(3, 10), icon.Present, "CIE Desktop — CIE ready: PIN, 3 tries left", []string{"CIE inserted: Your CIE is ready."}},
		{cieStatus(3, 10), icon.Present, "CIE Desktop — CIE ready: PIN, 3 tries left", nil},
		{cieStatus(1, 10), icon.Present, "CIE Desktop — CIE ready: PIN, 1 try left", nil},
		{cieStatus(0, 10), icon.Blocked, "CIE Desktop — CIE ready: PIN blocked", []string{"PIN blocked: The PIN of your CIE is blocked: unblock it with the PUK (menu Unblock PIN)."}},
		{cieStatus(0, 10), icon.Blocked, "CIE Desktop — CIE ready: PIN blocked", nil},
		{Status{Presence: NoCard, Reader: simReader}, icon.NoCard, "CIE Desktop — No card on the reader", []string{"Card removed: The card was taken off the reader."}},
		{Status{Presence: OtherCard, Reader: simReader, ATR: []byte{0x3B, 0x00}}, icon.NoCard, "CIE Desktop — The card on the reader is not a CIE", nil},
		{Status{Presence: NoReader}, icon.NoReader, "CIE Desktop — No card reader", []string{"Card removed: The card was taken off the reader."}},
	}
	for i, s := range steps {
		before := len(f.rec.all())
		u.SetStatus(s.st)
		f.wait()
		st := u.Status()
		if st.Icon() != s.icon || st.Tooltip(u.Catalogue()) != s.tooltip {
			t.Fatalf("step %d: icon %v tooltip %q; want %v %q", i, st.Icon(), st.Tooltip(u.Catalogue()), s.icon, s.tooltip)
		}
		var got []string
		for _, e := range f.rec.all()[before:] {
			if e.Kind == "notice" {
				got = append(got, e.Title+": "+e.Message)
			}
		}
		if !slices.Equal(got, s.notices) {
			t.Fatalf("step %d: notifications %q; want %q", i, got, s.notices)
		}
		// The menu's first line is the summary, disabled.
		m := u.trayMenu()
		if m.Items[0].Label != st.Summary(u.Catalogue()) || !m.Items[0].Disabled {
			t.Fatalf("step %d: first menu line %+v", i, m.Items[0])
		}
	}

	// The holder's name, once known, is in the tooltip and the notification.
	u.SetStatus(Status{Presence: NoCard})
	withName := cieStatus(3, 10)
	withName.Holder = "Mario Rossi"
	u.SetStatus(withName)
	f.wait()
	if n, _ := f.rec.last("notice", ""); n.Message != "The CIE of Mario Rossi is ready." {
		t.Errorf("insertion notice %q", n.Message)
	}
	if tip := u.Status().Tooltip(u.Catalogue()); tip != "CIE Desktop — CIE of Mario Rossi: PIN, 3 tries left" {
		t.Errorf("tooltip %q", tip)
	}
	// A holder learned in this session sticks to the card.
	u.learnHolder("0011223344AB", "Anna Bianchi")
	u.SetStatus(cieStatus(3, 10))
	if got := u.Status().Holder; got != "Anna Bianchi" {
		t.Errorf("holder %q", got)
	}

	// A blocked PUK: its own icon, notice and words.
	u.SetStatus(cieStatus(0, 0))
	f.wait()
	if n, _ := f.rec.last("notice", ""); n.Title != "PUK blocked" {
		t.Errorf("PUK notice %+v", n)
	}
	if u.Status().Icon() != icon.Blocked {
		t.Error("PUK blocked: not the blocked icon")
	}
}

func TestTrayMenuInEnglish(t *testing.T) {
	f := newFixture(t, "gemalto")
	var labels []string
	for _, it := range f.u.trayMenu().Items {
		if !it.IsSeparator {
			labels = append(labels, it.Label)
		}
	}
	want := []string{"No card reader", "Card status…", "Change PIN…", "Unblock PIN…", "Sign a file…", "Verify a signature…",
		"Browsers", "Diagnostics…", "Settings…", "About CIE Desktop", "Quit"}
	if !slices.Equal(labels, want) {
		t.Fatalf("menu %q; want %q", labels, want)
	}
	if m := f.u.trayMenu(); !m.Items[len(m.Items)-1].IsQuit {
		t.Error("the last item is not the quit item")
	}
	// Each item opens its window; the Browsers submenu's items open the
	// browsers window (registering in the fixture's own home).
	var sub []string
	for _, it := range f.u.trayMenu().Items {
		if it.Action != nil && !it.IsQuit {
			it.Action()
		}
		if it.ChildMenu != nil {
			for _, c := range it.ChildMenu.Items {
				sub = append(sub, c.Label)
				c.Action()
			}
		}
	}
	if want := []string{"Register in all browsers", "Remove from all browsers", "Show the browsers…"}; !slices.Equal(sub, want) {
		t.Errorf("the Browsers submenu %q; want %q", sub, want)
	}
	f.wait()
	for _, name := range WindowNames() {
		if f.u.window(name) == nil {
			t.Errorf("the menu did not open %s", name)
		}
	}
}

// TestMonitorProbesOnlyWhenTheCardChanges: the readers' states become a
// Status; the card is read when it arrives, not again for an unrelated
// change, and again when asked.
func TestMonitorProbesOnlyWhenTheCardChanges(t *testing.T) {
	probes := 0
	m := NewMonitor("", func(_ context.Context, reader string, atr []byte) Status {
		probes++
		return Status{Presence: CIEPresent, Reader: reader, ATR: atr, PAN: "X"}
	}, nil)
	ctx := context.Background()
	card := pcsc.ReaderStatus{Name: simReader, Present: true, ATR: gemaltoATR}
	other := pcsc.ReaderStatus{Name: "Virtual PCD 00 01"}

	if st := m.derive(ctx, nil, Status{}, false); st.Presence != NoReader {
		t.Fatalf("no readers: %v", st.Presence)
	}
	if st := m.derive(ctx, []pcsc.ReaderStatus{{Name: simReader}}, Status{}, false); st.Presence != NoCard || st.Reader != simReader {
		t.Fatalf("empty reader: %+v", st)
	}
	st := m.derive(ctx, []pcsc.ReaderStatus{card, other}, Status{Presence: NoCard}, false)
	if st.Presence != CIEPresent || probes != 1 {
		t.Fatalf("card arrives: %v, %d probes", st.Presence, probes)
	}
	if again := m.derive(ctx, []pcsc.ReaderStatus{card, other}, st, false); probes != 1 || again.PAN != "X" {
		t.Fatalf("unrelated change re-read the card (%d probes)", probes)
	}
	m.derive(ctx, []pcsc.ReaderStatus{card, other}, st, true)
	if probes != 2 {
		t.Fatalf("forced refresh did not read the card")
	}
	mute := pcsc.ReaderStatus{Name: simReader, Present: true, Mute: true}
	if st := m.derive(ctx, []pcsc.ReaderStatus{mute}, Status{}, false); st.Presence != CardTrouble {
		t.Fatalf("mute card: %v", st.Presence)
	}
	// Restricted to a reader that is gone: no reader.
	m.Reader = "ACR122"
	if st := m.derive(ctx, []pcsc.ReaderStatus{card}, Status{}, false); st.Presence != NoReader {
		t.Fatalf("restricted reader missing: %v", st.Presence)
	}
	m.Refresh()
	m.Refresh() // never blocks
}

// TestProbeReadsTheSimulatedCard runs the real Prober on the in-process card.
func TestProbeReadsTheSimulatedCard(t *testing.T) {
	f := newFixture(t, "actalis")
	st := ProbeWith(f.open, nil, nil)(context.Background(), simReader, f.sim.ATR())
	if st.Presence != CIEPresent || st.Family != "Actalis" || !st.TriesKnown || st.PIN.Remaining != 3 || st.PUK.Remaining != 10 || st.PAN == "" {
		t.Fatalf("probe: %+v", st)
	}
	f.setPresent(false)
	if st := ProbeWith(f.open, nil, nil)(context.Background(), simReader, nil); st.Presence != NoCard {
		t.Fatalf("probe without card: %v", st.Presence)
	}
}

// TestCataloguesAreComplete: both languages have the same messages, every
// message the code asks for exists, plurals have "one" and "other".
func TestCataloguesAreComplete(t *testing.T) {
	keys := map[string]map[string]any{}
	for _, l := range Languages {
		b, err := localeFS.ReadFile("locales/" + l + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s.json: %v", l, err)
		}
		keys[l] = m
		for k, v := range m {
			if p, ok := v.(map[string]any); ok && (p["one"] == nil || p["other"] == nil) {
				t.Errorf("%s.json: plural %s lacks one/other", l, k)
			}
		}
	}
	for k := range keys["en"] {
		if _, ok := keys["it"][k]; !ok {
			t.Errorf("it.json lacks %s", k)
		}
	}
	for k := range keys["it"] {
		if _, ok := keys["en"][k]; !ok {
			t.Errorf("en.json lacks %s", k)
		}
	}
	used := regexp.MustCompile(`\b(?:T|N|key)\("([a-z0-9_.]+)"(?:, "([a-z0-9_.]+)")?`)
	err := fs.WalkDir(os.DirFS("."), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(filepath.FromSlash(path))
		if err != nil {
			return err
		}
		for _, m := range used.FindAllStringSubmatch(string(src), -1) {
			for _, id := range m[1:] {
				if id != "" && keys["en"][id] == nil {
					t.Errorf("%s asks for message %q, which en.json lacks", path, id)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	it := NewCatalogue("it")
	if got := it.N("common.tries_left", 1); got != "1 tentativo rimasto" {
		t.Errorf("Italian singular: %q", got)
	}
	if got := it.N("common.tries_left", 2); got != "2 tentativi rimasti" {
		t.Errorf("Italian plural: %q", got)
	}
	if got := NewCatalogue("en").T("status.cie_of", map[string]any{"Holder": "Mario Rossi"}); got != "CIE of Mario Rossi" {
		t.Errorf("template: %q", got)
	}
	if got := it.T("no.such.message"); got != "no.such.message" {
		t.Errorf("missing message: %q", got)
	}
}

func TestLanguageFromLocale(t *testing.T) {
	for in, want := range map[string]string{
		"it_IT.UTF-8": "it", "it-CH": "it", "IT": "it", "en_GB": "en", "de_DE": "en", "C": "en", "": "en",
	} {
		if got := bestLanguage([]string{in}); got != want {
			t.Errorf("bestLanguage(%q) = %q, want %q", in, got, want)
		}
	}
	if got := bestLanguage([]string{"fr_FR", "it_IT"}); got != "it" {
		t.Errorf("second choice: %q", got)
	}
	t.Setenv("LANGUAGE", "")
	t.Setenv("LC_ALL", "it_IT.UTF-8")
	if got := NewCatalogue("").Lang(); got != "it" {
		t.Errorf("system language under LC_ALL=it_IT: %q", got)
	}
	t.Setenv("LC_ALL", "en_US.UTF-8")
	if got := NewCatalogue("").Lang(); got != "en" {
		t.Errorf("system language under LC_ALL=en_US: %q", got)
	}
	if got := NewCatalogue("it").Lang(); got != "it" {
		t.Errorf("explicit Italian: %q", got)
	}
}

// TestFyneDialogsInItalian: fyne's own dialogs (file picker) speak Italian
// on an Italian system.
func TestFyneDialogsInItalian(t *testing.T) {
	t.Setenv("LANGUAGE", "")
	t.Setenv("LC_ALL", "it_IT.UTF-8")
	addFyneItalian()
	// Adding the catalogue again makes fyne re-read the locale set above.
	if err := lang.AddTranslationsForLocale(fyneItalian, fyne.Locale("it")); err != nil {
		t.Fatal(err)
	}
	for en, it := range map[string]string{"Open": "Apri", "Save": "Salva", "Cancel": "Annulla", "New Folder": "Nuova cartella"} {
		if got := lang.L(en); got != it {
			t.Errorf("fyne's %q is %q in Italian, want %q", en, got, it)
		}
	}
	t.Setenv("LC_ALL", "en_US.UTF-8")
	if err := lang.AddTranslationsForLocale(fyneItalian, fyne.Locale("it")); err != nil {
		t.Fatal(err)
	}
	if got := lang.L("Open"); got != "Open" {
		t.Errorf("fyne's Open in English is %q", got)
	}
}
