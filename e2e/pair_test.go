package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// TestPair pairs a card from the CLI: the holder then shows in `cie status`
// without a PIN, the cache holds no PIN digit and is private to the user,
// and unpairing removes it.
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

	dir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "cie-desktop", "certs")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("cache directory %s: %v entries, err %v", dir, len(entries), err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v, want 0700", st.Mode().Perm())
	}
	file := filepath.Join(dir, entries[0].Name())
	st, _ := os.Stat(file)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, want 0600", st.Mode().Perm())
	}
	content, _ := os.ReadFile(file)
	if strings.Contains(string(content), defaultPIN) || strings.Contains(string(content), defaultPIN[:4]) ||
		strings.Contains(string(content), string(want.Raw[:32])) {
		t.Errorf("the cache file holds the PIN or the certificate in clear")
	}

	runCIE(t, bin, reader, "", "unpair").expect(t, 0, "stdout", `Card unpaired`)
	runCIE(t, bin, reader, "", "status").expect(t, 0, "stdout", `Holder:\s+shown after the PIN`)
	runCIE(t, bin, reader, "", "unpair").expect(t, 0, "stdout", `not paired on this computer`)
}
