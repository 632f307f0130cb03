package doctor

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMask(t *testing.T) {
	in := "verify PIN 12345678 ok; pin=87654321; PUK: 1234567890\n" +
		"holder RSSMRA80A01H501U serial 123456789012 number CA12345AB\n" +
		"APDU 00A4040C status 9000 after 2 tries"
	got := Mask(in)
	for _, secret := range []string{"12345678", "87654321", "1234567890", "RSSMRA80A01H501U", "123456789012", "CA12345AB"} {
		if strings.Contains(got, secret) {
			t.Errorf("Mask left %q in:\n%s", secret, got)
		}
	}
	for _, kept := range []string{"PIN [removed]", "pin=[removed]", "PUK: [removed]", "RS**************", "12**********", "CA*******", "APDU 00A4040C status 9000 after 2 tries"} {
		if !strings.Contains(got, kept) {
			t.Errorf("Mask output lacks %q:\n%s", kept, got)
		}
	}
}

func TestLoadedNFCDrivers(t *testing.T) {
	mods := "pn533_usb 20480 0 - Live 0x0000000000000000\npn533 45056 1 pn533_usb, Live 0x0\nnfc 135168 1 pn533, Live 0x0\nusbhid 65536 0 - Live 0x0\n"
	got := LoadedNFCDrivers(mods)
	if strings.Join(got, ",") != "pn533_usb,pn533,nfc" {
		t.Fatalf("LoadedNFCDrivers = %q", got)
	}
	if got := LoadedNFCDrivers("usbhid 65536 0 - Live 0x0\nnfcx 1 0 - Live 0x0\n"); len(got) != 0 {
		t.Fatalf("LoadedNFCDrivers without NFC drivers = %q", got)
	}
}

func TestSandboxedBrowsers(t *testing.T) {
	root, home := t.TempDir(), t.TempDir()
	if got := SandboxedBrowsers(root, home); len(got) != 0 {
		t.Fatalf("nothing installed: %+v", got)
	}
	for _, d := range []string{filepath.Join(root, "snap", "firefox"), filepath.Join(home, ".local/share/flatpak/app/org.chromium.Chromium")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := SandboxedBrowsers(root, home)
	if len(got) != 2 || got[0].Name != "Firefox (Snap)" || got[1].Name != "Chromium (Flatpak, user)" {
		t.Fatalf("SandboxedBrowsers = %+v", got)
	}
	for _, c := range got {
		if c.Status != Warn || c.Fix == "" {
			t.Errorf("%s: status %s, fix %q", c.Name, c.Status, c.Fix)
		}
	}
	if !strings.Contains(got[0].Fix, "snap connect firefox:pcscd") || !strings.Contains(got[1].Fix, "--socket=pcsc org.chromium.Chromium") {
		t.Errorf("fixes: %q / %q", got[0].Fix, got[1].Fix)
	}
}

func TestContactless(t *testing.T) {
	for name, want := range map[string]bool{
		"ACS ACR122U PICC Interface 00 00":                   true,
		"Identiv uTrust 3700 F CL Reader [uTrust 3700 F] 00": true,
		"HID Global OMNIKEY 5422 Smartcard Reader 01":        false,
		"Virtual PCD 00 00":                                  false,
	} {
		if got := (Reader{Name: name}).Contactless(); got != want {
			t.Errorf("%q: Contactless = %v", name, got)
		}
	}
}

func TestFormatWorst(t *testing.T) {
	checks := []Check{{Name: "pcscd", Status: OK, Detail: "reachable"}, {Name: "readers", Status: Fail, Detail: "no reader", Fix: "plug one in"}}
	out := Format(checks)
	if out != "[ok] pcscd: reachable\n[FAIL] readers: no reader\n        → plug one in\n" {
		t.Fatalf("Format:\n%s", out)
	}
	if Worst(checks) != Fail || Worst(nil) != OK || Worst(checks[:1]) != OK {
		t.Fatal("Worst")
	}
}

func TestWriteBundle(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "pkcs11.log")
	old := strings.Repeat("old line\n", 1000)
	if err := os.WriteFile(logFile, []byte(old+"C_Login pin=12345678 for RSSMRA80A01H501U\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := WriteBundle(&buf, "[ok] card serial 123456789012\n", []string{logFile, filepath.Join(dir, "missing.log")}, 200, when); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = string(b)
		if !f.Modified.Equal(when) {
			t.Errorf("%s: modified %v", f.Name, f.Modified)
		}
	}
	if len(files) != 2 {
		t.Fatalf("bundle files: %v", len(files))
	}
	lg := files["logs/pkcs11.log"]
	// the last 200 bytes of the file, masked ("[removed]" is one byte longer than the PIN)
	if len(lg) > 201 || strings.Count(lg, "old line") > 20 || !strings.Contains(lg, "C_Login pin=[removed] for RS**************") || strings.Contains(lg, "12345678") {
		t.Errorf("logs/pkcs11.log (%d bytes):\n%s", len(lg), lg)
	}
	rep := files["report.txt"]
	if !strings.Contains(rep, "serial 12**********") || !strings.Contains(rep, "missing.log") {
		t.Errorf("report.txt:\n%s", rep)
	}
}

// TestWriteBundleRotated: rotated logs go into the bundle as files of
// their own, a tail that cuts a line drops it (a cut card number would
// escape masking), and logs with the same base name both stay.
func TestWriteBundleRotated(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	logFile := filepath.Join(dir, "pkcs11.log")
	for name, content := range map[string]string{
		"pkcs11.log":   "current serial 123456789012\n",
		"pkcs11.log.1": "first serial 123456789012\nsecond holder RSSMRA80A01H501U\n",
		"pkcs11.log.2": "oldest PIN 12345678\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, "pkcs11.log"), []byte("other\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// 40 bytes from the end of pkcs11.log.1 start inside "123456789012".
	logs := []string{logFile + ".2", logFile + ".1", logFile, filepath.Join(other, "pkcs11.log")}
	var buf bytes.Buffer
	if err := WriteBundle(&buf, "", logs, 40, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = string(b)
	}
	want := map[string]string{
		"logs/pkcs11.log":   "current serial 12**********\n",
		"logs/pkcs11.log.1": "second holder RS**************\n",
		"logs/pkcs11.log.2": "oldest PIN [removed]\n",
		"logs/2-pkcs11.log": "other\n",
		"report.txt":        "",
	}
	if len(files) != len(want) {
		t.Errorf("bundle holds %d files: %q", len(files), files)
	}
	for name, w := range want {
		if got, ok := files[name]; !ok || got != w {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, w)
		}
	}
	for name, got := range files {
		if strings.Contains(got, "789012") {
			t.Errorf("%s leaks digits of the card number: %q", name, got)
		}
	}
}
