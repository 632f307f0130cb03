package sign

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

// signPDF signs doc with opts and returns the signed file.
func signPDF(t testing.TB, doc []byte, opts PAdESOptions) []byte {
	t.Helper()
	d, err := OpenPDF(bytes.NewReader(doc), int64(len(doc)))
	if err != nil {
		t.Fatalf("OpenPDF: %v", err)
	}
	var out bytes.Buffer
	if err := d.Sign(context.Background(), &out, opts); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !bytes.HasPrefix(out.Bytes(), doc) {
		t.Fatal("the signed PDF does not start with the original bytes")
	}
	return out.Bytes()
}

func verifyPDF(t testing.TB, doc []byte, opts VerifyOptions) *Report {
	t.Helper()
	r, err := VerifyPDF(context.Background(), bytes.NewReader(doc), int64(len(doc)), opts)
	if err != nil {
		t.Fatalf("VerifyPDF: %v", err)
	}
	return r
}

// pdfsig runs poppler's validator with an NSS database that trusts the
// test CA and returns its output per signature.
func pdfsig(t *testing.T, f fixture, doc []byte) []string {
	t.Helper()
	bin := tool(t, "pdfsig", "poppler-utils")
	certutil := tool(t, "certutil", "libnss3-tools")
	dir := t.TempDir()
	db := filepath.Join(dir, "nss")
	os.Mkdir(db, 0o700)
	if out, err := run(certutil, "-N", "-d", "sql:"+db, "--empty-password"); err != nil {
		t.Fatalf("certutil -N: %v\n%s", err, out)
	}
	if out, err := run(certutil, "-A", "-d", "sql:"+db, "-n", "test-ca", "-t", "CT,C,C", "-i", f.caFile(t)); err != nil {
		t.Fatalf("certutil -A: %v\n%s", err, out)
	}
	in := filepath.Join(dir, "doc.pdf")
	os.WriteFile(in, doc, 0o600)
	out, _ := run(bin, "-nssdir", "sql:"+db, in)
	parts := regexp.MustCompile(`(?m)^Signature #\d+:`).Split(out, -1)
	if len(parts) < 2 {
		t.Fatalf("pdfsig found no signature:\n%s", out)
	}
	return parts[1:]
}

