package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/sign"
)

// softSigner is a software key that, like the card, only signs PKCS#1 v1.5.
type softSigner struct{ k *rsa.PrivateKey }

func (s softSigner) Public() crypto.PublicKey { return &s.k.PublicKey }
func (s softSigner) Sign(_ io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	if _, isPSS := o.(*rsa.PSSOptions); isPSS {
		return nil, fmt.Errorf("PSS refused")
	}
	return rsa.SignPKCS1v15(nil, s.k, o.HashFunc(), d)
}

type cliFixture struct {
	dir  string
	ca   string // CA file
	opts sign.Options
}

func newCLIFixture(t *testing.T) cliFixture {
	t.Helper()
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: st.CACert.Raw}), 0o600)
	now := st.HolderCert.NotBefore.Add(2 * time.Hour)
	return cliFixture{dir: dir, ca: ca, opts: sign.Options{Signer: softSigner{st.HolderKey},
		Chain: []*x509.Certificate{st.HolderCert}, Now: func() time.Time { return now }}}
}

func (f cliFixture) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f cliFixture) cades(t *testing.T, data []byte, detached bool) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := sign.SignCAdES(context.Background(), &out, bytes.NewReader(data), int64(len(data)), sign.CAdESOptions{Options: f.opts, Detached: detached}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// runApp runs one subcommand method as Main would and returns the outputs,
// the message and the exit code.
func runApp(t *testing.T, cmd func(*app, context.Context, []string) error, args ...string) (stdout, stderr, msg string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{env: Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), in: bufio.NewReader(strings.NewReader("")), timeout: time.Minute}
	err := cmd(a, context.Background(), args)
	if err != nil {
		msg, code = describe(err)
	}
	return out.String(), errb.String(), msg, code
}

func TestVerifyCommand(t *testing.T) {
	f := newCLIFixture(t)
	data := []byte("Verbale dell'assemblea condominiale\n")
	p7m := f.write(t, "verbale.txt.p7m", f.cades(t, data, false))

	out, _, msg, code := runApp(t, (*app).verify, p7m, "--ca", f.ca)
	if code != 0 || !strings.Contains(out, "Signature 1: VALID") || !strings.Contains(out, "MARIO ROSSI, codice fiscale RSSMRA80A01H501U") ||
		!strings.Contains(out, "Result: 1 of 1 signatures valid.") || !strings.Contains(out, "Revocation was not checked") {
		t.Fatalf("verify with --ca: %d %q\n%s", code, msg, out)
	}
	// No trust anchor: never "valid", and the exit code says so.
	out, _, msg, code = runApp(t, (*app).verify, p7m)
	if code != ExitNotValid || !strings.Contains(msg, "signature 1 is untrusted: no trust anchor") || !strings.Contains(out, "Result: 0 of 1") ||
		!strings.Contains(out, "--ca FILE") {
		t.Fatalf("verify without --ca: %d %q\n%s", code, msg, out)
	}
	// JSON for programs.
	out, _, _, code = runApp(t, (*app).verify, "--json", "--ca", f.ca, p7m)
	var rep sign.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Signatures[0].Verdict != sign.VerdictValid ||
		rep.Signatures[0].Signer.FiscalCode != "RSSMRA80A01H501U" {
		t.Fatalf("verify --json: %d %v\n%s", code, err, out)
	}
	// A changed byte.
	b, _ := os.ReadFile(p7m)
	b[bytes.Index(b, []byte("assemblea"))] = 'A'
	bad := f.write(t, "bad.p7m", b)
	out, _, msg, code = runApp(t, (*app).verify, "--ca", f.ca, bad)
	if code != ExitNotValid || !strings.Contains(msg, "is invalid: the signed data was changed") || !strings.Contains(out, "INVALID") {
		t.Fatalf("tampered: %d %q\n%s", code, msg, out)
	}
	// Detached: the original is needed.
	p7s := f.write(t, "verbale.txt.p7s", f.cades(t, data, true))
	orig := f.write(t, "verbale.txt", data)
	if _, _, msg, code = runApp(t, (*app).verify, p7s, "--ca", f.ca); code != ExitError || !strings.Contains(msg, "give the original file") {
		t.Fatalf("detached without --data: %d %q", code, msg)
	}
	if out, _, msg, code = runApp(t, (*app).verify, p7s, "--data", orig, "--ca", f.ca); code != 0 {
		t.Fatalf("detached: %d %q\n%s", code, msg, out)
	}
	// Not a signed file.
	if _, _, msg, code = runApp(t, (*app).verify, orig); code != ExitUsage || !strings.Contains(msg, "neither a signed file") {
		t.Fatalf("plain file: %d %q", code, msg)
	}
	if _, _, msg, code = runApp(t, (*app).verify, p7m, "--ca", orig); code != ExitUsage || !strings.Contains(msg, "no certificate") {
		t.Fatalf("--ca with no certificate: %d %q", code, msg)
	}
}

