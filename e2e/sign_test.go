package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
	"github.com/ciedesktop/cie-desktop/pcsc"
	"github.com/ciedesktop/cie-desktop/sign"
)

// signTestCA is the simulator's test CA, the trust anchor of its holder certificate.
func signTestCA(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	path := filepath.Join(testbench.ModuleRoot(t), "testdata", "sim", "ca-cert.pem")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("no CA certificate in " + path)
	}
	return path, pool
}

// signTestPDF is a small PDF with a classic cross-reference table.
func signTestPDF() []byte {
	var b bytes.Buffer
	var offs []int
	content := "BT /F1 20 Tf 72 760 Td (Domanda di iscrizione) Tj ET\n"
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", len(content), content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
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

// signTestPNG is a handwritten-signature-like image: a dark stroke on a
// transparent background (RGBA with alpha).
func signTestPNG(t *testing.T) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 160, 60))
	for x := 10; x < 150; x++ {
		y := 30 + (x%40-20)/2
		for d := -2; d <= 2; d++ {
			img.SetNRGBA(x, y+d, color.NRGBA{10, 20, 120, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func signTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed: apt-get install %s", name, pkg)
	}
	return p
}

func signRunTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// signPdfsigValid checks with poppler that every signature of the PDF is
// valid and returns how many there are.
func signPdfsigValid(t *testing.T, path string) int {
	t.Helper()
	out, _ := signRunTool(t, signTool(t, "pdfsig", "poppler-utils"), path)
	parts := regexp.MustCompile(`(?m)^Signature #\d+:`).Split(out, -1)[1:]
	for i, p := range parts {
		if !strings.Contains(p, "Signature Validation: Signature is Valid.") || !strings.Contains(p, "ETSI.CAdES.detached") {
			t.Fatalf("pdfsig, signature %d:\n%s", i+1, out)
		}
	}
	return len(parts)
}

// TestSignWithCard signs through the real stack — cie-sim behind pcscd
// and vpcd, the cie package over PC/SC, the card's crypto.Signer — and has
// OpenSSL and poppler validate the results.
func TestSignWithCard(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	card := bench.StartCard(t, "--family", "stm3", "--state", stateCopy(t))
	defer card.Stop(t)
	caPath, roots := signTestCA(t)
	dir := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	conn, err := pc.Connect(ctx, card.Reader())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	atr, err := conn.ATR()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cie.Open(ctx, conn, atr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.VerifyPIN(ctx, []byte(defaultPIN)); err != nil {
		t.Fatal(err)
	}
	cert, err := c.Certificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opts := sign.Options{Signer: c.Signer(cert), Chain: []*x509.Certificate{cert}}
	vopts := sign.VerifyOptions{Roots: roots}

	t.Run("CAdES", func(t *testing.T) {
		data := make([]byte, 1<<20)
		rand.Read(data)
		in := filepath.Join(dir, "dati.bin")
		os.WriteFile(in, data, 0o600)
		var p7m bytes.Buffer
		if err := sign.SignCAdES(ctx, &p7m, bytes.NewReader(data), int64(len(data)), sign.CAdESOptions{Options: opts}); err != nil {
			t.Fatalf("SignCAdES with the card: %v", err)
		}
		path := filepath.Join(dir, "dati.bin.p7m")
		os.WriteFile(path, p7m.Bytes(), 0o600)
		out, err := signRunTool(t, signTool(t, "openssl", "openssl"), "cms", "-verify", "-inform", "DER", "-in", path,
			"-CAfile", caPath, "-purpose", "any", "-binary", "-out", filepath.Join(dir, "out.bin"))
		if err != nil || !strings.Contains(out, "CMS Verification successful") {
			t.Fatalf("openssl cms -verify: %v\n%s", err, out)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "out.bin")); !bytes.Equal(got, data) {
			t.Fatal("OpenSSL extracted other content")
		}
		rep, err := sign.VerifyCAdES(ctx, bytes.NewReader(p7m.Bytes()), nil, vopts)
		if err != nil || !rep.Valid() || rep.Signatures[0].Signer.FiscalCode != cie.HolderFromCertificate(cert).FiscalCode {
			t.Fatalf("VerifyCAdES: %v %+v", err, rep)
		}
		// A counter-signature by the same card leaves the first valid.
		var counter bytes.Buffer
		b := p7m.Bytes()
		if err := sign.AddCAdES(ctx, &counter, bytes.NewReader(b), int64(len(b)), nil, sign.AddOptions{Options: opts, Countersign: 1}); err != nil {
			t.Fatal(err)
		}
		rep, err = sign.VerifyCAdES(ctx, bytes.NewReader(counter.Bytes()), nil, vopts)
		if err != nil || !rep.Valid() || len(rep.Signatures[0].Countersignatures) != 1 {
			t.Fatalf("counter-signed: %v %+v", err, rep)
		}
	})

	t.Run("PAdES twice", func(t *testing.T) {
		doc := signTestPDF()
		d, err := sign.OpenPDF(bytes.NewReader(doc), int64(len(doc)))
		if err != nil {
			t.Fatal(err)
		}
		var once bytes.Buffer
		if err := d.Sign(ctx, &once, sign.PAdESOptions{Options: opts}); err != nil {
			t.Fatalf("PAdES with the card: %v", err)
		}
		d2, err := sign.OpenPDF(bytes.NewReader(once.Bytes()), int64(once.Len()))
		if err != nil {
			t.Fatal(err)
		}
		var twice bytes.Buffer
		vis := &sign.Appearance{Page: 1, Rect: sign.Rect{X: 300, Y: 80, W: 250, H: 70}, Image: signTestPNG(t)}
		if err := d2.Sign(ctx, &twice, sign.PAdESOptions{Options: opts, Visible: vis}); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "domanda-signed.pdf")
		os.WriteFile(path, twice.Bytes(), 0o600)
		if n := signPdfsigValid(t, path); n != 2 {
			t.Fatalf("pdfsig found %d signatures", n)
		}
		rep, err := sign.VerifyPDF(ctx, bytes.NewReader(twice.Bytes()), int64(twice.Len()), vopts)
		if err != nil || !rep.Valid() || len(rep.Signatures) != 2 || rep.Signatures[0].PDF.CoversWholeDocument {
			t.Fatalf("VerifyPDF: %v %+v", err, rep)
		}
	})
}

// TestSignCommands runs `cie sign`, `cie verify` and `cie extract` as a
// citizen would, through the real binary and PC/SC.
func TestSignCommands(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	bin := testbench.BuildBinary(t, "./cmd/cie")
	card := bench.StartCard(t, "--family", "gemalto", "--state", stateCopy(t))
	defer card.Stop(t)
	reader := card.Reader()
	caPath, _ := signTestCA(t)
	dir := t.TempDir()
	txt := filepath.Join(dir, "lettera.txt")
	os.WriteFile(txt, []byte("Egregio direttore,\nla presente per comunicare le mie dimissioni.\n"), 0o600)
	pdf := filepath.Join(dir, "domanda.pdf")
	os.WriteFile(pdf, signTestPDF(), 0o600)
	img := filepath.Join(dir, "firma.png")
	os.WriteFile(img, signTestPNG(t), 0o600)

	// CAdES: sign, verify with and without the CA, extract.
	runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "sign", txt).expect(t, 0, "stdout", `Signed \(CAdES signature \(\.p7m\)\): .*lettera\.txt\.p7m`)
	runCIE(t, bin, reader, "", "verify", txt+".p7m", "--ca", caPath).expect(t, 0, "stdout", `(?s)Signature 1: VALID.*codice fiscale [A-Z0-9]{16}.*Result: 1 of 1 signatures valid`)
	runCIE(t, bin, reader, "", "verify", txt+".p7m").expect(t, 11, "stderr", `untrusted: no trust anchor`)
	os.Rename(txt, txt+".orig")
	runCIE(t, bin, reader, "", "extract", txt+".p7m").expect(t, 0, "stderr", `1 signed envelope`)
	if a, b := signReadFile(t, txt), signReadFile(t, txt+".orig"); !bytes.Equal(a, b) {
		t.Fatal("cie extract wrote other content")
	}
	// A parallel signature, then a counter-signature of the first one.
	both := filepath.Join(dir, "lettera.txt-signed.p7m")
	runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "sign", txt+".p7m").expect(t, 0, "stdout", `parallel signature`)
	runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "sign", both, "--countersign", "1", "-o", filepath.Join(dir, "counter.p7m")).
		expect(t, 0, "stdout", `counter-signature of signature 1`)
	runCIE(t, bin, reader, "", "verify", filepath.Join(dir, "counter.p7m"), "--ca", caPath).
		expect(t, 0, "stdout", `(?s)Signature 1: VALID.*Counter-signature 1\.1: VALID.*Signature 2: VALID.*Result: 3 of 3`)
	// OpenSSL agrees.
	out, err := signRunTool(t, signTool(t, "openssl", "openssl"), "cms", "-verify", "-inform", "DER", "-in", txt+".p7m", "-CAfile", caPath, "-purpose", "any", "-out", "/dev/null")
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}

	// PAdES: invisible, then a second, visible signature; both stay valid.
	runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "sign", pdf).expect(t, 0, "stdout", `domanda-signed\.pdf`)
	signed := filepath.Join(dir, "domanda-signed.pdf")
	twice := filepath.Join(dir, "domanda-2.pdf")
	runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "sign", signed, "--visible", "--rect", "300,60,250,80", "--image", img, "-o", twice).
		expect(t, 0, "stdout", `PAdES`)
	runCIE(t, bin, reader, "", "verify", twice, "--ca", caPath).expect(t, 0, "stdout", `(?s)Signature 1: VALID.*signs revision 1 of 2.*Signature 2: VALID.*signs the whole document.*Result: 2 of 2`)
	if n := signPdfsigValid(t, twice); n != 2 {
		t.Fatalf("pdfsig found %d signatures", n)
	}
	// A tampered byte fails.
	b := signReadFile(t, twice)
	b[bytes.Index(b, []byte("Domanda"))] = 'd'
	os.WriteFile(twice, b, 0o600)
	runCIE(t, bin, reader, "", "verify", twice, "--ca", caPath).expect(t, 11, "stderr", `is invalid: the signed data was changed`)

	// A wrong PIN costs a try and signs nothing.
	runCIE(t, bin, reader, "11112222\n", "--pin-stdin", "sign", txt, "-o", filepath.Join(dir, "nope.p7m")).expect(t, 6, "stderr", `wrong PIN: 2 tries left`)
	if _, err := os.Stat(filepath.Join(dir, "nope.p7m")); err == nil {
		t.Fatal("a refused signature left a file")
	}
}

func signReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
