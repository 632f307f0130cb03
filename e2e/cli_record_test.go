package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// The APDUs the cie command sends for a paired card opened from its card
// record (certcache package doc), counted by cie-sim behind pcscd + vpcd,
// each command a fresh process. The card is opened with SELECT, DH and
// device authentication only (17 APDUs, as the PKCS#11 module's login
// without its VERIFY), then what the command needs; the figures are exact
// so that any new APDU is noticed. Opened the full way, before the records,
// the same commands sent 42, 42 and 33.
const (
	pairedStatusAPDUs    = 21 // handshake, PIN state, EF.Seriale (2), PUK state
	pairedSignAPDUs      = 24 // handshake, PIN state, PIN state in the transaction (Hold), VERIFY, signature (4); the certificate from the record
	pairedPINChangeAPDUs = 20 // handshake, PIN state, PIN state in the transaction (Hold), CHANGE REFERENCE DATA
)

// cliCache gives the test its own configuration directory (the cie command
// finds the card records under it) and returns the certificate cache there.
func cliCache(t *testing.T) *certcache.Cache {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	return certcache.New(filepath.Join(dir, "cie-desktop", "certs"))
}

// simCA returns the simulated cards' CA certificate, for cie verify --ca.
func simCA(t *testing.T) string {
	return filepath.Join(testbench.ModuleRoot(t), "testdata", "sim", "ca-cert.pem")
}

// recordCounters returns the PIN and PUK counters of card pan's record.
func recordCounters(t *testing.T, cache *certcache.Cache, pan string) (pin, puk certcache.Counter) {
	t.Helper()
	rec, err := cache.LoadRecord(pan)
	if err != nil {
		t.Fatalf("loading the card record: %v", err)
	}
	return rec.PIN, rec.PUK
}

// counted runs the cie command after resetting the card's APDU counter and
// returns the result and the APDUs the card received.
func counted(t *testing.T, card *testbench.Card, bin, stdin string, args ...string) (result, int) {
	t.Helper()
	resetStats(t, card)
	r := runCIE(t, bin, card.Reader(), stdin, args...)
	return r, simAPDUs(t, card)
}

