package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// TestPair pairs a card from the CLI: the holder then shows in `cie status`
// without a PIN, the cache holds no PIN digit and is private to the user,
// the PKCS#11 module presents the card from it without any APDU, and
// unpairing removes it.
func TestPair(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	bin := testbench.BuildBinary(t, "./cmd/cie")
	card := bench.StartCard(t, "--family", "bit4id2023", "--state", stateCopy(t))
	defer card.Stop(t)
	reader := card.Reader()
	want := stateCertificate(t)

	runCIE(t, bin, reader, "", "status").expect(t, 0, "stdout", `Holder:\s+shown after the PIN`)
	runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "pair").expect(t, 0, "stdout", `paired: browsers now list its certificate`)

	r := runCIE(t, bin, reader, "", "status")
	h := cie.HolderFromCertificate(want)
	r.expect(t, 0, "stdout", `Holder:\s+`+regexp.QuoteMeta(h.GivenName+" "+h.Surname+", codice fiscale "+h.FiscalCode)+`\n`)
	r.expect(t, 0, "stdout", `paired on this computer`)
	runCIE(t, bin, reader, "", "status").expect(t, 0, "stdout", `PIN:\s+3 tries left`)

	// The card's record (certcache package doc): public data only, one
	// 0600 file in a 0700 directory, no PIN digit.
	dir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "cie-desktop", "certs")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".card") {
		t.Fatalf("cache directory %s: %v, err %v", dir, entries, err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v, want 0700", st.Mode().Perm())
	}
	file := filepath.Join(dir, entries[0].Name())
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, want 0600", st.Mode().Perm())
	}
	content, _ := os.ReadFile(file)
	if strings.Contains(string(content), defaultPIN) || strings.Contains(string(content), defaultPIN[:4]) {
		t.Errorf("the cache file holds PIN digits")
	}

	// The module, with the same configuration directory, presents the
	// paired card without a single APDU.
	module := buildModule(t, t.TempDir())
	resetStats(t, card)
	out, err := exec.Command("pkcs11-tool", "--module", module, "-L").CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool -L: %v\n%s", err, out)
	}
	mustMatch(t, "-L after cie pair", string(out), `token label\s+: `+regexp.QuoteMeta(h.GivenName+" "+h.Surname))
	if n := simAPDUs(t, card); n != 0 {
		t.Errorf("pkcs11-tool -L after cie pair: %d APDUs, want 0", n)
	}

	runCIE(t, bin, reader, "", "unpair").expect(t, 0, "stdout", `Card unpaired`)
	runCIE(t, bin, reader, "", "status").expect(t, 0, "stdout", `Holder:\s+shown after the PIN`)
	runCIE(t, bin, reader, "", "unpair").expect(t, 0, "stdout", `not paired on this computer`)
}
