package pkcs11_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// pair logs in once on a first module, which pairs the card (writes its
// record, with the reader it is in).
func pair(t *testing.T, e *env) {
	t.Helper()
	h := e.open(e.m)
	login(t, e.m, h)
	if err := e.m.CloseSession(h); err != nil {
		t.Fatal(err)
	}
}

// signWithKey signs with the session's private key (CKM_SHA256_RSA_PKCS).
func signWithKey(t *testing.T, m *pkcs11.Module, h pkcs11.SessionHandle) {
	t.Helper()
	key := find(t, m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))
	if len(key) != 1 {
		t.Fatalf("%d private keys", len(key))
	}
	if err := m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key[0]); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 256)
	if _, err := m.Sign(h, []byte("data"), out, false); err != nil {
		t.Fatal(err)
	}
}

// TestPairedCardBudget: in a new process, a paired card costs nothing until
// the login, and login + first signature cost at most 22 APDUs; further
// signatures at most 3.
func TestPairedCardBudget(t *testing.T) {
	for _, tc := range []struct {
		family  string
		pairing int // the target is 40 on the bench's Gemalto; NXP's three DH templates cost 4 more (37 + 4)
	}{{"gemalto", 40}, {"nxp", 41}} {
		family := tc.family
		t.Run(family, func(t *testing.T) {
			card := newCard(t, ciesim.Config{Family: family})
			e := newEnv(t, card)
			pair(t, e)
			// First pairing: start-up, C_OpenSession and C_Login on an
			// unpaired card (the login reads and records the certificate).
			if n := apdus(card); n > tc.pairing {
				t.Errorf("first pairing: %d APDUs, over %d", n, tc.pairing)
			}
			t.Logf("first pairing: %d APDUs", apdus(card))
			card.ResetStats()
			m := e.module(pkcs11.Config{})
			ids, err := m.SlotList(true)
			if err != nil || len(ids) != 1 {
				t.Fatalf("SlotList: %v %v", ids, err)
			}
			ti, err := m.TokenInfo(ids[0])
			if err != nil {
				t.Fatal(err)
			}
			if got := text(ti.Label[:]); got != "MARIO ROSSI" {
				t.Errorf("label %q", got)
			}
			h := e.open(m)
			if n := len(find(t, m, h)); n != 2 {
				t.Errorf("%d public objects before login, want 2", n)
			}
			if n := apdus(card); n != 0 {
				t.Fatalf("start-up with a paired card: %d APDUs, want 0", n)
			}
			login(t, m, h)
			signWithKey(t, m, h)
			if n := apdus(card); n > 22 {
				t.Errorf("C_Login + first C_Sign: %d APDUs, over 22", n)
			}
			card.ResetStats()
			signWithKey(t, m, h)
			if n := apdus(card); n > 3 {
				t.Errorf("further C_Sign: %d APDUs, over 3", n)
			}
		})
	}
}

