package tray

import (
	"context"
	"crypto/x509"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/sign"
)

// simRoots trusts the simulator's test CA, as a citizen's trust anchors
// would trust the CIE's.
func simRoots(t *testing.T) *x509.CertPool {
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AddCert(st.CACert)
	return p
}

func writeFile(t *testing.T, name string, b []byte) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSignPDFWithAVisibleSignature signs a PDF through the window, with
// the keyboard: path, Return, the placement top left, PIN, Return. The
// signed PDF verifies, and the signature sits where the preview showed it.
func TestSignPDFWithAVisibleSignature(t *testing.T) {
	f := newFixture(t, "gemalto")
	in := writeFile(t, "contratto.pdf", minimalPDF())
	w := f.openWin(WinSign)
	v := f.u.windows[WinSign].v.(*signView)
	c := w.Canvas()
	if c.Focused() != v.in {
		t.Fatal("the file field does not have the focus")
	}
	typeIn(t, c, in)
	if v.mode != modePAdES || v.pages != 1 || v.format.Selected != "PAdES (signed PDF)" {
		t.Fatalf("a PDF: mode %v, %d pages, format %q", v.mode, v.pages, v.format.Selected)
	}
	wantOut := strings.TrimSuffix(in, ".pdf") + "_signed.pdf"
	if v.out.Text != wantOut || c.Focused() != v.out {
		t.Fatalf("output %q (focus %v); want %q", v.out.Text, c.Focused(), wantOut)
	}
	test.Tap(v.visible)
	if !v.preview.Visible() {
		t.Fatal("no page preview for a visible signature")
	}
	v.corner.SetSelected("Top left")
	// Arrow keys on the preview move the rectangle; two lefts bring it back
	// to the margin's left edge (clamped at the page border).
	c.Focus(v.preview)
	press(t, c, "Right")
	if math.Abs(v.place.X-(margin+0.02)) > 1e-9 {
		t.Fatalf("arrow right moved the signature to x=%v", v.place.X)
	}
	press(t, c, "Left")
	c.Focus(v.pin)
	typeIn(t, c, simPIN)
	f.wait()
	res, _ := f.rec.last("result", WinSign)
	if !res.OK || !strings.Contains(res.Message, wantOut) {
		t.Fatalf("signing: %+v", res)
	}
	signed, err := os.ReadFile(wantOut)
	if err != nil {
		t.Fatal(err)
	}
	rep := verifyBytes(t, wantOut, simRoots(t))
	if !rep.Valid() || len(rep.Signatures) != 1 || rep.Format != sign.FormatPAdES {
		t.Fatalf("the signed PDF does not verify: %+v", rep.Signatures[0])
	}
	if got := rep.Signatures[0].Signer.FiscalCode; got == "" {
		t.Errorf("no signer in the report")
	}
	// The widget's rectangle: top left, 5 % from the edges, 200×60 points.
	rects := regexp.MustCompile(`/Rect\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]`).FindAllSubmatch(signed, -1)
	if len(rects) == 0 {
		t.Fatal("no widget rectangle in the signed PDF")
	}
	var r [4]float64
	for i := range r {
		r[i], _ = strconv.ParseFloat(string(rects[len(rects)-1][i+1]), 64)
	}
	want := [4]float64{0.05 * 595, 842 - 0.05*842 - 60, 0.05*595 + 200, 842 - 0.05*842}
	for i := range r {
		if math.Abs(r[i]-want[i]) > 1 {
			t.Fatalf("signature rectangle %v; want about %v", r, want)
		}
	}
	if pin, _ := f.tries(); pin != 3 {
		t.Errorf("PIN counter %d after a signature", pin)
	}
	if f.u.Status().Holder == "" {
		t.Error("the holder's name was not learned after the PIN")
	}
}

func verifyBytes(t *testing.T, path string, roots *x509.CertPool) *sign.Report {
	t.Helper()
	rep, err := verifyFile(context.Background(), path, "", sign.VerifyOptions{Roots: roots})
	if err != nil {
		t.Fatalf("verifying %s: %v", path, err)
	}
	return rep
}