func TestVerifyCommandPDF(t *testing.T) {
	f := newCLIFixture(t)
	doc := minimalPDF()
	d, err := sign.OpenPDF(bytes.NewReader(doc), int64(len(doc)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := d.Sign(context.Background(), &out, sign.PAdESOptions{Options: f.opts}); err != nil {
		t.Fatal(err)
	}
	signed := f.write(t, "doc-signed.pdf", out.Bytes())
	text, _, msg, code := runApp(t, (*app).verify, signed, "--ca", f.ca)
	if code != 0 || !strings.Contains(text, "PDF field:      Signature1 (ETSI.CAdES.detached), signs the whole document") ||
		!strings.Contains(text, "the PDF's /M entry") {
		t.Fatalf("verify PDF: %d %q\n%s", code, msg, text)
	}
	unsigned := f.write(t, "doc.pdf", doc)
	if _, _, msg, code = runApp(t, (*app).verify, unsigned); code != ExitError || !strings.Contains(msg, "not signed") {
		t.Fatalf("unsigned PDF: %d %q", code, msg)
	}
}

func TestExtractCommand(t *testing.T) {
	f := newCLIFixture(t)
	data := []byte("%PDF-1.4 contenuto firmato due volte\n")
	inner := f.cades(t, data, false)
	outer := f.cades(t, []byte(base64.StdEncoding.EncodeToString(inner)), false)
	p7m := f.write(t, "atto.pdf.p7m.p7m", outer)

	_, stderr, msg, code := runApp(t, (*app).extract, p7m)
	if code != 0 || !strings.Contains(stderr, "2 signed envelope(s) removed") || !strings.Contains(stderr, "were not verified") {
		t.Fatalf("extract: %d %q %q", code, msg, stderr)
	}
	got, err := os.ReadFile(filepath.Join(f.dir, "atto.pdf"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("extracted %q, %v", got, err)
	}
	// The default output is never overwritten.
	if _, _, msg, code = runApp(t, (*app).extract, p7m); code != ExitUsage || !strings.Contains(msg, "already exists") {
		t.Fatalf("second extract: %d %q", code, msg)
	}
	stdout, _, _, code := runApp(t, (*app).extract, p7m, "-o", "-")
	if code != 0 || stdout != string(data) {
		t.Fatalf("extract -o -: %d %q", code, stdout)
	}
	p7s := f.write(t, "x.p7s", f.cades(t, data, true))
	if _, _, msg, code = runApp(t, (*app).extract, p7s, "-o", filepath.Join(f.dir, "x")); code != ExitError || !strings.Contains(msg, "detached") {
		t.Fatalf("extract .p7s: %d %q", code, msg)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "x")); err == nil {
		t.Fatal("a failed extraction left its output")
	}
}

// TestSignCommandUsage checks the mistakes caught before the card is
// touched (these tests run without pcscd).
func TestSignCommandUsage(t *testing.T) {
	f := newCLIFixture(t)
	txt := f.write(t, "lettera.txt", []byte("ciao"))
	pdf := f.write(t, "doc.pdf", minimalPDF())
	p7m := f.write(t, "lettera.txt.p7m", f.cades(t, []byte("ciao"), false))
	png := f.write(t, "firma.png", []byte("not an image"))
	p7s := f.write(t, "lettera.txt.p7s", f.cades(t, []byte("ciao"), true))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "name one file"},
		{[]string{txt, pdf}, "name one file"},
		{[]string{txt, "--format", "xades"}, `--format "xades"`},
		{[]string{txt, "--format", "pades"}, "is not a PDF"},
		{[]string{pdf, "--detached"}, "are for CAdES"},
		{[]string{txt, "--visible"}, "are for PDF (PAdES)"},
		{[]string{txt, "--countersign", "1"}, "already signed"},
		{[]string{p7m, "--detached"}, "keeps its form"},
		{[]string{p7s}, "give the signed file with --data"},
		{[]string{pdf, "--rect", "1,2,3"}, "four numbers"},
		{[]string{pdf, "--rect", "500,700,300,100"}, "does not fit page 1"},
		{[]string{pdf, "--page", "3"}, "has 1 pages"},
		{[]string{pdf, "--image", png}, "not a PNG or JPEG"},
		{[]string{txt, "-o", txt}, "must not be the file being signed"},
		{[]string{p7m, "-o", p7m}, "must not be the file being signed"},
	} {
		_, _, msg, code := runApp(t, (*app).sign, tc.args...)
		if code != ExitUsage || !strings.Contains(msg, tc.want) {
			t.Errorf("cie sign %v: exit %d %q; want usage error %q", tc.args, code, msg, tc.want)
		}
	}
	os.WriteFile(txt+".p7m", nil, 0o600)
	if _, _, msg, code := runApp(t, (*app).sign, txt); code != ExitUsage || !strings.Contains(msg, "already exists") {
		t.Errorf("existing default output: %d %q", code, msg)
	}
	if _, _, msg, code := runApp(t, (*app).sign, filepath.Join(f.dir, "missing.pdf")); code != ExitError || !strings.Contains(msg, "cannot read") {
		t.Errorf("missing file: %d %q", code, msg)
	}
}

