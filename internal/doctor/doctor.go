// Package doctor diagnoses a CIE Desktop installation: pcscd and the
// readers (and whether they carry extended-length APDUs, extended.go),
// NFC kernel drivers that take readers away from pcscd, the
// module's registration in the browsers, sandboxed (Snap, Flatpak)
// browsers, and versions. It also writes a diagnostics bundle with PINs
// removed and personal numbers masked.
package doctor

import (
	"archive/zip"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Status is the outcome of one check.
type Status int

// The outcomes of a check.
const (
	OK   Status = iota // works
	Info               // nothing wrong, worth knowing
	Warn               // may stop the card from working
	Fail               // stops the card from working
)

// String returns the label printed before the check.
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Info:
		return "info"
	case Warn:
		return "warning"
	case Fail:
		return "FAIL"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Check is one diagnosis: what was checked, the outcome, and what to do.
type Check struct {
	Name   string
	Status Status
	Detail string
	Fix    string // empty when there is nothing to do
}

// Reader is what the caller found about one PC/SC reader.
type Reader struct {
	Name        string
	CardPresent bool
	ATR         []byte
}

// Contactless reports whether the reader's name says it is an NFC reader
// (or the contactless interface of a dual reader).
func (r Reader) Contactless() bool {
	n := strings.ToLower(r.Name)
	for _, w := range []string{"contactless", "picc", "nfc", "acr122", "acr1252", "cl reader", " cl "} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// NFCDrivers are kernel modules that claim USB NFC readers (ACR122U and
// other PN53x-based ones) before pcscd can.
var NFCDrivers = []string{"pn533_usb", "pn533", "pn544", "port100", "nfc"}

// LoadedNFCDrivers returns the NFCDrivers listed in procModules (the
// contents of /proc/modules), in NFCDrivers order.
func LoadedNFCDrivers(procModules string) []string {
	loaded := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(procModules))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			loaded[f[0]] = true
		}
	}
	var out []string
	for _, d := range NFCDrivers {
		if loaded[d] {
			out = append(out, d)
		}
	}
	return out
}

// sandboxed are the Snap and Flatpak browsers: where they are installed
// (relative to the root, or to the home for ~/), and their name.
var sandboxed = []struct{ path, name, how string }{
	{"snap/firefox", "Firefox (Snap)", "snap"},
	{"snap/chromium", "Chromium (Snap)", "snap"},
	{"var/lib/flatpak/app/org.mozilla.firefox", "Firefox (Flatpak)", "flatpak"},
	{"var/lib/flatpak/app/org.chromium.Chromium", "Chromium (Flatpak)", "flatpak"},
	{"var/lib/flatpak/app/com.google.Chrome", "Google Chrome (Flatpak)", "flatpak"},
	{"~/.local/share/flatpak/app/org.mozilla.firefox", "Firefox (Flatpak, user)", "flatpak"},
	{"~/.local/share/flatpak/app/org.chromium.Chromium", "Chromium (Flatpak, user)", "flatpak"},
	{"~/.local/share/flatpak/app/com.google.Chrome", "Google Chrome (Flatpak, user)", "flatpak"},
}

// SandboxedBrowsers finds Snap and Flatpak browsers under root and home,
// with what to do for each: their sandbox hides the system's module.
func SandboxedBrowsers(root, home string) []Check {
	var out []Check
	for _, s := range sandboxed {
		p := filepath.Join(root, s.path)
		if rest, ok := strings.CutPrefix(s.path, "~/"); ok {
			p = filepath.Join(home, rest)
		}
		if _, err := os.Stat(p); err != nil {
			continue
		}
		c := Check{Name: s.name, Status: Warn, Detail: "installed at " + p}
		if s.how == "snap" {
			c.Fix = "a Snap browser cannot load modules from /usr/lib: use the distribution's .deb/.rpm browser, or p11-kit's client module through the snap's pcscd interface (snap connect " + filepath.Base(p) + ":pcscd)"
		} else {
			c.Fix = "a Flatpak browser sees only its runtime: allow PC/SC (flatpak override --user --socket=pcsc " + filepath.Base(p) + ") and use the distribution's browser for CIE logins"
		}
		out = append(out, c)
	}
	return out
}

var (
	// pinRE matches a PIN or PUK written with its name, to remove it.
	pinRE = regexp.MustCompile(`(?i)\b(pin|puk)(\s*[:=]\s*|\s+)\d{4,10}\b`)
	// cfRE matches an Italian codice fiscale.
	cfRE = regexp.MustCompile(`\b[A-Za-z]{6}\d{2}[A-Za-z]\d{2}[A-Za-z]\d{3}[A-Za-z]\b`)
	// panRE matches a CIE number (CA00000AA) or the chip's 12-digit serial (PAN).
	panRE = regexp.MustCompile(`\b([A-Za-z]{2}\d{5}[A-Za-z]{2}|\d{12})\b`)
)

// Mask removes PINs and PUKs and masks codici fiscali and card numbers in
// s, keeping their first two characters so a reader can tell them apart.
func Mask(s string) string {
	s = pinRE.ReplaceAllString(s, "$1$2[removed]")
	mask := func(m string) string { return m[:2] + strings.Repeat("*", len(m)-2) }
	s = cfRE.ReplaceAllStringFunc(s, mask)
	return panRE.ReplaceAllStringFunc(s, mask)
}

// Format prints the checks, one per line, with the fix indented below.
func Format(checks []Check) string {
	var b strings.Builder
	for _, c := range checks {
		fmt.Fprintf(&b, "[%s] %s: %s\n", c.Status, c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(&b, "        → %s\n", c.Fix)
		}
	}
	return b.String()
}

// Worst returns the worst status among checks (OK for none).
func Worst(checks []Check) Status {
	w := OK
	for _, c := range checks {
		if c.Status > w {
			w = c.Status
		}
	}
	return w
}

// WriteBundle writes a zip to w: report.txt (the report), and each log
// file under logs/ (by its base name; rotated files such as pkcs11.log.1
// are files like any other), at most maxLog bytes from its end starting at
// a whole line, all through Mask. Missing log files are noted in
// report.txt, not an error.
func WriteBundle(w io.Writer, report string, logFiles []string, maxLog int64, now time.Time) error {
	zw := zip.NewWriter(w)
	add := func(name string, data string) error {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: now})
		if err != nil {
			return fmt.Errorf("adding %s to the bundle: %w", name, err)
		}
		_, err = io.WriteString(f, Mask(data))
		return err
	}
	logFiles = slices.Clone(logFiles)
	sort.Strings(logFiles)
	var notes strings.Builder
	used := map[string]bool{}
	for _, lf := range logFiles {
		data, err := tailFile(lf, maxLog)
		if err != nil {
			fmt.Fprintf(&notes, "log %s: %v\n", lf, err)
			continue
		}
		name := "logs/" + filepath.Base(lf)
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("logs/%d-%s", i, filepath.Base(lf))
		}
		used[name] = true
		if err := add(name, data); err != nil {
			return err
		}
	}
	if err := add("report.txt", report+notes.String()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("writing the bundle: %w", err)
	}
	return nil
}

// tailFile reads at most max bytes from the end of path. When that cuts
// the file, the partial first line is dropped: a number cut in two would
// escape Mask.
func tailFile(path string, max int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	cut := st.Size() > max
	if cut {
		if _, err := f.Seek(st.Size()-max, io.SeekStart); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	if cut {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		} else {
			b = nil
		}
	}
	return string(b), err
}