// pdfcpuValidate runs pdfcpu's signature validation trusting the test CA.
func pdfcpuValidate(t *testing.T, f fixture, doc []byte) []*model.SignatureValidationResult {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	os.Mkdir(certs, 0o700)
	os.WriteFile(filepath.Join(certs, "testca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Raw}), 0o600)
	conf := pdfcpuConfig()
	old := model.TrustedCertDir
	model.TrustedCertDir = certs
	defer func() { model.TrustedCertDir = old }()
	in := filepath.Join(dir, "doc.pdf")
	os.WriteFile(in, doc, 0o600)
	res, err := api.ValidateSignatures(in, true, conf)
	if err != nil {
		t.Fatalf("pdfcpu ValidateSignatures: %v", err)
	}
	return res
}

func TestPAdESInvisible(t *testing.T) {
	f := testFixture(t)
	doc := makePDF(t, 2, false)
	signed := signPDF(t, doc, PAdESOptions{Options: f.opts(), Reason: "Accettazione", Location: "Roma"})

	r := verifyPDF(t, signed, f.verifyOpts())
	s := only(t, r)
	if !r.Valid() {
		t.Fatalf("verdict %s: %s (%v %v %v)", s.Verdict, s.Reason, s.Integrity, s.SigningCertificate, s.Chain)
	}
	if s.PDF.SubFilter != "ETSI.CAdES.detached" || !s.PDF.CoversWholeDocument || s.PDF.Field != "Signature1" {
		t.Errorf("pdf info %+v", s.PDF)
	}
	if s.Signer.FiscalCode != "RSSMRA80A01H501U" || s.SigningTime == nil || !s.SigningTime.Equal(f.now.Truncate(time.Second)) {
		t.Errorf("signer %+v time %v", s.Signer, s.SigningTime)
	}
	if !strings.Contains(s.SigningTimeSource, "/M") || len(s.Warnings) != 0 {
		t.Errorf("time source %q, warnings %v", s.SigningTimeSource, s.Warnings)
	}
	// PAdES B-B: no signing-time attribute in the CMS.
	sig := cmsOf(t, signed, 0)
	if _, found := findAttr(sig.attrs, oidSigningTime); found {
		t.Error("the CMS has a signing-time attribute")
	}
	if _, found := findAttr(sig.attrs, oidSigningCertificateV2); !found {
		t.Error("the CMS has no signing-certificate-v2")
	}
	for _, want := range []string{"/SubFilter /ETSI.CAdES.detached", "/Reason (Accettazione)", "/Location (Roma)", "/M (D:"} {
		if !bytes.Contains(signed[len(doc):], []byte(want)) {
			t.Errorf("the update lacks %q", want)
		}
	}

	out := pdfsig(t, f, signed)
	if len(out) != 1 || !strings.Contains(out[0], "Signature Validation: Signature is Valid.") ||
		!strings.Contains(out[0], "Signature Type: ETSI.CAdES.detached") ||
		!strings.Contains(out[0], "Total document signed") {
		t.Fatalf("pdfsig:\n%s", strings.Join(out, "\n"))
	}
	res := pdfcpuValidate(t, f, signed)
	if len(res) != 1 || !pdfcpuAccepts(res[0]) {
		t.Fatalf("pdfcpu: %v", res)
	}
}

// pdfcpuAccepts: pdfcpu found the signature intact and its chain resolved
// to the trusted test CA; with no OCSP responder or CRL in the test
// certificates its best verdict is "unknown: revocation status unknown".
func pdfcpuAccepts(r *model.SignatureValidationResult) bool {
	return r.Status == model.SignatureStatusValid ||
		r.Status == model.SignatureStatusUnknown && r.Reason == model.SignatureReasonCertRevocationUnknown
}

// cmsOf returns the i-th signature's first SignerInfo (in file order).
func cmsOf(t testing.TB, doc []byte, i int) *signerInfo {
	t.Helper()
	f, err := openPDFFile(bytes.NewReader(doc), int64(len(doc)))
	if err != nil {
		t.Fatal(err)
	}
	fields, err := signatureFields(f)
	if err != nil || len(fields) <= i {
		t.Fatalf("%d fields, %v", len(fields), err)
	}
	sd, err := readSignedData(bytes.NewReader(fields[i].sig.get("Contents").(pdfString)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return sd.signers[0]
}

func TestPAdESTwiceKeepsFirstValid(t *testing.T) {
	f := testFixture(t)
	for name, doc := range map[string][]byte{
		"xref table":  makePDF(t, 2, false),
		"xref stream": xrefStreamPDF(t, makePDF(t, 2, false)),
	} {
		t.Run(name, func(t *testing.T) {
			once := signPDF(t, doc, PAdESOptions{Options: f.opts()})
			signer2, cert2 := f.otherSigner(t, "VRDGPP80A01H501X/1", "GIUSEPPE", "VERDI", "VRDGPP80A01H501X", "")
			opts2 := PAdESOptions{Options: Options{Signer: signer2, Chain: []*x509.Certificate{cert2}, Now: func() time.Time { return f.now.Add(time.Hour) }},
				Visible: &Appearance{Page: 2, Rect: Rect{X: 300, Y: 60, W: 240, H: 70}, Image: signaturePNG(t)}}
			twice := signPDF(t, once, opts2)

			r := verifyPDF(t, twice, f.verifyOpts())
			if len(r.Signatures) != 2 || !r.Valid() {
				t.Fatalf("%d signatures, valid %v: %q, %q", len(r.Signatures), r.Valid(), r.Signatures[0].Reason, r.Signatures[len(r.Signatures)-1].Reason)
			}
			s1, s2 := r.Signatures[0], r.Signatures[1]
			if s1.Signer.Surname != "ROSSI" || s2.Signer.Surname != "VERDI" || s2.PDF.Field != "Signature2" {
				t.Errorf("order: %s (%s), %s (%s)", s1.Signer.Name, s1.PDF.Field, s2.Signer.Name, s2.PDF.Field)
			}
			if s1.PDF.CoversWholeDocument || s1.PDF.Revision != 1 || !s2.PDF.CoversWholeDocument || s2.PDF.Revision != 2 || s2.PDF.Revisions != 2 {
				t.Errorf("revisions: %+v %+v", s1.PDF, s2.PDF)
			}
			if len(s1.Warnings) != 1 || !strings.Contains(s1.Warnings[0], "changed after this signature") {
				t.Errorf("warnings of the first: %v", s1.Warnings)
			}

			out := pdfsig(t, f, twice)
			if len(out) != 2 {
				t.Fatalf("pdfsig found %d signatures", len(out))
			}
			for i, o := range out {
				if !strings.Contains(o, "Signature Validation: Signature is Valid.") {
					t.Errorf("pdfsig signature %d:\n%s", i+1, o)
				}
			}
			// NSS refuses the simulator's holder certificate for signing
			// (its extended key usage is TLS client only), so poppler's
			// trust verdict is checked on the second signer's certificate.
			if !strings.Contains(out[1], "Certificate Validation: Certificate is Trusted.") {
				t.Errorf("pdfsig does not trust the second signer through the test CA:\n%s", out[1])
			}
			if !strings.Contains(out[0], "Not total document signed") || !strings.Contains(out[1], "Total document signed") {
				t.Errorf("pdfsig coverage:\n%s", strings.Join(out, "\n"))
			}
			res := pdfcpuValidate(t, f, twice)
			if len(res) != 2 {
				t.Fatalf("pdfcpu found %d signatures", len(res))
			}
			for i, sr := range res {
				if !pdfcpuAccepts(sr) {
					t.Errorf("pdfcpu signature %d: %v", i+1, sr)
				}
			}
		})
	}
}

func TestPAdESTamperedByteFails(t *testing.T) {
	f := testFixture(t)
	doc := makePDF(t, 1, false)
	signed := signPDF(t, doc, PAdESOptions{Options: f.opts()})
	i := bytes.Index(signed, []byte("contratto di prova"))
	bad := bytes.Clone(signed)
	bad[i] = 'C'
	s := only(t, verifyPDF(t, bad, f.verifyOpts()))
	if s.Verdict != VerdictInvalid || !strings.Contains(s.Reason, "message digest differs") {
		t.Fatalf("tampered: %s %q", s.Verdict, s.Reason)
	}
	out := pdfsig(t, f, bad)
	if strings.Contains(out[0], "Signature is Valid") {
		t.Fatalf("pdfsig accepted a tampered PDF:\n%s", out[0])
	}
	if res := pdfcpuValidate(t, f, bad); res[0].Status != model.SignatureStatusInvalid {
		t.Fatalf("pdfcpu accepted a tampered PDF: %v", res[0])
	}

	// A /ByteRange that leaves out more than /Contents is refused even
	// though the bytes it covers are intact: widen the gap by one byte.
	re := regexp.MustCompile(`/ByteRange \[0 (\d+) +(\d+) +(\d+) *\]`)
	m := re.FindSubmatchIndex(signed)
	var b1, b2, b3 int
	parse3(t, signed, m, &b1, &b2, &b3)
	wide := bytes.Clone(signed)
	repl := []byte(padRange(b1-1, b2, b3, m[1]-m[0]))
	copy(wide[m[0]:m[1]], repl)
	s = only(t, verifyPDF(t, wide, f.verifyOpts()))
	if s.Verdict != VerdictInvalid || !strings.Contains(s.Reason, "leaves out more") {
		t.Fatalf("widened gap: %s %q", s.Verdict, s.Reason)
	}
}

func parse3(t *testing.T, b []byte, m []int, v ...*int) {
	t.Helper()
	for i, p := range v {
		n := 0
		for _, c := range b[m[2+2*i]:m[3+2*i]] {
			n = n*10 + int(c-'0')
		}
		*p = n
	}
}

func padRange(a, b, c, width int) string {
	s := "/ByteRange [0 " + strconv.Itoa(a) + " " + strconv.Itoa(b) + " " + strconv.Itoa(c)
	return s + strings.Repeat(" ", width-len(s)-1) + "]"
}

func TestPAdESKeepsFormAndAnnotations(t *testing.T) {
	f := testFixture(t)
	doc := makePDF(t, 1, true)
	signed := signPDF(t, doc, PAdESOptions{Options: f.opts(), Visible: &Appearance{Page: 1, Rect: Rect{X: 72, Y: 500, W: 200, H: 50}}})
	pf, err := openPDFFile(bytes.NewReader(signed), int64(len(signed)))
	if err != nil {
		t.Fatal(err)
	}
	cat, _, _ := pf.catalog()
	af, _ := pf.dict(cat.get("AcroForm"))
	fields, _ := pf.resolve(af.get("Fields"))
	if arr, _ := fields.(pdfArray); len(arr) != 2 || af.get("DA") == nil || af.get("SigFlags") != int64(3) {
		t.Fatalf("AcroForm after signing: %v fields, DA %v, SigFlags %v", fields, af.get("DA"), af.get("SigFlags"))
	}
	pages, _ := pf.pages()
	annots, _ := pf.resolve(pages[0].dict.get("Annots"))
	if arr, _ := annots.(pdfArray); len(arr) != 2 {
		t.Fatalf("page annotations after signing: %v", annots)
	}
	if err := api.ValidateContext(mustReadContext(t, signed)); err != nil {
		t.Fatalf("pdfcpu finds the signed document invalid: %v", err)
	}
	if !verifyPDF(t, signed, f.verifyOpts()).Valid() {
		t.Fatal("not valid")
	}
	out := pdfsig(t, f, signed)
	if !strings.Contains(out[0], "Signature is Valid") {
		t.Fatalf("pdfsig:\n%s", out[0])
	}
}

func mustReadContext(t *testing.T, doc []byte) *model.Context {
	t.Helper()
	ctx, err := api.ReadContext(bytes.NewReader(doc), pdfcpuConfig())
	if err != nil {
		t.Fatalf("pdfcpu cannot read the signed PDF: %v", err)
	}
	return ctx
}

// TestPAdESVisibleRendering renders the signed page with poppler and
// checks that the image's transparent pixels show the page behind them
// (not black), its opaque pixels their colour, and that the text is there.
func TestPAdESVisibleRendering(t *testing.T) {
	f := testFixture(t)
	doc := makePDF(t, 1, false)
	rect := Rect{X: 100, Y: 450, W: 300, H: 90}
	signed := signPDF(t, doc, PAdESOptions{Options: f.opts(), Visible: &Appearance{Page: 1, Rect: rect, Image: signaturePNG(t)}})
	pdftoppm := tool(t, "pdftoppm", "poppler-utils")
	dir := t.TempDir()
	in := filepath.Join(dir, "signed.pdf")
	os.WriteFile(in, signed, 0o600)
	if out, err := run(pdftoppm, "-r", "72", "-png", "-singlefile", in, filepath.Join(dir, "page")); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	pngData, _ := os.ReadFile(filepath.Join(dir, "page.png"))
	if dst := os.Getenv("SIGN_RENDER_OUT"); dst != "" {
		os.WriteFile(dst, pngData, 0o644)
	}
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		t.Fatal(err)
	}
	// At 72 dpi one point is one pixel; y grows downwards from the top (842).
	at := func(x, y float64) (r, g, b uint32) {
		r, g, b, _ = img.At(int(x), int(842-y)).RGBA()
		return r >> 8, g >> 8, b >> 8
	}
	// The 120×60 image fits half the width: scaled 1.25 to 150×75, centred
	// vertically (7.5 pt above the bottom); the text starts at 152.
	if r, g, b := at(rect.X+75, rect.Y+75); !(r > 150 && g < 60 && b < 60) {
		t.Errorf("opaque red part renders as %d,%d,%d", r, g, b)
	}
	if r, g, b := at(rect.X+75, rect.Y+45); !(r > 240 && g > 240 && b > 240) {
		t.Errorf("transparent part renders as %d,%d,%d over a white page (black box?)", r, g, b)
	}
	if r, g, b := at(rect.X+75, rect.Y+15); !(b > 200 && r > 100 && r < 160 && g > 100 && g < 160) {
		t.Errorf("half-transparent blue over white renders as %d,%d,%d, want about 127,127,255", r, g, b)
	}
	// The text at the right of the image: some dark pixels.
	dark := 0
	for x := rect.X + 155; x < rect.X+rect.W; x++ {
		for y := rect.Y; y < rect.Y+rect.H; y++ {
			if r, g, b := at(x, y); r < 100 && g < 100 && b < 160 {
				dark++
			}
		}
	}
	if dark < 100 {
		t.Errorf("only %d dark pixels where the name and date should be", dark)
	}
	// Outside the rectangle the page is unchanged (white above it).
	if r, g, b := at(rect.X+10, rect.Y+rect.H+20); r < 250 || g < 250 || b < 250 {
		t.Errorf("the page around the signature changed: %d,%d,%d", r, g, b)
	}
}

func TestPAdESErrors(t *testing.T) {
	f := testFixture(t)
	if _, err := OpenPDF(strings.NewReader("hello"), 5); !errors.Is(err, ErrPDF) {
		t.Errorf("not a PDF: %v", err)
	}
	doc := makePDF(t, 1, false)
	enc := bytes.Replace(doc, []byte("/Root 1 0 R"), []byte("/Encrypt 3 0 R /Root 1 0 R"), 1)
	if _, err := OpenPDF(bytes.NewReader(enc), int64(len(enc))); !errors.Is(err, ErrEncryptedPDF) {
		t.Errorf("encrypted: %v", err)
	}
	d, err := OpenPDF(bytes.NewReader(doc), int64(len(doc)))
	if err != nil {
		t.Fatal(err)
	}
	if d.NumPages() != 1 {
		t.Errorf("pages %d", d.NumPages())
	}
	if w, h, err := d.PageSize(1); err != nil || w != 595 || h != 842 {
		t.Errorf("page size %v×%v %v", w, h, err)
	}
	err = d.Sign(context.Background(), &bytes.Buffer{}, PAdESOptions{Options: f.opts(), Visible: &Appearance{Page: 2, Rect: Rect{W: 10, H: 10}}})
	if err == nil || !strings.Contains(err.Error(), "no page 2") {
		t.Errorf("page 2 of 1: %v", err)
	}
	err = d.Sign(context.Background(), &bytes.Buffer{}, PAdESOptions{Options: f.opts(), Visible: &Appearance{Page: 1, Rect: Rect{W: 10, H: 10}, Image: []byte("GIF89a")}})
	if !errors.Is(err, ErrBadImage) {
		t.Errorf("bad image: %v", err)
	}
	for p, wantErr := range map[string]error{"1": ErrCertifiedPDF, "2": nil} {
		cert := makePDF(t, 1, false, "/Perms << /DocMDP << /Type /Sig /Reference [<< /Type /SigRef /TransformMethod /DocMDP /TransformParams << /Type /TransformParams /P "+p+" /V /1.2 >> >>] >> >>")
		if _, err := OpenPDF(bytes.NewReader(cert), int64(len(cert))); !errors.Is(err, wantErr) {
			t.Errorf("certified with P %s: %v, want %v", p, err, wantErr)
		}
	}
	if _, err := VerifyPDF(context.Background(), bytes.NewReader(doc), int64(len(doc)), f.verifyOpts()); !errors.Is(err, ErrNoSignature) {
		t.Errorf("unsigned: %v", err)
	}
}
