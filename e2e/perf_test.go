package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// simAPDUs returns the APDUs the card counted since its last "stats reset".
func simAPDUs(t *testing.T, card *testbench.Card) int {
	t.Helper()
	stats, err := card.Control("stats")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(stats, "apdus=%d", &n); err != nil {
		t.Fatalf("stats %q: %v", stats, err)
	}
	return n
}

func resetStats(t *testing.T, card *testbench.Card) {
	t.Helper()
	if ans, err := card.Control("stats reset"); err != nil || ans != "ok" {
		t.Fatalf("stats reset: %q %v", ans, err)
	}
}

// TestPerfPKCS11Budget checks the APDU targets of the performance issue
// through the real path (the .so, pcscd, vpcd, cie-sim's own counter), each
// step in a fresh process: the first pairing at most 40 APDUs; then, with
// the card paired, start-up (C_Initialize, C_GetSlotList, C_GetTokenInfo)
// 0 APDUs, C_Login + first C_Sign at most 22, a further C_Sign at most 3.
func TestPerfPKCS11Budget(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	module := buildModule(t, t.TempDir())
	harness := buildHarness(t)
	card := bench.StartCard(t, "--family", "gemalto")
	p := newP11(t, module, card.Reader())

	first := p.steps(harness, card) // no cache: this process pairs the card
	pairing := first[0].apdus + first[1].apdus
	t.Logf("first pairing (start-up, C_OpenSession, C_Login): %d APDUs", pairing)
	if pairing > 40 {
		t.Errorf("first pairing: %d APDUs, over 40", pairing)
	}

	got := p.steps(harness, card)
	for _, st := range got {
		t.Logf("paired, fresh process: %-42s %3d APDUs", st.name, st.apdus)
	}
	if got[0].apdus != 0 {
		t.Errorf("start-up with a paired card: %d APDUs, want 0", got[0].apdus)
	}
	if n := got[1].apdus + got[2].apdus; n > 22 {
		t.Errorf("C_Login + first C_Sign: %d APDUs, over 22", n)
	}
	if got[3].apdus > 3 {
		t.Errorf("further C_Sign: %d APDUs, over 3", got[3].apdus)
	}

	// pkcs11-tool -L, a whole process, shows the holder without any APDU.
	resetStats(t, card)
	mustMatch(t, "-L", p.tool("-L"), `token label\s+: MARIO ROSSI\s*\n`)
	if n := simAPDUs(t, card); n != 0 {
		t.Errorf("pkcs11-tool -L with a paired card: %d APDUs, want 0", n)
	}
}

// otherCardState returns a copy of the simulator state with another chip
// serial number and ID_Servizi: another card of the same family (same ATR,
// same keys, which device authentication does not rely on alone).
func otherCardState(t *testing.T) string {
	t.Helper()
	dir := stateCopy(t)
	path := filepath.Join(dir, "state.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `"id_servizi": "635874769602"`, `"id_servizi": "123456789012"`, 1)
	s = strings.Replace(s, `"sn_icc": "15886a7df9635874769602b1"`, `"sn_icc": "15886a7df9123456789012b1"`, 1)
	if s == string(b) || strings.Count(s, "123456789012") != 2 {
		t.Fatal("the state's identifiers were not found")
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPerfSwappedCardSameATR: the cache says the paired card A is
// in the reader, with the ATR the reader shows, but it is card B of the
// same family (a swap while no process watched). Start-up presents A
// without an APDU; the login finds B out by device authentication before
// any PIN is sent, fails with CKR_DEVICE_REMOVED, and from then on B is
// shown as itself; A's record stays.
func TestPerfSwappedCardSameATR(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	module := buildModule(t, t.TempDir())

	cardA := bench.StartCard(t, "--family", "gemalto")
	p := newP11(t, module, cardA.Reader())
	p.pair()
	atrA := readerATR(t, bench, cardA.Reader())
	cardA.Stop(t)

	cardB := bench.StartCard(t, "--family", "gemalto", "--state", otherCardState(t), "--given-name", "LUCIA", "--surname", "BIANCHI")
	defer cardB.Stop(t)
	p.reader = cardB.Reader()
	if atrB := readerATR(t, bench, cardB.Reader()); string(atrB) != string(atrA) {
		t.Fatalf("the two cards' ATRs differ: % X / % X", atrA, atrB)
	}
	cache := certcache.New(filepath.Join(p.home, ".config", "cie-desktop", "certs"))
	if err := cache.SetReader(cardB.Reader(), "635874769602", atrA); err != nil {
		t.Fatal(err)
	}

	resetStats(t, cardB)
	mustMatch(t, "-L presents the recorded card", p.tool("-L"), `token label\s+: MARIO ROSSI\s*\n`)
	if n := simAPDUs(t, cardB); n != 0 {
		t.Errorf("start-up sent %d APDUs", n)
	}
	out, code := p.toolCode("--login", "--pin", defaultPIN, "-O")
	if code == 0 || !strings.Contains(out, "CKR_DEVICE_REMOVED") {
		t.Fatalf("login on the swapped card: exit %d, want CKR_DEVICE_REMOVED\n%s", code, out)
	}
	if tries, _ := cardB.Control("pin-tries"); tries != "pin=3 puk=10" {
		t.Fatalf("a PIN reached the other card: %s", tries)
	}
	mustMatch(t, "-L after the swap", p.tool("-L"), `token label\s+: CIE 123456789012\s*\n`)
	out = p.tool("--login", "--pin", defaultPIN, "-O")
	mustMatch(t, "-O on card B", out, `LUCIA`)
	mustMatch(t, "-L of card B paired", p.tool("-L"), `token label\s+: LUCIA BIANCHI\s*\n`)
	if _, err := cache.LoadRecord("635874769602"); err != nil {
		t.Errorf("card A's record: %v", err)
	}
	if r, ok := cache.ReaderRecord(cardB.Reader(), atrA); !ok || r.ID() != "123456789012" {
		t.Errorf("the reader's card: %v %v, want card B", r, ok)
	}
}

// readerATR returns the ATR pcscd reports for reader.
func readerATR(t *testing.T, bench *testbench.Bench, reader string) []byte {
	t.Helper()
	st, err := bench.Status(reader)
	if err != nil || !st.Present {
		t.Fatalf("status of %s: %+v %v", reader, st, err)
	}
	return st.ATR
}
