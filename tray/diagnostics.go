package tray

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/browser"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// ReaderInfo is one reader in the diagnostics.
type ReaderInfo struct {
	Name    string `json:"name"`
	Present bool   `json:"card_present"`
	Mute    bool   `json:"card_mute,omitempty"`
	ATR     string `json:"atr,omitempty"`    // hex
	Family  string `json:"family,omitempty"` // chip family when the ATR is a CIE's
}

// CardInfo is the card in the diagnostics: public facts only, read without
// the PIN and without spending a try. The ID Servizi is masked.
type CardInfo struct {
	Reader    string        `json:"reader"`
	Family    string        `json:"family"`
	IDServizi string        `json:"id_servizi_masked"`
	PIN       cie.PINStatus `json:"pin"`
	PUK       cie.PINStatus `json:"puk"`
}

// Diagnostics is what the diagnostics window shows and the support bundle
// holds. It never holds a PIN, and masks the card's numbers.
type Diagnostics struct {
	Time      time.Time    `json:"time"`
	Version   string       `json:"version"`
	OS        string       `json:"os"`
	GoVersion string       `json:"go"`
	Service   bool         `json:"pcsc_service_running"`
	Problem   string       `json:"problem,omitempty"` // why the service, readers or card could not be read
	Readers   []ReaderInfo `json:"readers"`
	Card      *CardInfo    `json:"card,omitempty"`
	// CardProblem is why the card could not be read, as a Problem name.
	CardProblem string `json:"card_problem,omitempty"`
	// Module is the PKCS#11 module the browsers should load, or
	// ModuleProblem why none was found.
	Module        string `json:"pkcs11_module,omitempty"`
	ModuleProblem string `json:"pkcs11_module_problem,omitempty"`
	// Browsers are the places the module is registered in, with its state
	// in each; BrowsersProblem is why they could not be read.
	Browsers        []BrowserInfo `json:"browsers,omitempty"`
	BrowsersProblem string        `json:"browsers_problem,omitempty"`
}

// AddBrowsers adds to d the module's registration in the browsers of
// setup (browser.Status: nothing is changed).
func (d *Diagnostics) AddBrowsers(setup BrowserSetup) {
	o := runBrowsers(setup, browsersStatus)
	if o.env.unsupported {
		d.BrowsersProblem = errUnsupported.Error()
		return
	}
	home := o.env.cfg.Home
	d.Module = o.env.cfg.Module
	if home != "" && strings.HasPrefix(d.Module, home+"/") {
		d.Module = "~" + strings.TrimPrefix(d.Module, home)
	}
	d.ModuleProblem = moduleProblem(o.env.moduleErr)
	d.Browsers = browserInfos(home, o.env.readOnly, o.reports)
	if o.err != nil {
		d.BrowsersProblem = strings.TrimPrefix(o.err.Error(), "browser: ")
	}
}

// GatherDiagnostics asks the PC/SC service for the readers and opens the
// card with open (on reader, or the one ChooseReader picks) to read its
// public state.
func GatherDiagnostics(ctx context.Context, reader string, open Opener, version string) Diagnostics {
	d := Diagnostics{
		Time: time.Now().UTC().Truncate(time.Second), Version: version,
		OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version(),
	}
	pc, err := pcsc.Establish()
	if err != nil {
		p, _ := cardsession.Classify(err)
		d.Problem = p.String()
		return d
	}
	d.Service = true
	names, err := pc.Readers()
	if err != nil {
		pc.Release()
		p, _ := cardsession.Classify(err)
		d.Problem = p.String()
		return d
	}
	for _, n := range names {
		ri := ReaderInfo{Name: n}
		if st, err := pc.Status(ctx, n); err == nil {
			ri.Present, ri.Mute = st.Present, st.Mute
			if st.Present {
				ri.ATR = fmt.Sprintf("%X", st.ATR)
				if f, ok := cie.FamilyByATR(st.ATR); ok {
					ri.Family = f.Name
				}
			}
		}
		d.Readers = append(d.Readers, ri)
	}
	pc.Release()
	if len(names) == 0 {
		d.Problem = cardsession.ProblemNoReader.String()
		return d
	}
	d.Card, d.CardProblem = cardDiagnostics(ctx, reader, open)
	return d
}

// cardDiagnostics reads the card's public state.
func cardDiagnostics(ctx context.Context, reader string, open Opener) (*CardInfo, string) {
	s, err := open(ctx, reader)
	if err != nil {
		p, _ := cardsession.Classify(err)
		return nil, p.String()
	}
	defer s.Close()
	c := s.Card
	ci := &CardInfo{Reader: s.Reader, Family: c.Family().Name, IDServizi: mask(c.IDServizi())}
	if ci.PIN, err = c.PINStatus(ctx); err == nil {
		ci.PUK, err = c.PUKStatus(ctx)
	}
	if err != nil {
		p, _ := cardsession.Classify(err)
		return ci, p.String()
	}
	return ci, ""
}