// TestSwappedCardSameATR: another card of the same family (same ATR) put
// in the reader while no module ran is presented as the recorded one at
// start-up, found out at the login before any PIN reaches it, reported as
// the recorded card's removal, and shown as itself from then on.
func TestSwappedCardSameATR(t *testing.T) {
	cardA := newCard(t, ciesim.Config{})
	e := newEnv(t, cardA)
	pair(t, e)

	cardB := newCard(t, ciesim.Config{Holder: ciesim.Holder{GivenName: "LUCIA", Surname: "BIANCHI", IDServizi: "123456789012"}})
	if string(cardB.ATR()) != string(cardA.ATR()) {
		t.Fatal("the cards' ATRs differ")
	}
	e.src.Insert(reader1, cardB)
	m := e.module(pkcs11.Config{})
	if got := tokenLabel(t, m); got != "MARIO ROSSI" {
		t.Fatalf("start-up label %q: the recorded card is presented", got)
	}
	if n := apdus(cardB); n != 0 {
		t.Fatalf("start-up sent %d APDUs", n)
	}
	h := e.open(m)
	wantRV(t, m.Login(h, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_DEVICE_REMOVED)
	if pin, _ := cardB.Tries(); pin != 3 {
		t.Fatalf("the other card's PIN counter went to %d", pin)
	}
	_, err := m.SessionInfo(h)
	wantRV(t, err, pkcs11.CKR_SESSION_HANDLE_INVALID)
	if id, err := m.WaitForSlotEvent(true); err != nil || id != 1 {
		t.Errorf("slot event after the swap: %v %v", id, err)
	}
	if got := tokenLabel(t, m); got != "CIE 123456789012" {
		t.Fatalf("label after the swap %q, want the unpaired card's", got)
	}
	h = e.open(m)
	if n := len(find(t, m, h)); n != 0 {
		t.Fatalf("the other card shows %d objects before its login", n)
	}
	login(t, m, h)
	if got := tokenLabel(t, m); got != "LUCIA BIANCHI" {
		t.Fatalf("label after the login %q", got)
	}
	// Both cards have their record; the reader's card is B now.
	if _, err := e.cache.LoadRecord(cardPAN(cardA)); err != nil {
		t.Error("the first card's record was removed")
	}
	cardB.ResetStats()
	m2 := e.module(pkcs11.Config{})
	if got := tokenLabel(t, m2); got != "LUCIA BIANCHI" || apdus(cardB) != 0 {
		t.Fatalf("next start-up: label %q, %d APDUs", got, apdus(cardB))
	}
	// Card A back: found out the same way, and shown as itself.
	e.src.Insert(reader1, cardA)
	m3 := e.module(pkcs11.Config{})
	h3 := e.open(m3)
	wantRV(t, m3.Login(h3, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_DEVICE_REMOVED)
	if got := tokenLabel(t, m3); got != "MARIO ROSSI" {
		t.Fatalf("card A back: label %q", got)
	}
	h3 = e.open(m3)
	login(t, m3, h3)
	signWithKey(t, m3, h3)
}

// cardPAN is hex(SN.ICC[5:11]) of a simulated card.
func cardPAN(c *ciesim.Card) string {
	sn := c.SNICC()
	const hexd = "0123456789ABCDEF"
	var out []byte
	for _, b := range sn[5:11] {
		out = append(out, hexd[b>>4], hexd[b&15])
	}
	return string(out)
}

// TestCounterKeptAcrossProcesses: the PIN flags a new process shows at
// start-up come from the record, updated by each failed and successful
// C_Login, without any APDU.
func TestCounterKeptAcrossProcesses(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	pair(t, e)
	mask := pkcs11.CKF_USER_PIN_COUNT_LOW | pkcs11.CKF_USER_PIN_FINAL_TRY | pkcs11.CKF_USER_PIN_LOCKED
	for i, want := range []pkcs11.Flags{
		pkcs11.CKF_USER_PIN_COUNT_LOW,
		pkcs11.CKF_USER_PIN_COUNT_LOW | pkcs11.CKF_USER_PIN_FINAL_TRY,
		0, // the right PIN resets the counter
	} {
		m := e.module(pkcs11.Config{})
		h := e.open(m)
		pin := "00000000"
		if want == 0 {
			pin = goodPIN
		}
		err := m.Login(h, pkcs11.CKU_USER, []byte(pin))
		if want != 0 {
			wantRV(t, err, pkcs11.CKR_PIN_INCORRECT)
		} else {
			wantRV(t, err, pkcs11.CKR_OK)
		}
		card.ResetStats()
		next := e.module(pkcs11.Config{})
		ti, err := next.TokenInfo(1)
		if err != nil {
			t.Fatal(err)
		}
		if ti.Flags&mask != want {
			t.Errorf("step %d: a new process shows PIN flags %#x, want %#x", i, ti.Flags&mask, want)
		}
		if n := apdus(card); n != 0 {
			t.Errorf("step %d: start-up sent %d APDUs", i, n)
		}
	}
}

// TestLegacyEntryMigrates: a card paired by an older version (the
// encrypted certificate entry only) is shown from that entry, and its
// first login writes the record: the next start-up costs no APDU.
func TestLegacyEntryMigrates(t *testing.T) {
	ctx := context.Background()
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, nil)
	c, err := cie.Open(ctx, card, card.ATR(), nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := certcache.KeyFor(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cache.Store(c.PAN(), key, certOf(card).Raw); err != nil {
		t.Fatal(err)
	}
	c.Close()
	e.src.Insert(reader1, card)

	m := e.module(pkcs11.Config{})
	if got := tokenLabel(t, m); got != "MARIO ROSSI" {
		t.Fatalf("label from the legacy entry %q", got)
	}
	h := e.open(m)
	login(t, m, h)
	if _, err := e.cache.LoadRecord(c.PAN()); err != nil {
		t.Fatalf("no record after the login: %v", err)
	}
	card.ResetStats()
	m2 := e.module(pkcs11.Config{})
	h2 := e.open(m2)
	if n := len(find(t, m2, h2)); n != 2 || apdus(card) != 0 {
		t.Fatalf("next start-up: %d objects, %d APDUs", n, apdus(card))
	}
}

// TestUnpairWhileInUse: a record removed while the module runs ("cie
// unpair") is not written back by a wrong PIN, only by the next login, as
// the first login pairs.
func TestUnpairWhileInUse(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	login(t, e.m, h)
	if err := e.m.Logout(h); err != nil {
		t.Fatal(err)
	}
	pan := cardPAN(card)
	if err := e.cache.Remove(pan); err != nil {
		t.Fatal(err)
	}
	wantRV(t, e.m.Login(h, pkcs11.CKU_USER, []byte("00000000")), pkcs11.CKR_PIN_INCORRECT)
	if e.cache.Has(pan) {
		t.Fatal("a wrong PIN wrote the removed record back")
	}
	login(t, e.m, h)
	if _, err := e.cache.LoadRecord(pan); err != nil {
		t.Fatalf("the login did not pair again: %v", err)
	}
}

// TestForeignCardUnderRecordedATR: a card that is not a CIE, in the reader
// under the recorded card's ATR, is found out at the first use as another
// card (CKR_DEVICE_REMOVED, as on a swap), and shown as itself from then
// on: not recognized, without repeating the failed handshake.
func TestForeignCardUnderRecordedATR(t *testing.T) {
	cardA := newCard(t, ciesim.Config{})
	e := newEnv(t, cardA)
	pair(t, e)

	foreign := newCard(t, ciesim.Config{Family: "foreign", ATR: cardA.ATR()})
	e.src.Insert(reader1, foreign)
	m := e.module(pkcs11.Config{})
	if got := tokenLabel(t, m); got != "MARIO ROSSI" {
		t.Fatalf("start-up label %q: the recorded card is presented", got)
	}
	h := e.open(m)
	wantRV(t, m.Login(h, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_DEVICE_REMOVED)
	if id, err := m.WaitForSlotEvent(true); err != nil || id != 1 {
		t.Errorf("slot event after the swap: %v %v", id, err)
	}
	_, err := m.TokenInfo(1)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_RECOGNIZED)
	foreign.ResetStats()
	_, err = m.TokenInfo(1)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_RECOGNIZED)
	_, err = m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_RECOGNIZED)
	if n := apdus(foreign); n != 0 {
		t.Errorf("the unrecognized card got %d more APDUs", n)
	}
	if _, err := e.cache.LoadRecord(cardPAN(cardA)); err != nil {
		t.Error("the recorded card's record was removed")
	}
}

// TestSwapWithCacheUnwritable: when the reader cannot be cleared from the
// recorded card's record at a swap (the cache directory cannot be written
// then: here it is replaced by a file, and restored afterwards), the
// record is still not presented again for the same insertion: the next
// call shows the card really there, instead of ending every first use in
// CKR_DEVICE_REMOVED.
func TestSwapWithCacheUnwritable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	cardA := newCard(t, ciesim.Config{})
	e := &env{t: t, src: newSimSource(reader1, reader2), cache: certcache.New(dir)}
	e.src.Insert(reader1, cardA)
	e.m = e.module(pkcs11.Config{})
	pair(t, e)

	cardB := newCard(t, ciesim.Config{Holder: ciesim.Holder{GivenName: "LUCIA", Surname: "BIANCHI", IDServizi: "123456789012"}})
	e.src.Insert(reader1, cardB)
	m := e.module(pkcs11.Config{})
	if got := tokenLabel(t, m); got != "MARIO ROSSI" {
		t.Fatalf("start-up label %q: the recorded card is presented", got)
	}

	away := dir + ".away"
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := e.open(m)
	wantRV(t, m.Login(h, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_DEVICE_REMOVED)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.cache.ReaderRecord(reader1, cardA.ATR()); !ok {
		t.Fatal("the reader was cleared from the record: the failure to inject did not happen")
	}

	if got := tokenLabel(t, m); got != "CIE 123456789012" {
		t.Fatalf("label after the swap %q, want the unpaired card's", got)
	}
	h = e.open(m)
	login(t, m, h)
	if pin, _ := cardB.Tries(); pin != 3 {
		t.Fatalf("card B's PIN counter %d", pin)
	}
}

// TestNoRecordForUnpairedCard: a wrong PIN or an SO login on a card that
// was never paired writes no card record; only a successful login pairs.
func TestNoRecordForUnpairedCard(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	pan := cardPAN(card)
	h := e.open(e.m)
	wantRV(t, e.m.Login(h, pkcs11.CKU_USER, []byte("00000000")), pkcs11.CKR_PIN_INCORRECT)
	if e.cache.Has(pan) {
		t.Fatal("a wrong PIN wrote a record for an unpaired card")
	}
	wantRV(t, e.m.Login(h, pkcs11.CKU_SO, []byte(goodPUK)), pkcs11.CKR_OK)
	if err := e.m.Logout(h); err != nil {
		t.Fatal(err)
	}
	if e.cache.Has(pan) {
		t.Fatal("an SO login wrote a record for an unpaired card")
	}
	login(t, e.m, h)
	rec, err := e.cache.LoadRecord(pan)
	if err != nil {
		t.Fatalf("the login did not pair: %v", err)
	}
	if len(rec.Cert) == 0 {
		t.Error("the pairing record has no certificate")
	}
}

// enterSignal tells when a WaitForChange starts.
type enterSignal struct {
	*simSource
	entered chan struct{}
}

func (s *enterSignal) WaitForChange(ctx context.Context, known []pkcs11.ReaderStatus) ([]pkcs11.ReaderStatus, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	return s.simSource.WaitForChange(ctx, known)
}

// TestSwapWakesWaiter: a C_WaitForSlotEvent blocked in the reader source
// returns the slot whose card turned out to be another one than the
// recorded card, although the readers did not change.
func TestSwapWakesWaiter(t *testing.T) {
	cardA := newCard(t, ciesim.Config{})
	e := newEnv(t, cardA)
	pair(t, e)
	cardB := newCard(t, ciesim.Config{Holder: ciesim.Holder{IDServizi: "123456789012"}})
	e.src.Insert(reader1, cardB)

	src := &enterSignal{simSource: e.src, entered: make(chan struct{}, 1)}
	m := e.module(pkcs11.Config{Source: src})
	for { // the events of the start-up
		if _, err := m.WaitForSlotEvent(true); err != nil {
			wantRV(t, err, pkcs11.CKR_NO_EVENT)
			break
		}
	}
	h := e.open(m)
	type event struct {
		id  pkcs11.SlotID
		err error
	}
	got := make(chan event, 1)
	go func() {
		id, err := m.WaitForSlotEvent(false)
		got <- event{id, err}
	}()
	<-src.entered
	wantRV(t, m.Login(h, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_DEVICE_REMOVED)
	select {
	case ev := <-got:
		if ev.err != nil || ev.id != 1 {
			t.Fatalf("WaitForSlotEvent: %v %v, want slot 1", ev.id, ev.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked WaitForSlotEvent was not woken by the swap")
	}
}

// tokenLabel returns the label of slot 1's token, failing the test when
// the module cannot say it.
func tokenLabel(t *testing.T, m *pkcs11.Module) string {
	t.Helper()
	ti, err := m.TokenInfo(1)
	if err != nil {
		t.Fatal(err)
	}
	return text(ti.Label[:])
}
