package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

const (
	defaultPIN = "12345678"
	defaultPUK = "87654321"
)

// families lists every chip family with the name `cie status` must print.
var families = []struct{ id, name string }{
	{"nxp", "NXP"},
	{"gemalto", "Gemalto"},
	{"gemalto2", "Gemalto2"},
	{"stm", "STM"},
	{"stm2", "STM2"},
	{"stm3", "STM3"},
	{"actalis", "Actalis"},
	{"actalis2023", "Actalis 2023"},
	{"actalis-b946", "Actalis B946"},
	{"bit4id", "Bit4id"},
	{"bit4id2023", "Bit4id 2023"},
	{"bit4id-b9547", "Bit4id B9547"},
}

// result is one run of the cie binary.
type result struct {
	stdout, stderr string
	code           int
}

func runCIE(t *testing.T, bin, reader, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--reader", reader}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running cie %v: %v", args, err)
	}
	return r
}

func (r result) expect(t *testing.T, code int, stream, pattern string) {
	t.Helper()
	text := r.stdout
	if stream == "stderr" {
		text = r.stderr
	}
	if r.code != code || !regexp.MustCompile(pattern).MatchString(text) {
		t.Fatalf("cie exited %d (want %d); %s does not match %q\nstdout:\n%s\nstderr:\n%s",
			r.code, code, stream, pattern, r.stdout, r.stderr)
	}
}

func stateCopy(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := exec.Command("cp", "-r", filepath.Join(testbench.ModuleRoot(t), "testdata", "sim"), dir).Run(); err != nil {
		t.Fatalf("copying the simulator state: %v", err)
	}
	return dir
}

func stateCertificate(t *testing.T) *x509.Certificate {
	t.Helper()
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatalf("loading the simulator state: %v", err)
	}
	return st.Certificate()
}

// TestFamilies runs the citizen's operations through pcscd + vpcd for every
// chip family: status, certificate, a signature, PIN change, blocking the PIN
// with three wrong tries, a wrong PUK and the unblock.
func TestFamilies(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	bin := testbench.BuildBinary(t, "./cmd/cie")
	want := stateCertificate(t)

	for _, fam := range families {
		t.Run(fam.id, func(t *testing.T) {
			card := bench.StartCard(t, "--family", fam.id, "--state", stateCopy(t))
			defer card.Stop(t)
			reader := card.Reader()

			// Status: chip family, ID Servizi, tries left without spending one.
			r := runCIE(t, bin, reader, "", "status")
			r.expect(t, 0, "stdout", `Card:\s+CIE 3\.0, chip `+regexp.QuoteMeta(fam.name)+`\n`)
			r.expect(t, 0, "stdout", `ID Servizi:\s+\d{12}\n`)
			r.expect(t, 0, "stdout", `PIN:\s+3 tries left`)
			r.expect(t, 0, "stdout", `PUK:\s+10 tries left`)

			// Certificate: exactly the card's certificate.
			r = runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "cert")
			r.expect(t, 0, "stderr", `Holder: `)
			block, _ := pem.Decode([]byte(r.stdout))
			if block == nil || !bytes.Equal(block.Bytes, want.Raw) {
				t.Fatalf("cie cert printed a different certificate:\n%s", r.stdout)
			}

			// A signature through the crypto.Signer over PC/SC verifies against the certificate.
			signThroughPCSC(t, reader, []byte(defaultPIN), want)

			// PIN change: the new PIN works, the old one no longer does.
			const newPIN = "24681357"
			r = runCIE(t, bin, reader, defaultPIN+"\n"+newPIN+"\n", "--pin-stdin", "pin", "change")
			r.expect(t, 0, "stdout", `PIN changed`)
			runCIE(t, bin, reader, newPIN+"\n", "--pin-stdin", "cert").expect(t, 0, "stdout", `BEGIN CERTIFICATE`)

			// Three wrong PINs: 2 left, 1 left (with the warning), then blocked.
			runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "cert").expect(t, 6, "stderr", `wrong PIN: 2 tries left`)
			runCIE(t, bin, reader, "11112222\n", "--pin-stdin", "cert").expect(t, 6, "stderr", `wrong PIN: 1 try left; one more wrong PIN blocks it`)
			r = runCIE(t, bin, reader, "11112222\n", "--pin-stdin", "cert")
			r.expect(t, 7, "stderr", `PIN is blocked: unblock it with the PUK \(cie pin unblock\)`)
			runCIE(t, bin, reader, "", "status").expect(t, 0, "stdout", `PIN:\s+blocked`)
			// Even the right PIN is refused now, and nothing is sent for it.
			runCIE(t, bin, reader, newPIN+"\n", "--pin-stdin", "cert").expect(t, 7, "stderr", `PIN is blocked`)

			// A wrong PUK counts down; the right one unblocks and sets a new PIN.
			const unblockedPIN = "13572468"
			runCIE(t, bin, reader, "11223344\n"+unblockedPIN+"\n", "--pin-stdin", "pin", "unblock").
				expect(t, 6, "stderr", `wrong PUK: 9 tries left`)
			runCIE(t, bin, reader, "", "status").expect(t, 0, "stdout", `PUK:\s+9 tries left`)
			runCIE(t, bin, reader, defaultPUK+"\n"+unblockedPIN+"\n", "--pin-stdin", "pin", "unblock").
				expect(t, 0, "stdout", `PIN unblocked`)
			runCIE(t, bin, reader, "", "status").expect(t, 0, "stdout", `PIN:\s+3 tries left`)
			runCIE(t, bin, reader, unblockedPIN+"\n", "--pin-stdin", "cert").expect(t, 0, "stdout", `BEGIN CERTIFICATE`)
		})
	}
}