// Report is the diagnostics as text in the catalogue's language.
func (d Diagnostics) Report(c *Catalogue) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	line(c.T("diag.app"), c.T("app.name")+" "+d.Version+" ("+d.OS+", "+d.GoVersion+")")
	line(c.T("diag.time"), d.Time.Format(time.RFC3339))
	if d.Service {
		line(c.T("diag.service"), c.T("diag.running"))
	} else {
		line(c.T("diag.service"), c.T("diag.not_running")+" — "+c.T(noServiceKey()))
	}
	if d.Service {
		if len(d.Readers) == 0 {
			line(c.T("diag.readers"), c.T("problem.no_reader"))
		} else {
			line(c.T("diag.readers"), fmt.Sprint(len(d.Readers)))
		}
		for i, r := range d.Readers {
			state := c.T("diag.reader_empty")
			switch {
			case r.Mute:
				state = c.T("diag.reader_mute")
			case r.Present && r.Family != "":
				state = c.T("diag.reader_cie", map[string]any{"Family": r.Family, "ATR": r.ATR})
			case r.Present:
				state = c.T("diag.reader_card", map[string]any{"ATR": r.ATR})
			}
			fmt.Fprintf(&b, "  %d. %s — %s\n", i, r.Name, state)
		}
	}
	if d.Card != nil {
		line(c.T("diag.card"), c.T("status.card_value", map[string]any{"Family": d.Card.Family})+", "+d.Card.Reader)
		line(c.T("status.id_servizi"), d.Card.IDServizi)
		line("PIN", pinState(c, d.Card.PIN, cie.PIN))
		line("PUK", pinState(c, d.Card.PUK, cie.PUK))
	}
	if d.CardProblem != "" {
		line(c.T("diag.card"), c.T("diag.card_problem", map[string]any{"Problem": d.CardProblem}))
	}
	if d.Module != "" || d.ModuleProblem != "" {
		line(c.T("browsers.module"), moduleText(c, d.Module, d.ModuleProblem))
	}
	if len(d.Browsers) == 0 && d.BrowsersProblem != "" {
		line(c.T("diag.browsers"), d.BrowsersProblem)
	} else if len(d.Browsers) > 0 {
		n := 0
		for _, bi := range d.Browsers {
			if bi.State == browser.Registered && bi.Error == "" {
				n++
			}
		}
		line(c.T("diag.browsers"), c.N("browsers.status_summary", n, map[string]any{"Total": len(d.Browsers)}))
		b.WriteString(listText(c, d.Browsers))
		if d.BrowsersProblem != "" {
			fmt.Fprintf(&b, "  %s\n", c.T("browsers.failed", map[string]any{"Error": d.BrowsersProblem}))
		}
	}
	return b.String()
}

// mask keeps the last 4 characters of an identifier: "********9012".
func mask(s string) string {
	if len(s) <= 4 {
		return strings.Repeat("*", len(s))
	}
	return strings.Repeat("*", len(s)-4) + s[len(s)-4:]
}

var (
	// Codice fiscale: 6 letters, 2 digits, letter, 2 digits, letter, 3 digits, letter.
	fiscalCodeRE = regexp.MustCompile(`\b[A-Za-z]{6}[0-9LMNPQRSTUVlmnpqrstuv]{2}[A-Za-z][0-9LMNPQRSTUVlmnpqrstuv]{2}[A-Za-z][0-9LMNPQRSTUVlmnpqrstuv]{3}[A-Za-z]\b`)
	// Card numbers and ID Servizi: 9 or more digits in a row.
	longNumberRE = regexp.MustCompile(`\b[0-9]{9,}\b`)
	// The CIE document number: 2 letters, 5 digits, 2 letters (CA00000AA).
	cardNumberRE = regexp.MustCompile(`\b[A-Za-z]{2}[0-9]{5}[A-Za-z]{2}\b`)
)

// Redact masks in text the given values (names, numbers of the current
// card), and anything shaped like a codice fiscale, a CIE number or a long
// number (ID Servizi, PAN), keeping the last 4 characters.
func Redact(text string, values ...string) string {
	for _, v := range values {
		if len(strings.TrimSpace(v)) >= 3 {
			text = strings.ReplaceAll(text, v, mask(v))
		}
	}
	for _, re := range []*regexp.Regexp{fiscalCodeRE, cardNumberRE, longNumberRE} {
		text = re.ReplaceAllStringFunc(text, mask)
	}
	return text
}

// WriteBundle writes the support bundle to w: a zip with the diagnostics
// (text and JSON, in English), the end of the log and the settings, every
// file redacted with Redact(values...). PINs are never logged, so none can
// be in it.
func WriteBundle(w io.Writer, d Diagnostics, log []byte, s Settings, values ...string) error {
	z := zip.NewWriter(w)
	add := func(name string, body string) error {
		f, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: d.Time})
		if err != nil {
			return err
		}
		_, err = io.WriteString(f, Redact(body, values...))
		return err
	}
	js, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("writing the support bundle: %w", err)
	}
	set, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("writing the support bundle: %w", err)
	}
	logText := string(log)
	if logText == "" {
		logText = "(logging is off: turn it on in Settings, repeat the problem, then save the bundle again)\n"
	}
	for _, f := range []struct{ name, body string }{
		{"diagnostics.txt", d.Report(NewCatalogue("en"))},
		{"diagnostics.json", string(js) + "\n"},
		{"cie-tray.log", logText},
		{"settings.json", string(set) + "\n"},
	} {
		if err := add(f.name, f.body); err != nil {
			return fmt.Errorf("writing the support bundle: %w", err)
		}
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("writing the support bundle: %w", err)
	}
	return nil
}