func TestDefaultNames(t *testing.T) {
	for _, tc := range []struct {
		in, format       string
		detached, signed bool
		want             string
	}{
		{"doc.pdf", "pades", false, false, "doc-signed.pdf"},
		{"doc.pdf", "cades", false, false, "doc.pdf.p7m"},
		{"doc.pdf", "cades", true, false, "doc.pdf.p7s"},
		{"doc.pdf.p7m", "cades", false, true, "doc.pdf-signed.p7m"},
	} {
		if got := defaultSignedName(tc.in, tc.format, tc.detached, tc.signed); got != tc.want {
			t.Errorf("%s (%s): %s, want %s", tc.in, tc.format, got, tc.want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	a := &app{env: Env{Stderr: &b}}
	p := a.progressBar("Signing", 1<<30)
	for done := int64(0); done <= 1<<30; done += 1 << 24 {
		p.update(done, 1<<30)
	}
	p.done()
	if !strings.Contains(b.String(), "100% of 1.0 GiB") || strings.Count(b.String(), "\r") != 65 {
		t.Fatalf("progress output: %q", b.String()[max(0, b.Len()-200):])
	}
	b.Reset()
	p = a.progressBar("Signing", 1000)
	p.update(1000, 1000)
	p.done()
	if b.Len() != 0 {
		t.Fatalf("a small file drew a bar: %q", b.String())
	}
}

// minimalPDF is a one-page PDF with a classic cross-reference table.
func minimalPDF() []byte {
	var b bytes.Buffer
	var offs []int
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
	}
	b.WriteString("%PDF-1.4\n")
	for i, o := range objs {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	x := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f\r\n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n\r\n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, x)
	return b.Bytes()
}