// signThroughPCSC signs with the card's key through the Go packages over the
// real PC/SC stack and checks the signature against the certificate.
func signThroughPCSC(t *testing.T, reader string, pin []byte, cert *x509.Certificate) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatalf("establishing a PC/SC context: %v", err)
	}
	defer pc.Release()
	conn, err := pc.Connect(ctx, reader)
	if err != nil {
		t.Fatalf("connecting to %s: %v", reader, err)
	}
	defer conn.Close()
	atr, err := conn.ATR()
	if err != nil {
		t.Fatalf("reading the ATR: %v", err)
	}
	card, err := cie.Open(ctx, conn, atr, nil)
	if err != nil {
		t.Fatalf("opening the card: %v", err)
	}
	defer card.Close()
	if err := card.VerifyPIN(ctx, pin); err != nil {
		t.Fatalf("verifying the PIN: %v", err)
	}
	cardCert, err := card.Certificate(ctx)
	if err != nil {
		t.Fatalf("reading the certificate: %v", err)
	}
	var signer crypto.Signer = card.Signer(cardCert)
	digest := sha256.Sum256([]byte("Entra con CIE"))
	sig, err := signer.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("the card's signature does not verify against the certificate: %v", err)
	}
}

// TestCardProblems checks the messages for the cases a citizen meets:
// an unsupported card, a CIE whose ATR is unknown, a missing card, a PIN in
// the wrong format.
func TestCardProblems(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	bin := testbench.BuildBinary(t, "./cmd/cie")

	t.Run("foreign card", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "foreign", "--state", stateCopy(t))
		defer card.Stop(t)
		runCIE(t, bin, card.Reader(), "", "status").expect(t, 5, "stderr", `unsupported card \(ATR [0-9A-F]+\)`)
	})
	t.Run("unknown ATR is probed", func(t *testing.T) {
		// The historical bytes are zeroed, as some NFC readers report them.
		atr := "3B8F8001000000000000000000000000FF829000E3"
		card := bench.StartCard(t, "--family", "nxp", "--atr", atr, "--state", stateCopy(t))
		defer card.Stop(t)
		runCIE(t, bin, card.Reader(), "", "status").expect(t, 0, "stdout", `PIN:\s+3 tries left`)
	})
	t.Run("no card", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "gemalto", "--state", stateCopy(t))
		reader := card.Reader()
		card.Stop(t)
		runCIE(t, bin, reader, "", "status").expect(t, 4, "stderr", `no card in the reader`)
	})
	t.Run("PIN format", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "stm", "--state", stateCopy(t))
		defer card.Stop(t)
		reader := card.Reader()
		before, err := card.Control("stats")
		if err != nil {
			t.Fatal(err)
		}
		runCIE(t, bin, reader, "1234\n", "--pin-stdin", "cert").expect(t, 9, "stderr", `exactly 8 digits`)
		runCIE(t, bin, reader, defaultPIN+"\n11111111\n", "--pin-stdin", "pin", "change").expect(t, 9, "stderr", `new PIN is not accepted`)
		runCIE(t, bin, reader, defaultPIN+"\n12345678\n", "--pin-stdin", "pin", "change").expect(t, 9, "stderr", `new PIN is not accepted`)
		tries, err := card.Control("pin-tries")
		if err != nil || tries != "pin=3 puk=10" {
			t.Fatalf("after refused input the card reports %q (%v); want pin=3 puk=10 (before: %s)", tries, err, before)
		}
	})
}