// TestSignCAdESAddASignatureAndVerify: any file becomes a .p7m, a second
// signature is added to it, and the verify window reports both valid.
func TestSignCAdESAddASignatureAndVerify(t *testing.T) {
	f := newFixture(t, "stm")
	f.u.cfg.TrustRoots = simRoots(t)
	f.u.cfg.VerifyOffline = true
	in := writeFile(t, "domanda.txt", []byte("Domanda di iscrizione\n"))

	w := f.openWin(WinSign)
	v := f.u.windows[WinSign].v.(*signView)
	c := w.Canvas()
	typeIn(t, c, in)
	if v.mode != modeCAdES || v.out.Text != in+".p7m" || !v.format.Disabled() || v.pdfBox.Visible() {
		t.Fatalf("a text file: mode %v, output %q, format disabled %v", v.mode, v.out.Text, v.format.Disabled())
	}
	typeIn(t, c, "") // keep the output name, Return moves to the PIN
	typeIn(t, c, simPIN)
	f.wait()
	if res, _ := f.rec.last("result", WinSign); !res.OK {
		t.Fatalf("CAdES signing: %+v", res)
	}

	// A second signature on the .p7m.
	c.Focus(v.in)
	v.in.SetText("")
	typeIn(t, c, in+".p7m")
	cosigned := in + "-cosigned.p7m"
	if v.mode != modeAdd || v.out.Text != cosigned || !v.note.Visible() {
		t.Fatalf("a .p7m: mode %v, output %q", v.mode, v.out.Text)
	}
	c.Focus(v.pin)
	typeIn(t, c, simPIN)
	f.wait()
	if res, _ := f.rec.last("result", WinSign); !res.OK {
		t.Fatalf("adding a signature: %+v", res)
	}

	// The verify window, with the keyboard.
	vw := f.openWin(WinVerify)
	vv := f.u.windows[WinVerify].v.(*verifyView)
	vc := vw.Canvas()
	if vc.Focused() != vv.in {
		t.Fatal("the verify window's file field does not have the focus")
	}
	typeIn(t, vc, cosigned)
	f.wait()
	res, _ := f.rec.last("result", WinVerify)
	if !res.OK || !strings.HasPrefix(res.Message, "All 2 signatures are valid.") {
		t.Fatalf("verify: %+v", res)
	}
	mustContain(t, "the verify report", texts(vc.Content()), "Signature 1: valid", "Signature 2: valid", "Signer: ", "Integrity: ok")
	if vv.extract.Disabled() {
		t.Error("Save the content is disabled for a .p7m")
	}
	var out strings.Builder
	if err := vv.extractTo(&out, cosigned); err != nil || out.String() != "Domanda di iscrizione\n" {
		t.Fatalf("extracted %q, %v", out.String(), err)
	}

	// Without trust anchors the same file is intact but not "valid".
	f.u.cfg.TrustRoots = nil
	vc.Focus(vv.in)
	press(t, vc, "Return")
	f.wait()
	res, _ = f.rec.last("result", WinVerify)
	if res.OK || !strings.Contains(res.Message, "intact, but the certificate is not from a trusted authority") {
		t.Fatalf("verify without anchors: %+v", res)
	}

	// A damaged file is reported in words.
	bad := writeFile(t, "rotto.p7m", []byte("not a signature"))
	vv.in.SetText(bad)
	vc.Focus(vv.in)
	press(t, vc, "Return")
	f.wait()
	if res, _ := f.rec.last("result", WinVerify); res.OK || !strings.HasPrefix(res.Message, "Error: ") {
		t.Fatalf("damaged file: %+v", res)
	}
}

// TestSignRefusesBeforeTheCard: a short PIN, a missing file, an existing
// output are refused without touching the card; a wrong PIN spends one
// try, says how many remain and leaves no file behind.
func TestSignRefusesBeforeTheCard(t *testing.T) {
	f := newFixture(t, "gemalto")
	in := writeFile(t, "a.txt", []byte("x"))
	w := f.openWin(WinSign)
	v := f.u.windows[WinSign].v.(*signView)
	c := w.Canvas()
	before := f.sim.Stats().APDUs
	submit := func(path, out, pin string) string {
		v.in.SetText(path)
		v.choose(path)
		if out != "" {
			v.out.SetText(out)
		}
		c.Focus(v.pin)
		typeIn(t, c, pin)
		f.wait()
		res, _ := f.rec.last("result", WinSign)
		return res.Message
	}
	if msg := submit(in, "", "1234"); msg != "The PIN has 8 digits: type all of them. Nothing was sent to the card." {
		t.Errorf("short PIN: %q", msg)
	}
	if msg := submit(in+".missing", "", simPIN); !strings.Contains(msg, "cannot be read") {
		t.Errorf("missing file: %q", msg)
	}
	if msg := submit(in, in, simPIN); !strings.HasPrefix(msg, "Choose a name for the signed file") {
		t.Errorf("output = input: %q", msg)
	}
	exists := writeFile(t, "exists.p7m", []byte("x"))
	if msg := submit(in, exists, simPIN); !strings.Contains(msg, "already exists") {
		t.Errorf("existing output: %q", msg)
	}
	if after := f.sim.Stats().APDUs; after != before {
		t.Fatalf("refused input sent %d APDUs", after-before)
	}
	out := in + ".p7m"
	if msg := submit(in, out, "11112222"); msg != "Wrong PIN: 2 tries left." {
		t.Fatalf("wrong PIN: %q", msg)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a wrong PIN left a signed file")
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	mustContain(t, "the sign window after a wrong PIN", texts(c.Content()), "2 tries left")
}

func TestPlacementPresets(t *testing.T) {
	for corner, want := range map[int][2]float64{0: {0.55, 0.85}, 1: {0.05, 0.85}, 2: {0.55, 0.05}, 3: {0.05, 0.05}} {
		p := presetPlacement(corner, 0.4, 0.1)
		if math.Abs(p.X-want[0]) > 1e-9 || math.Abs(p.Y-want[1]) > 1e-9 {
			t.Errorf("corner %d: %+v, want x=%v y=%v", corner, p, want[0], want[1])
		}
	}
	if p := (placement{X: -1, Y: 2, W: 0.3, H: 0.2}).clamp(); p.X != 0 || math.Abs(p.Y-0.8) > 1e-9 {
		t.Errorf("clamp: %+v", p)
	}
}
