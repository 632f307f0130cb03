package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// TestDoctor runs `cie doctor --bundle` against pcscd with a virtual
// Gemalto CIE, a user with a Chromium NSS database without the module, and reads the bundle back.
func TestDoctor(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	card := bench.StartCard(t, "--family", "gemalto")
	home := t.TempDir()
	t.Setenv("HOME", home)
	nssdb := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nssdb, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nssdb, "pkcs11.txt"), []byte("library=\nname=NSS Internal PKCS #11 Module\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "pkcs11.log")
	if err := os.WriteFile(logFile, []byte("C_Login PIN 12345678 serial 123456789012\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIE_PKCS11_LOG", logFile)
	bundle := filepath.Join(t.TempDir(), "diag.zip")

	var out bytes.Buffer
	a := &app{env: Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Version: "v9.9.9"}, log: slog.New(slog.DiscardHandler)}
	err := a.doctor(context.Background(), []string{"--bundle", bundle})
	got := out.String()
	for _, pattern := range []string{
		`(?m)^\[info\] versions: cie v9\.9\.9, go1\.`,
		`(?m)^\[ok\] pcscd: reachable$`,
		`(?m)^\[ok\] reader ` + regexp.QuoteMeta(card.Reader()) + `: contact, CIE \(Gemalto\), ATR [0-9A-F]+$`,
		`(?m)^\[(ok|FAIL)\] PKCS#11 module: `,
		`(?m)^\[(ok|warning|info)\] NFC kernel drivers: `,
		`(?m)^\[warning\] Chromium NSS DB ~/\.pki/nssdb: .*\n\s+→ cie browser register$`,
		`(?m)^\[(info|ok|warning)\] Firefox policy /etc/firefox/policies/policies\.json: `,
		`Diagnostics written to ` + regexp.QuoteMeta(bundle),
	} {
		if !regexp.MustCompile(pattern).MatchString(got) {
			t.Errorf("cie doctor output does not match %q:\n%s", pattern, got)
		}
	}
	if failed := strings.Contains(got, "[FAIL]"); failed != (err != nil) {
		t.Errorf("a failed check and the error disagree: err %v\n%s", err, got)
	}

	zr, zerr := zip.OpenReader(bundle)
	if zerr != nil {
		t.Fatalf("opening the bundle: %v", zerr)
	}
	defer zr.Close()
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = string(b)
	}
	if !strings.Contains(files["report.txt"], "pcscd: reachable") {
		t.Errorf("report.txt:\n%s", files["report.txt"])
	}
	if lg := files["logs/pkcs11.log"]; lg != "C_Login PIN [removed] serial 12**********\n" {
		t.Errorf("logs/pkcs11.log = %q", lg)
	}
}
