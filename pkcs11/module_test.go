package pkcs11_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

func TestInfo(t *testing.T) {
	e := newEnv(t, nil)
	in, err := e.m.Info()
	if err != nil {
		t.Fatal(err)
	}
	if in.CryptokiVersion != (pkcs11.Version{Major: 3, Minor: 0}) {
		t.Errorf("Cryptoki version %v, want 3.0", in.CryptokiVersion)
	}
	if got := text(in.ManufacturerID[:]); got != "CIE Desktop" {
		t.Errorf("manufacturer %q", got)
	}
	if bytes.IndexByte(in.LibraryDescription[:], 0) >= 0 || bytes.IndexByte(in.ManufacturerID[:], 0) >= 0 {
		t.Error("text fields hold NUL bytes instead of blank padding")
	}
}

func TestSlotsAndTokenInfo(t *testing.T) {
	card := newCard(t, ciesim.Config{Family: "gemalto"})
	e := newEnv(t, card)

	all, err := e.m.SlotList(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("SlotList(false) = %v, want two slots", all)
	}
	withToken, err := e.m.SlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(withToken) != 1 || withToken[0] != all[0] {
		t.Fatalf("SlotList(true) = %v, want [%d]", withToken, all[0])
	}
	si, err := e.m.SlotInfo(all[0])
	if err != nil {
		t.Fatal(err)
	}
	if text(si.SlotDescription[:]) != reader1 {
		t.Errorf("slot description %q, want %q", si.SlotDescription, reader1)
	}
	if want := pkcs11.CKF_TOKEN_PRESENT | pkcs11.CKF_REMOVABLE_DEVICE | pkcs11.CKF_HW_SLOT; si.Flags != want {
		t.Errorf("slot flags %#x, want %#x", si.Flags, want)
	}
	si2, _ := e.m.SlotInfo(all[1])
	if si2.Flags&pkcs11.CKF_TOKEN_PRESENT != 0 {
		t.Error("empty reader reports a token")
	}

	ti, err := e.m.TokenInfo(all[0])
	if err != nil {
		t.Fatal(err)
	}
	id := card.Holder().IDServizi
	if got := text(ti.Label[:]); got != "CIE "+id {
		t.Errorf("label of an unpaired card %q, want %q", got, "CIE "+id)
	}
	if got := text(ti.SerialNumber[:]); got != id {
		t.Errorf("serial %q, want ID_Servizi %q", got, id)
	}
	if got := text(ti.Model[:]); got != "Gemalto" {
		t.Errorf("model %q, want the chip family", got)
	}
	if got := text(ti.ManufacturerID[:]); got != "IPZS" {
		t.Errorf("manufacturer %q", got)
	}
	wantFlags := pkcs11.CKF_LOGIN_REQUIRED | pkcs11.CKF_USER_PIN_INITIALIZED | pkcs11.CKF_TOKEN_INITIALIZED
	if ti.Flags != wantFlags {
		t.Errorf("token flags %#x, want %#x (in particular no CKF_WRITE_PROTECTED)", ti.Flags, wantFlags)
	}
	if ti.MinPinLen != 8 || ti.MaxPinLen != 8 {
		t.Errorf("PIN length %d..%d, want 8..8", ti.MinPinLen, ti.MaxPinLen)
	}
	if ti.TotalPublicMemory != pkcs11.UnavailableInformation {
		t.Errorf("memory fields should be unavailable")
	}
	for name, f := range map[string][]byte{"label": ti.Label[:], "manufacturer": ti.ManufacturerID[:], "model": ti.Model[:], "serial": ti.SerialNumber[:], "utcTime": ti.UTCTime[:]} {
		if bytes.IndexByte(f, 0) >= 0 {
			t.Errorf("%s holds NUL bytes: %q", name, f)
		}
	}

	// Browsers call these over and over at start-up: after the card was
	// opened they must not reach it.
	before := apdus(card)
	for range 5 {
		if _, err := e.m.SlotList(true); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.SlotInfo(all[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.TokenInfo(all[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.MechanismList(all[0]); err != nil {
			t.Fatal(err)
		}
	}
	if n := apdus(card) - before; n != 0 {
		t.Errorf("slot and token information sent %d APDUs to the card", n)
	}

	_, err = e.m.TokenInfo(all[1])
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_PRESENT)
	_, err = e.m.TokenInfo(99)
	wantRV(t, err, pkcs11.CKR_SLOT_ID_INVALID)
	_, err = e.m.SlotInfo(0)
	wantRV(t, err, pkcs11.CKR_SLOT_ID_INVALID)
}

// TestTokenInfoShowsPINCounter: the PIN flags follow the wrong PINs, and
// another process shows them at start-up from the card's record (a paired
// card: an unpaired card has no record, and its counter is not read at
// start-up).
func TestTokenInfoShowsPINCounter(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	pair(t, e)
	h := e.open(e.m)
	for i, want := range []pkcs11.Flags{
		pkcs11.CKF_USER_PIN_COUNT_LOW,
		pkcs11.CKF_USER_PIN_COUNT_LOW | pkcs11.CKF_USER_PIN_FINAL_TRY,
		pkcs11.CKF_USER_PIN_LOCKED,
	} {
		err := e.m.Login(h, pkcs11.CKU_USER, []byte("00000000"))
		if i < 2 {
			wantRV(t, err, pkcs11.CKR_PIN_INCORRECT)
		} else {
			wantRV(t, err, pkcs11.CKR_PIN_LOCKED)
		}
		ti, _ := e.m.TokenInfo(1)
		mask := pkcs11.CKF_USER_PIN_COUNT_LOW | pkcs11.CKF_USER_PIN_FINAL_TRY | pkcs11.CKF_USER_PIN_LOCKED
		if ti.Flags&mask != want {
			t.Errorf("after %d wrong PINs: PIN flags %#x, want %#x", i+1, ti.Flags&mask, want)
		}
	}
	// A locked PIN stays locked with the right PIN.
	wantRV(t, e.m.Login(h, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_PIN_LOCKED)

	// Another process sees the counter at insertion, before any login.
	other := e.module(pkcs11.Config{})
	ti, err := other.TokenInfo(1)
	if err != nil {
		t.Fatal(err)
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_LOCKED == 0 {
		t.Errorf("a new module does not show the locked PIN: flags %#x", ti.Flags)
	}
	if pin, _ := card.Tries(); pin != 0 {
		t.Fatalf("card PIN tries %d", pin)
	}
}

// TestStartUpReadsNoPINCounter: the first use of an unpaired card opens it
// (5 APDUs) and no more: the PIN counter costs no handshake at start-up.
func TestStartUpReadsNoPINCounter(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	m := e.module(pkcs11.Config{})
	ti, err := m.TokenInfo(1)
	if err != nil {
		t.Fatal(err)
	}
	if n := apdus(card); n != 5 {
		t.Errorf("start-up with an unpaired card sent %d APDUs, want 5 (cie.Open)", n)
	}
	mask := pkcs11.CKF_USER_PIN_COUNT_LOW | pkcs11.CKF_USER_PIN_FINAL_TRY | pkcs11.CKF_USER_PIN_LOCKED
	if ti.Flags&mask != 0 {
		t.Errorf("flags %#x of a fresh card", ti.Flags)
	}
}

func TestForeignCardIsNotRecognized(t *testing.T) {
	card := newCard(t, ciesim.Config{Family: "foreign"})
	e := newEnv(t, card)
	ids, _ := e.m.SlotList(true)
	if len(ids) != 1 {
		t.Fatalf("a foreign card is still a token present: %v", ids)
	}
	_, err := e.m.TokenInfo(1)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_RECOGNIZED)
	n := apdus(card)
	_, err = e.m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_RECOGNIZED)
	_, err = e.m.TokenInfo(1)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_RECOGNIZED)
	if apdus(card) != n {
		t.Error("the foreign card was probed again")
	}
	// A CIE inserted in its place is recognised.
	e.src.Insert(reader1, newCard(t, ciesim.Config{}))
	if _, err := e.m.TokenInfo(1); err != nil {
		t.Fatalf("after replacing the card: %v", err)
	}
}

func TestReadersPluggedLaterAppear(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.m.WaitForSlotEvent(true)
	wantRV(t, err, pkcs11.CKR_NO_EVENT)

	e.src.AddReader("Late Reader 00 00")
	ids, _ := e.m.SlotList(false)
	if len(ids) != 3 {
		t.Fatalf("slots %v, want 3 after plugging a reader", ids)
	}
	si, _ := e.m.SlotInfo(3)
	if text(si.SlotDescription[:]) != "Late Reader 00 00" {
		t.Fatalf("slot 3 is %q", si.SlotDescription)
	}
	id, err := e.m.WaitForSlotEvent(true)
	if err != nil || id != 3 {
		t.Fatalf("event %d, %v; want slot 3", id, err)
	}
	_, err = e.m.WaitForSlotEvent(true)
	wantRV(t, err, pkcs11.CKR_NO_EVENT)

	// Unplugged, its slot leaves the list; plugged again, it has its old ID.
	e.src.RemoveReader("Late Reader 00 00")
	if ids, _ := e.m.SlotList(false); len(ids) != 2 {
		t.Fatalf("slots %v after unplugging", ids)
	}
	e.src.AddReader("Late Reader 00 00")
	if ids, _ := e.m.SlotList(false); len(ids) != 3 || ids[2] != 3 {
		t.Fatalf("slots %v after plugging again", ids)
	}
}

func TestWaitForSlotEventBlocks(t *testing.T) {
	e := newEnv(t, nil)
	type result struct {
		id  pkcs11.SlotID
		err error
	}
	got := make(chan result, 1)
	go func() {
		id, err := e.m.WaitForSlotEvent(false)
		got <- result{id, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("returned before any event: %v %v", r.id, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	e.src.Insert(reader2, newCard(t, ciesim.Config{}))
	select {
	case r := <-got:
		if r.err != nil || r.id != 2 {
			t.Fatalf("event %d %v, want slot 2", r.id, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after inserting a card")
	}

	// C_Finalize ends a blocked wait.
	go func() {
		id, err := e.m.WaitForSlotEvent(false)
		got <- result{id, err}
	}()
	time.Sleep(20 * time.Millisecond)
	e.m.Close()
	select {
	case r := <-got:
		wantRV(t, r.err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the wait")
	}
}

func TestRemovedCardEndsSessions(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	login(t, e.m, h)

	e.src.Remove(reader1)
	_, err := e.m.SessionInfo(h)
	wantRV(t, err, pkcs11.CKR_DEVICE_REMOVED)
	_, err = e.m.SessionInfo(h)
	wantRV(t, err, pkcs11.CKR_SESSION_HANDLE_INVALID)
	_, err = e.m.TokenInfo(1)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_PRESENT)
	if id, err := e.m.WaitForSlotEvent(true); err != nil || id != 1 {
		t.Fatalf("no slot event for the removal: %d %v", id, err)
	}

	// Re-inserted, it works again, logged out.
	e.src.Insert(reader1, card)
	h2 := e.open(e.m)
	in, err := e.m.SessionInfo(h2)
	if err != nil {
		t.Fatal(err)
	}
	if in.State != pkcs11.CKS_RW_PUBLIC_SESSION {
		t.Fatalf("state %v after re-insertion, want logged out", in.State)
	}
	login(t, e.m, h2)
}

func TestCardRemovedDuringSignature(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	login(t, e.m, h)
	key := find(t, e.m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))[0]
	if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
		t.Fatal(err)
	}
	card.Inject(ciesim.FaultMute) // the next APDU finds no card
	_, err := e.m.Sign(h, []byte("data"), make([]byte, 256), false)
	wantRV(t, err, pkcs11.CKR_DEVICE_REMOVED)
	_, err = e.m.SessionInfo(h)
	wantRV(t, err, pkcs11.CKR_SESSION_HANDLE_INVALID)
}

func TestSessions(t *testing.T) {
	e := newEnv(t, newCard(t, ciesim.Config{}))
	_, err := e.m.OpenSession(1, pkcs11.CKF_RW_SESSION)
	wantRV(t, err, pkcs11.CKR_SESSION_PARALLEL_NOT_SUPPORTED)
	_, err = e.m.OpenSession(2, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_PRESENT)

	ro, err := e.m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	rw := e.open(e.m)
	state := func(h pkcs11.SessionHandle) pkcs11.State {
		t.Helper()
		in, err := e.m.SessionInfo(h)
		if err != nil {
			t.Fatal(err)
		}
		return in.State
	}
	if state(ro) != pkcs11.CKS_RO_PUBLIC_SESSION || state(rw) != pkcs11.CKS_RW_PUBLIC_SESSION {
		t.Fatalf("states %v %v", state(ro), state(rw))
	}
	ti, _ := e.m.TokenInfo(1)
	if ti.SessionCount != 2 || ti.RwSessionCount != 1 {
		t.Errorf("session counts %d/%d, want 2/1", ti.SessionCount, ti.RwSessionCount)
	}
	// Login is per token: every session sees it.
	login(t, e.m, ro)
	if state(ro) != pkcs11.CKS_RO_USER_FUNCTIONS || state(rw) != pkcs11.CKS_RW_USER_FUNCTIONS {
		t.Fatalf("states after login %v %v", state(ro), state(rw))
	}
	wantRV(t, e.m.Login(rw, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_USER_ALREADY_LOGGED_IN)
	wantRV(t, e.m.Login(rw, pkcs11.CKU_SO, []byte(goodPUK)), pkcs11.CKR_USER_ANOTHER_ALREADY_LOGGED_IN)

	// Closing the last session logs out.
	if err := e.m.CloseSession(ro); err != nil {
		t.Fatal(err)
	}
	wantRV(t, e.m.CloseSession(ro), pkcs11.CKR_SESSION_HANDLE_INVALID)
	if state(rw) != pkcs11.CKS_RW_USER_FUNCTIONS {
		t.Fatal("closing one of two sessions logged out")
	}
	if err := e.m.CloseAllSessions(1); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.SessionInfo(rw)
	wantRV(t, err, pkcs11.CKR_SESSION_HANDLE_INVALID)
	h := e.open(e.m)
	if state(h) != pkcs11.CKS_RW_PUBLIC_SESSION {
		t.Fatal("still logged in after every session was closed")
	}

	// The SO needs read/write sessions only.
	ro2, _ := e.m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, e.m.Login(h, pkcs11.CKU_SO, []byte(goodPUK)), pkcs11.CKR_SESSION_READ_ONLY_EXISTS)
	e.m.CloseSession(ro2)
	if err := e.m.Login(h, pkcs11.CKU_SO, []byte(goodPUK)); err != nil {
		t.Fatal(err)
	}
	if state(h) != pkcs11.CKS_RW_SO_FUNCTIONS {
		t.Fatalf("SO state %v", state(h))
	}
	_, err = e.m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, err, pkcs11.CKR_SESSION_READ_WRITE_SO_EXISTS)
	wantRV(t, e.m.Login(h, 7, []byte(goodPIN)), pkcs11.CKR_USER_TYPE_INVALID)
}

func TestClosedModule(t *testing.T) {
	e := newEnv(t, newCard(t, ciesim.Config{}))
	h := e.open(e.m)
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	wantRV(t, e.m.Close(), pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)
	_, err := e.m.SlotList(false)
	wantRV(t, err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)
	_, err = e.m.SessionInfo(h)
	wantRV(t, err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)
	_, err = e.m.Info()
	wantRV(t, err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)
}

func TestSourceErrorsAreNotFatal(t *testing.T) {
	e := newEnv(t, newCard(t, ciesim.Config{}))
	e.src.listErr = errors.New("pcscd went away")
	ids, err := e.m.SlotList(false)
	if err != nil || len(ids) != 2 {
		t.Fatalf("SlotList with a failing source: %v %v; want the last known slots", ids, err)
	}
}

func TestRVNames(t *testing.T) {
	if got := pkcs11.CKR_PIN_INCORRECT.Error(); got != "CKR_PIN_INCORRECT" {
		t.Errorf("got %q", got)
	}
	if got := pkcs11.RV(0x7777).Error(); !strings.HasPrefix(got, "CKR_0x") {
		t.Errorf("unknown RV printed as %q", got)
	}
	if got := pkcs11.CKM_SHA256_RSA_PKCS.String(); got != "CKM_SHA256_RSA_PKCS" {
		t.Errorf("got %q", got)
	}
	if got := pkcs11.CKA_VALUE.String(); got != "CKA_VALUE" {
		t.Errorf("got %q", got)
	}
}