// TestCLIRecordAPDUs: with the card paired, `cie status`, `cie sign`
// (CAdES) and `cie pin change` open it from its card record and send the
// exact counts above, fewer than without a record; the tries `cie status`
// shows are the card's, not the record's; the commands keep the record's
// counters up to date; `cie unpair` removes everything.
func TestCLIRecordAPDUs(t *testing.T) {
	cache := cliCache(t)
	bench := testbench.Start(t, testbench.Options{})
	bin := testbench.BuildBinary(t, "./cmd/cie")
	card := bench.StartCard(t, "--family", "gemalto", "--state", stateCopy(t))
	defer card.Stop(t)
	reader := card.Reader()
	const pan = "635874769602"
	doc := filepath.Join(t.TempDir(), "doc.txt")
	if err := os.WriteFile(doc, []byte("Entra con CIE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const newPIN, thirdPIN = "24681357", "13572468"

	// Not paired: the full open.
	r, fullStatus := counted(t, card, bin, "", "status")
	r.expect(t, 0, "stdout", `PIN:\s+3 tries left`)
	r, fullSign := counted(t, card, bin, defaultPIN+"\n", "--pin-stdin", "sign", "-o", doc+".p7m", doc)
	r.expect(t, 0, "stderr", `Signing .* as MARIO ROSSI`)
	r, fullChange := counted(t, card, bin, defaultPIN+"\n"+newPIN+"\n", "--pin-stdin", "pin", "change")
	r.expect(t, 0, "stdout", `PIN changed`)
	t.Logf("not paired: status %d, sign %d, pin change %d APDUs", fullStatus, fullSign, fullChange)
	if _, err := cache.LoadRecord(pan); err == nil {
		t.Fatal("a command other than pair wrote a card record")
	}

	runCIE(t, bin, reader, newPIN+"\n", "--pin-stdin", "pair").expect(t, 0, "stdout", `paired`)
	rec, err := cache.LoadRecord(pan)
	if err != nil || rec.Reader != reader || rec.Cert == nil {
		t.Fatalf("record after cie pair: %v (reader %q, certificate %v)", err, rec.Reader, rec.Cert != nil)
	}

	// The record says 1 PIN try is left: status shows the card's 3 and
	// writes them to the record.
	rec.PIN = certcache.Counter{Known: true, Remaining: 1}
	if err := cache.StoreRecord(rec); err != nil {
		t.Fatal(err)
	}
	r, status := counted(t, card, bin, "", "status")
	r.expect(t, 0, "stdout", `PIN:\s+3 tries left`)
	r.expect(t, 0, "stdout", `PUK:\s+10 tries left`)
	r.expect(t, 0, "stdout", `Holder:\s+MARIO ROSSI, codice fiscale .*\n`)
	r.expect(t, 0, "stdout", `Card number:\s+\S+`)
	if pin, puk := recordCounters(t, cache, pan); pin != (certcache.Counter{Known: true, Remaining: 3}) ||
		puk != (certcache.Counter{Known: true, Remaining: 10}) {
		t.Errorf("record counters after cie status: PIN %+v, PUK %+v", pin, puk)
	}

	r, signed := counted(t, card, bin, newPIN+"\n", "--pin-stdin", "sign", "-o", doc+".2.p7m", doc)
	r.expect(t, 0, "stderr", `Signing .* as MARIO ROSSI`)
	runCIE(t, bin, reader, "", "verify", doc+".2.p7m", "--ca", simCA(t)).expect(t, 0, "stdout", `(?s)Signature 1: VALID.*MARIO ROSSI`)

	r, changed := counted(t, card, bin, newPIN+"\n"+thirdPIN+"\n", "--pin-stdin", "pin", "change")
	r.expect(t, 0, "stdout", `PIN changed`)
	t.Logf("paired: status %d, sign %d, pin change %d APDUs", status, signed, changed)
	if status != pairedStatusAPDUs || signed != pairedSignAPDUs || changed != pairedPINChangeAPDUs {
		t.Errorf("paired card: status %d, sign %d, pin change %d APDUs; want %d, %d, %d",
			status, signed, changed, pairedStatusAPDUs, pairedSignAPDUs, pairedPINChangeAPDUs)
	}
	if status >= fullStatus || signed >= fullSign || changed >= fullChange {
		t.Errorf("the record saves nothing: paired %d/%d/%d, not paired %d/%d/%d APDUs",
			status, signed, changed, fullStatus, fullSign, fullChange)
	}

	// A wrong PIN and a wrong PUK: the record follows the card's counters.
	runCIE(t, bin, reader, newPIN+"\n", "--pin-stdin", "cert").expect(t, 6, "stderr", `wrong PIN: 2 tries left`)
	if pin, _ := recordCounters(t, cache, pan); pin != (certcache.Counter{Known: true, Remaining: 2}) {
		t.Errorf("record PIN counter after a wrong PIN: %+v", pin)
	}
	runCIE(t, bin, reader, "11223344\n"+newPIN+"\n", "--pin-stdin", "pin", "unblock").expect(t, 6, "stderr", `wrong PUK: 9 tries left`)
	if _, puk := recordCounters(t, cache, pan); puk != (certcache.Counter{Known: true, Remaining: 9}) {
		t.Errorf("record PUK counter after a wrong PUK: %+v", puk)
	}
	runCIE(t, bin, reader, thirdPIN+"\n", "--pin-stdin", "cert").expect(t, 0, "stdout", `BEGIN CERTIFICATE`)
	if pin, _ := recordCounters(t, cache, pan); pin != (certcache.Counter{Known: true, Remaining: 3}) {
		t.Errorf("record PIN counter after the right PIN: %+v", pin)
	}
	if tries, err := card.Control("pin-tries"); err != nil || tries != "pin=3 puk=9" {
		t.Errorf("card counters %q (%v), want pin=3 puk=9", tries, err)
	}

	// Unpair removes the record and every other file of the card; the
	// next status opens the card the full way again.
	runCIE(t, bin, reader, "", "unpair").expect(t, 0, "stdout", `Card unpaired`)
	if entries, _ := os.ReadDir(cache.Dir()); len(entries) != 0 {
		t.Errorf("cache directory after unpair: %v", entries)
	}
	if cache.Has(pan) {
		t.Error("the cache still knows the card after unpair")
	}
	r, n := counted(t, card, bin, "", "status")
	r.expect(t, 0, "stdout", `Holder:\s+shown after the PIN`)
	if n != fullStatus {
		t.Errorf("status after unpair: %d APDUs, want the full open's %d", n, fullStatus)
	}
	if _, err := cache.LoadRecord(pan); err == nil {
		t.Error("cie status after unpair wrote the record again")
	}
}

// TestCLISwappedCardSameATR: the record says the paired card A is in the
// reader, with the ATR the reader shows, but it is card B of the same
// family. Device authentication finds B out before any PIN is sent; the
// command then opens B the normal way and goes on with B: `cie status`
// shows B, and `cie sign` signs as B with B's certificate (A's, from the
// record, would verify too, the simulated cards sharing their key: only
// the identity check tells them apart). A's record stays, without the
// reader.
func TestCLISwappedCardSameATR(t *testing.T) {
	cache := cliCache(t)
	bench := testbench.Start(t, testbench.Options{})
	bin := testbench.BuildBinary(t, "./cmd/cie")
	const panA, panB = "635874769602", "123456789012"

	cardA := bench.StartCard(t, "--family", "gemalto", "--state", stateCopy(t))
	runCIE(t, bin, cardA.Reader(), defaultPIN+"\n", "--pin-stdin", "pair").expect(t, 0, "stdout", `MARIO ROSSI paired`)
	atrA := readerATR(t, bench, cardA.Reader())
	cardA.Stop(t)

	cardB := bench.StartCard(t, "--family", "gemalto", "--state", otherCardState(t), "--given-name", "LUCIA", "--surname", "BIANCHI")
	defer cardB.Stop(t)
	reader := cardB.Reader()
	if atrB := readerATR(t, bench, reader); string(atrB) != string(atrA) {
		t.Fatalf("the two cards' ATRs differ: % X / % X", atrA, atrB)
	}
	if err := cache.SetReader(reader, panA, atrA); err != nil {
		t.Fatal(err)
	}

	r := runCIE(t, bin, reader, "", "status")
	r.expect(t, 0, "stdout", `ID Servizi:\s+`+panB+`\n`)
	r.expect(t, 0, "stdout", `PIN:\s+3 tries left`)
	r.expect(t, 0, "stdout", `Holder:\s+shown after the PIN`)
	if tries, _ := cardB.Control("pin-tries"); tries != "pin=3 puk=10" {
		t.Fatalf("card B's counters after cie status: %s", tries)
	}
	if _, ok := cache.ReaderRecord(reader, atrA); ok {
		t.Error("the reader still names card A after the swap was found")
	}
	if rec, err := cache.LoadRecord(panA); err != nil || rec.Cert == nil {
		t.Errorf("card A's record: %v (a certificate: %v)", err, err == nil && rec.Cert != nil)
	}

	// Once more with sign, the swap unseen by any process.
	if err := cache.SetReader(reader, panA, atrA); err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(t.TempDir(), "doc.txt")
	if err := os.WriteFile(doc, []byte("Entra con CIE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCIE(t, bin, reader, defaultPIN+"\n", "--pin-stdin", "sign", doc)
	r.expect(t, 0, "stderr", `Signing .* as LUCIA BIANCHI`)
	if regexp.MustCompile(`MARIO|ROSSI`).MatchString(r.stderr + r.stdout) {
		t.Errorf("card A's identity used for card B:\n%s%s", r.stdout, r.stderr)
	}
	runCIE(t, bin, reader, "", "verify", doc+".p7m", "--ca", simCA(t)).expect(t, 0, "stdout", `(?s)Signature 1: VALID.*LUCIA BIANCHI`)
	if tries, _ := cardB.Control("pin-tries"); tries != "pin=3 puk=10" {
		t.Errorf("card B's counters after cie sign: %s", tries)
	}
	if _, ok := cache.ReaderRecord(reader, atrA); ok {
		t.Error("the reader still names card A after the second swap")
	}
	if _, err := cache.LoadRecord(panB); err == nil {
		t.Error("cie sign paired card B")
	}
}
