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

	"github.com/ciedesktop/cie-desktop/internal/doctor"
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
	if err := os.WriteFile(logFile+".1", []byte("older record for RSSMRA80A01H501U\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIE_PKCS11_LOG", logFile)
	cache := filepath.Join(home, ".cache")
	t.Setenv("XDG_CACHE_HOME", cache)
	trayLogs := filepath.Join(cache, "cie-desktop", "logs")
	if err := os.MkdirAll(trayLogs, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"cie-tray.log": "tray now\n", "cie-tray.log.1": "tray before, card CA12345AB\n"} {
		if err := os.WriteFile(filepath.Join(trayLogs, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bundle := filepath.Join(t.TempDir(), "diag.zip")

	var out bytes.Buffer
	a := &app{env: Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Version: "v9.9.9"}, log: slog.New(slog.DiscardHandler)}
	err := a.doctor(context.Background(), []string{"--bundle", bundle, "--probe-card"})
	got := out.String()
	t.Logf("cie doctor:\n%s", got)
	for _, pattern := range []string{
		`(?m)^\[info\] versions: cie v9\.9\.9, go1\.`,
		`(?m)^\[ok\] pcscd: reachable$`,
		`(?m)^\[ok\] reader ` + regexp.QuoteMeta(card.Reader()) + `: contact, CIE \(Gemalto\), ATR [0-9A-F]+$`,
		// vpcd 0.8 answers no PC/SC part 10 request, so the CIE is asked.
		`(?m)^\[ok\] reader ` + regexp.QuoteMeta(card.Reader()) + ` extended-length APDUs: yes: an extended-length READ BINARY returned \d{3} bytes$`,
		`(?m)^\[info\] PKCS#11 module log: on in this environment: ` + regexp.QuoteMeta(logFile) + `, rotated at 1024 KiB, 3 old files kept$`,
		`(?m)^\[info\] tray log: ` + regexp.QuoteMeta(filepath.Join(trayLogs, "cie-tray.log.1")+", "+filepath.Join(trayLogs, "cie-tray.log")) + `$`,
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
	if lg := files["logs/pkcs11.log.1"]; lg != "older record for RS**************\n" {
		t.Errorf("logs/pkcs11.log.1 = %q", lg)
	}
	if lg := files["logs/cie-tray.log.1"]; lg != "tray before, card CA*******\n" || files["logs/cie-tray.log"] != "tray now\n" {
		t.Errorf("tray logs: %q, %q", files["logs/cie-tray.log"], lg)
	}
	if len(files) != 5 {
		t.Errorf("the bundle holds %d files, want report.txt and four logs", len(files))
	}
}

func TestLogChecks(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("CIE_PKCS11_LOG", "")
	if got := doctor.Format(logChecks()); got != "[info] PKCS#11 module log: off (set CIE_PKCS11_LOG=/path/to/file in the browser's environment to turn it on)\n" {
		t.Errorf("log off:\n%s", got)
	}
	t.Setenv("CIE_PKCS11_LOG", "/tmp/x.log")
	t.Setenv("CIE_PKCS11_LOG_MAX_KB", "64")
	t.Setenv("CIE_PKCS11_LOG_KEEP", "0")
	if got := doctor.Format(logChecks()); got != "[info] PKCS#11 module log: on in this environment: /tmp/x.log, rotated at 64 KiB, 0 old files kept\n" {
		t.Errorf("log on:\n%s", got)
	}
	t.Setenv("CIE_PKCS11_LOG_KEEP", "lots")
	if got := doctor.Format(logChecks()); !strings.HasPrefix(got, "[warning] PKCS#11 module log: on in this environment: /tmp/x.log, rotated at 64 KiB, 3 old files kept; rotlog: CIE_PKCS11_LOG_KEEP=\"lots\"") {
		t.Errorf("a bad KEEP:\n%s", got)
	}
}

// TestDoctorLeavesTheCardAlone: without --probe-card, `cie doctor` sends
// the CIE nothing (a browser logged in with it stays logged in) and says
// how to ask it.
func TestDoctorLeavesTheCardAlone(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	card := bench.StartCard(t, "--family", "gemalto")
	t.Setenv("HOME", t.TempDir())
	before, err := card.Control("stats")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	a := &app{env: Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Version: "v9.9.9"}, log: slog.New(slog.DiscardHandler)}
	a.doctor(context.Background(), nil)
	after, err := card.Control("stats")
	if err != nil {
		t.Fatal(err)
	}
	apdus := func(s string) string { return regexp.MustCompile(`apdus=\d+`).FindString(s) }
	if apdus(before) == "" || apdus(before) != apdus(after) {
		t.Errorf("cie doctor sent the card APDUs: %q → %q", before, after)
	}
	pattern := `(?m)^\[info\] reader ` + regexp.QuoteMeta(card.Reader()) + ` extended-length APDUs: unknown: .*cie doctor --probe-card`
	if !regexp.MustCompile(pattern).MatchString(out.String()) {
		t.Errorf("cie doctor output does not match %q:\n%s", pattern, out.String())
	}
}
